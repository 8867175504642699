//! Datasets of mAR-SCF: readers for the files the reference trains on (MNIST, CIFAR-10 in
//! its binary and Python distributions, downsampled ImageNet 32/64 as image folders or npz
//! batches), its preprocessing, an embedded sample of real MNIST digits, and (feature
//! `download`) verified downloads of MNIST and CIFAR-10.
//!
//! Every reader produces an [`ImageSet`]; [`datasets::load`] picks the reader by
//! [`DatasetName`]. [`load_with`] can instead decode a dataset once into a cache of raw
//! files and memory-map it ([`cache`]), for datasets larger than memory. Bad files are
//! [`DataError`]s naming the file, never panics.

#![warn(missing_docs)]

pub mod atomic_file;
pub mod augment;
pub mod batch;
pub mod burn_data;
pub mod cache;
pub mod cifar;
pub mod cifar_pickle;
pub mod datasets;
pub mod digest;
#[cfg(feature = "download")]
pub mod download;
mod error;
pub mod idx;
pub mod image_folder;
pub mod imagenet;
pub mod images;
pub mod mnist;
pub mod npy;
pub mod pixels;
pub mod transform;

pub use batch::{BatchOptions, EpochOrder, batch_values, make_batch, stream};
pub use datasets::{CacheDir, DatasetName, LoadOptions, load, load_with};
pub use error::DataError;
pub use images::ImageSet;
pub use mnist::{MnistSplit, embedded};
pub use pixels::Pixels;
pub use transform::{BIT_DEPTHS, MnistLayout, byte_to_unit, quantize_to_unit, unit_to_byte};

//! Datasets of mAR-SCF: readers for the files the reference trains on, its preprocessing,
//! and an embedded sample of real MNIST digits.

#![warn(missing_docs)]

pub mod augment;
pub mod batch;
mod error;
pub mod idx;
pub mod images;
pub mod mnist;
pub mod transform;

pub use batch::{BatchOptions, EpochOrder, make_batch, stream};
pub use error::DataError;
pub use images::ImageSet;
pub use mnist::{MnistSplit, embedded};
pub use transform::{MnistLayout, byte_to_unit, mnist_batch};

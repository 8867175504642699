//! Datasets of mAR-SCF: readers for the files the reference trains on, its preprocessing,
//! and an embedded sample of real MNIST digits.

#![warn(missing_docs)]

mod error;
pub mod idx;
pub mod mnist;
pub mod transform;

pub use error::DataError;
pub use mnist::{MnistSplit, embedded};
pub use transform::{MnistLayout, byte_to_unit, mnist_batch};

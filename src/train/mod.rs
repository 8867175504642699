//! Training: the Adamax optimizer, the learning-rate schedule, weight averaging, and the
//! training loop with evaluation, checkpoints and resume.

pub mod adamax;

pub use adamax::{Adamax, AdamaxConfig, AdamaxState};

//! The `marscf` command's timing harness, shared by `marscf bench` and the criterion
//! bench `train_step` (the command itself is `src/main.rs`).

#![warn(missing_docs)]

pub mod bench;

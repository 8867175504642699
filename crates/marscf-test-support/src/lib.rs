//! Helpers of marscf's integration tests (not published): every test crate of the workspace
//! takes them from here as a dev-dependency.
//!
//! - [`numerics`]: seeded inputs, perturbed parameters, differences, the brute-force Jacobian
//!   log-determinant, binomial acceptance intervals.
//! - [`model`]: the test device, the lock on Burn's random generator, the tiny model and the
//!   embedded digits it trains on, gradients by parameter path.
//! - [`reference`](mod@reference): the reference implementation's fixtures in `../shared`.
//! - [`files`]: small files in the real formats of every data reader, and the CIFAR-10
//!   batches Python pickled.
//! - [`cli`]: running the `marscf` binary ([`marscf!`], [`marscf_command!`]).
//! - [`http`]: a server on 127.0.0.1 for the download tests.
//! - [`fid`](mod@fid): the FID fixtures and the formula that made their inputs.

pub mod cli;
pub mod fid;
pub mod files;
pub mod http;
pub mod model;
pub mod numerics;
pub mod reference;

use std::path::Path;

/// An empty folder for one test under the system's temporary folder, named after `name`
/// (unique per call) and removed when dropped. Dereferences to its [`Path`].
pub struct TempDir(tempfile::TempDir);

/// A new [`TempDir`] named `marscf-NAME-…`.
pub fn temp_dir(name: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("marscf-{name}-"))
        .tempdir()
        .expect("a temporary folder can be created");
    TempDir(dir)
}

impl TempDir {
    /// The folder.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// The messages of `error` and of each of its sources, joined by `": "`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

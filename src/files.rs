//! The library's writes through [`marscf_data::atomic_file`], with its errors as
//! [`ModelError`]s.

use std::path::Path;

use marscf_data::atomic_file::{self, Existing};

use crate::ModelError;

/// Writes `bytes` to `path` whole or not at all ([`atomic_file::write`]); with
/// [`Existing::Keep`], an existing `path` is [`ModelError::Exists`] and stays as it was.
pub(crate) fn write(path: &Path, bytes: &[u8], existing: Existing) -> Result<(), ModelError> {
    atomic_file::write(path, bytes, existing).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists if existing == Existing::Keep => ModelError::Exists {
            path: path.to_path_buf(),
        },
        _ => ModelError::io("write", path)(e),
    })
}

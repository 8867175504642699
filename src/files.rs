//! The library's writes through [`marscf_data::atomic_file`], with its errors as
//! [`ModelError`]s, and its advisory file locks.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use marscf_data::atomic_file::{AtomicFile, Existing};

use crate::ModelError;

/// Writes `bytes` to `path` whole or not at all; with [`Existing::Keep`], an existing
/// `path` is [`ModelError::Exists`] and stays as it was.
pub(crate) fn write(path: &Path, bytes: &[u8], existing: Existing) -> Result<(), ModelError> {
    write_with(path, existing, |mut file| {
        file.write_all(bytes)
            .map_err(ModelError::io("write", path))?;
        Ok(file)
    })
}

/// Writes `path` whole or not at all with what `fill` writes into its temporary file (and
/// hands back to be committed); with [`Existing::Keep`], an existing `path` is
/// [`ModelError::Exists`] (checked before `fill` runs, and again by the final rename).
pub(crate) fn write_with(
    path: &Path,
    existing: Existing,
    fill: impl FnOnce(AtomicFile) -> Result<AtomicFile, ModelError>,
) -> Result<(), ModelError> {
    let exists = || ModelError::Exists {
        path: path.to_path_buf(),
    };
    if existing == Existing::Keep && path.exists() {
        return Err(exists());
    }
    let file = AtomicFile::create(path).map_err(ModelError::io("create", path))?;
    fill(file)?.commit(existing).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists if existing == Existing::Keep => exists(),
        _ => ModelError::io("write", path)(e),
    })
}

/// Takes the exclusive advisory lock of `path` (created if missing, its content kept),
/// held while the returned file is open, so a dead holder's lock is free again; `None`
/// while another process holds it.
pub(crate) fn try_lock(path: &Path) -> Result<Option<File>, ModelError> {
    let file = open_lock(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(ModelError::io("lock", path)(e)),
    }
}

/// [`try_lock`], waiting while another process holds the lock.
pub(crate) fn lock(path: &Path) -> Result<File, ModelError> {
    let file = open_lock(path)?;
    file.lock().map_err(ModelError::io("lock", path))?;
    Ok(file)
}

fn open_lock(path: &Path) -> Result<File, ModelError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(ModelError::io("open", path))
}

//! Files and folders that appear complete or not at all: every writer of marscf (the decode
//! cache, downloads, checkpoints, run states, metrics, plots, sample grids, reports) writes
//! through this module.
//!
//! A file is written under a temporary name in its destination's folder,
//! `.<name>.<random>.marscf-tmp` (created exclusively, so no existing file is ever opened),
//! synced, and renamed onto its destination; the folder is then synced so that the rename
//! itself survives a crash. A folder is filled under such a name and renamed the same way.
//! A write that fails or is dropped removes its temporary; one cut short by a kill leaves
//! it behind, and [`is_temporary`] recognises it for the crash cleanup of whoever owns the
//! folder. The temporary files are [`tempfile`]'s.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The end of every temporary name this module makes.
pub const SUFFIX: &str = ".marscf-tmp";

/// Test hook: with this variable set to a file name, a write whose destination has that
/// name stops just before its rename (the temporary complete on disk), says so on stderr
/// (`marscf: paused before renaming onto <path>`) and waits to be killed, so that a crash
/// test places its kill inside a write. Unset, writes never pause.
pub const PAUSE_ENV: &str = "MARSCF_PAUSE_BEFORE_RENAME";

/// Whether a name is one of this module's temporary names (`.<name>.<random>.marscf-tmp`):
/// what a write cut short by a kill leaves behind.
pub fn is_temporary(name: &OsStr) -> bool {
    temporary_destination(name).is_some()
}

/// The name a temporary file or folder `.<name>.<random>.marscf-tmp` was to be renamed to;
/// `None` for any other name.
pub fn temporary_destination(name: &OsStr) -> Option<&str> {
    let (dest, _random) = name
        .to_str()?
        .strip_prefix('.')?
        .strip_suffix(SUFFIX)?
        .rsplit_once('.')?;
    Some(dest)
}

/// What a write does when its destination exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it (in one rename: a reader sees the old or the new content).
    Replace,
    /// Leave it and fail with [`io::ErrorKind::AlreadyExists`] (checked by the rename
    /// itself, so a file created meanwhile is not replaced either).
    Keep,
}

/// A file being written under a temporary name beside `dest`; [`AtomicFile::commit`]
/// syncs it and renames it onto `dest`. Dropped uncommitted, it is removed.
pub struct AtomicFile {
    dest: PathBuf,
    out: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `dest` (whose folder must exist).
    pub fn create(dest: &Path) -> io::Result<Self> {
        let prefix = temporary_prefix(dest);
        let mut builder = tempfile::Builder::new();
        // The mode of a file the user creates (`0o666` less the umask), not tempfile's
        // private `0o600`: the result is the user's file, for their group to read.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let file = builder
            .prefix(&prefix)
            .suffix(SUFFIX)
            .tempfile_in(folder_of(dest))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// The temporary file's path (for error messages).
    pub fn temporary_path(&self) -> &Path {
        self.out.get_ref().path()
    }

    /// Flushes and syncs the file, renames it onto the destination as `existing` says, and
    /// syncs the folder.
    pub fn commit(self, existing: Existing) -> io::Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.as_file().sync_all()?;
        pause_if_asked(&self.dest);
        match existing {
            Existing::Replace => file.persist(&self.dest),
            Existing::Keep => file.persist_noclobber(&self.dest),
        }
        .map_err(|e| e.error)?;
        sync_folder(folder_of(&self.dest))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.out.seek(pos)
    }
}

/// Writes `bytes` to `dest` through an [`AtomicFile`]: at every moment `dest` holds its old
/// content (or nothing) or all of `bytes`.
pub fn write(dest: &Path, bytes: &[u8], existing: Existing) -> io::Result<()> {
    if existing == Existing::Keep && dest.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the file exists",
        ));
    }
    let mut file = AtomicFile::create(dest)?;
    file.write_all(bytes)?;
    file.commit(existing)
}

/// A folder being filled under a temporary name beside `dest`; [`AtomicDir::commit`]
/// renames it onto `dest` once its files are complete. Dropped uncommitted, it is removed
/// with what it holds.
pub struct AtomicDir {
    dest: PathBuf,
    dir: tempfile::TempDir,
}

impl AtomicDir {
    /// Starts filling `dest` (whose parent folder must exist).
    pub fn create(dest: &Path) -> io::Result<Self> {
        let prefix = temporary_prefix(dest);
        let mut builder = tempfile::Builder::new();
        // A folder's usual mode (`0o777` less the umask), as for files in `AtomicFile`.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o777));
        let dir = builder
            .prefix(&prefix)
            .suffix(SUFFIX)
            .tempdir_in(folder_of(dest))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            dir,
        })
    }

    /// Where to write the folder's files now.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Syncs the folder and renames it onto the destination, which must not exist (or be
    /// an empty folder), then syncs the parent folder.
    pub fn commit(self) -> io::Result<()> {
        sync_folder(self.dir.path())?;
        pause_if_asked(&self.dest);
        let temporary = self.dir.keep();
        if let Err(e) = std::fs::rename(&temporary, &self.dest) {
            let _ = std::fs::remove_dir_all(&temporary);
            return Err(e);
        }
        sync_folder(folder_of(&self.dest))
    }
}

/// `.<name>.`: the start of a temporary name for `dest` (the rest is random, then
/// [`SUFFIX`]).
fn temporary_prefix(dest: &Path) -> String {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.")
}

/// See [`PAUSE_ENV`].
fn pause_if_asked(dest: &Path) {
    let Some(name) = std::env::var_os(PAUSE_ENV) else {
        return;
    };
    if dest.file_name() == Some(name.as_os_str()) {
        eprintln!("marscf: paused before renaming onto {}", dest.display());
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes a folder's entries (a rename into it) durable; a no-op where folders cannot be
/// opened as files.
fn sync_folder(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_keeps() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("a.txt");
        write(&path, b"one", Existing::Keep).expect("a new file");
        assert_eq!(std::fs::read(&path).expect("written"), b"one");
        let refused = write(&path, b"two", Existing::Keep).expect_err("it exists");
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("kept"), b"one");
        write(&path, b"three", Existing::Replace).expect("replaced");
        assert_eq!(std::fs::read(&path).expect("written"), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listed")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert_eq!(names, ["a.txt"], "no temporary file is left");
    }

    #[test]
    fn an_uncommitted_write_leaves_nothing_and_never_opens_the_destination() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("b.png");
        std::fs::write(&path, b"precious").expect("written");
        let mut file = AtomicFile::create(&path).expect("started");
        file.write_all(b"new").expect("written");
        let name = file
            .temporary_path()
            .file_name()
            .expect("a name")
            .to_owned();
        assert_eq!(temporary_destination(&name), Some("b.png"), "{name:?}");
        drop(file);
        assert_eq!(std::fs::read(&path).expect("kept"), b"precious");
        assert_eq!(std::fs::read_dir(dir.path()).expect("listed").count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_written_file_has_the_mode_of_any_file_the_user_creates() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mode = |p: &Path| std::fs::metadata(p).expect("written").permissions().mode() & 0o777;
        write(&dir.path().join("a"), b"1", Existing::Keep).expect("written");
        std::fs::write(dir.path().join("b"), b"1").expect("written");
        assert_eq!(mode(&dir.path().join("a")), mode(&dir.path().join("b")));
    }

    #[test]
    fn a_folder_appears_complete() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let dest = dir.path().join("state");
        let pending = AtomicDir::create(&dest).expect("started");
        assert!(is_temporary(pending.path().file_name().expect("a name")));
        std::fs::write(pending.path().join("x"), b"1").expect("written");
        assert!(!dest.exists());
        pending.commit().expect("renamed");
        assert_eq!(std::fs::read(dest.join("x")).expect("moved"), b"1");
        assert!(!is_temporary(OsStr::new("state.tmp")));
        assert!(!is_temporary(OsStr::new(".hidden")));
    }
}

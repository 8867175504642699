//! Downloads of MNIST and CIFAR-10 from their canonical locations into a cache folder
//! (cargo feature `download`).
//!
//! Every file is checked against the SHA-256 digest in [`MNIST_FILES`] /
//! [`CIFAR10_ARCHIVE`] before it is kept, and written atomically: streamed into a hidden
//! temporary file beside its destination, hashed on the way, then renamed into place only if
//! the digest matches (a mismatch or any failure removes the temporary file). A file already
//! in the cache with the right digest is not downloaded again, so a cache that someone filled
//! by hand works offline. When the network is unreachable the error fails fast (connection
//! timeout [`CONNECT_TIMEOUT`]) and says which files to place where.
//!
//! The digests are the ones TensorFlow Datasets publishes for these URLs
//! (`tensorflow_datasets/url_checksums/mnist.txt`, `cifar10.txt`), which other public
//! projects pin to the same values; they could not be recomputed from the files themselves
//! here (no network access). The sizes are from the same tables.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use crate::DataError;
use crate::cifar::{BINARY_FOLDER, BINARY_TEST_FILE, BINARY_TRAIN_FILES};
use crate::mnist::{TEST_FILES, TRAIN_FILES};

/// Where MNIST's four gzipped IDX files are served (Google's CVDF mirror, which torchvision
/// and TensorFlow use since the original site restricted access).
pub const MNIST_BASE_URL: &str = "https://storage.googleapis.com/cvdf-datasets/mnist/";
/// Where CIFAR-10's archives are served (its authors' site).
pub const CIFAR10_BASE_URL: &str = "https://www.cs.toronto.edu/~kriz/";
/// How long to wait for a connection before reporting the network unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A file to download: its name (appended to a base URL, and its name in the cache), its
/// size in bytes, and the lower-case hex SHA-256 digest of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile<'a> {
    /// File name, both under the base URL and in the cache folder.
    pub name: &'a str,
    /// Size in bytes; a server sending more is cut off (and then fails the digest).
    pub size: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: &'a str,
}

/// MNIST's files under [`MNIST_BASE_URL`] (digests: see the module doc).
pub const MNIST_FILES: [RemoteFile<'static>; 4] = [
    RemoteFile {
        name: TRAIN_FILES.0,
        size: 9_912_422,
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    RemoteFile {
        name: TRAIN_FILES.1,
        size: 28_881,
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
    RemoteFile {
        name: TEST_FILES.0,
        size: 1_648_877,
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    RemoteFile {
        name: TEST_FILES.1,
        size: 4_542,
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
];

/// CIFAR-10's binary distribution under [`CIFAR10_BASE_URL`] (digest: see the module doc).
pub const CIFAR10_ARCHIVE: RemoteFile<'static> = RemoteFile {
    name: "cifar-10-binary.tar.gz",
    size: 170_052_171,
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
};

/// Downloads MNIST's four files from `base_url` (normally [`MNIST_BASE_URL`]) into
/// `cache/mnist` and returns that folder, ready for [`crate::mnist::load`].
pub fn download_mnist(base_url: &str, cache: &Path) -> Result<PathBuf, DataError> {
    let dir = cache.join("mnist");
    download_files(base_url, &MNIST_FILES, &dir)?;
    Ok(dir)
}

/// Downloads CIFAR-10's binary archive from `base_url` (normally [`CIFAR10_BASE_URL`]),
/// unpacks it into `cache/cifar-10-batches-bin` and returns that folder, ready for
/// [`crate::cifar::load`]. See [`download_cifar10_archive`].
pub fn download_cifar10(base_url: &str, cache: &Path) -> Result<PathBuf, DataError> {
    download_cifar10_archive(base_url, &CIFAR10_ARCHIVE, cache)
}

/// [`download_cifar10`] for a given `archive` entry: returns `cache/cifar-10-batches-bin` at
/// once if it holds the six batch files; else downloads (unless the cache already holds it
/// with the right digest) and verifies `cache/<archive.name>`, unpacks it atomically and
/// removes it.
pub fn download_cifar10_archive(
    base_url: &str,
    archive: &RemoteFile,
    cache: &Path,
) -> Result<PathBuf, DataError> {
    let out = cache.join(BINARY_FOLDER);
    let batches = || BINARY_TRAIN_FILES.iter().chain([&BINARY_TEST_FILE]);
    if batches().all(|name| out.join(name).is_file()) {
        return Ok(out);
    }
    let hint = format!(
        "To work offline, place {name} (from {url}) in {cache}, or unpack it there so that {out} \
         holds {train}, {test}",
        name = archive.name,
        url = join_url(base_url, archive.name),
        cache = cache.display(),
        out = out.display(),
        train = BINARY_TRAIN_FILES.join(", "),
        test = BINARY_TEST_FILE,
    );
    let archive_path = cache.join(archive.name);
    fetch_verified(base_url, archive, &archive_path, &hint)?;
    extract_cifar10(&archive_path, cache)?;
    std::fs::remove_file(&archive_path).map_err(DataError::io(&archive_path))?;
    Ok(out)
}

/// Downloads each of `files` from `base_url` into `dir` (created if needed), verified and
/// atomically written, skipping files already there with the right digest.
pub fn download_files(base_url: &str, files: &[RemoteFile], dir: &Path) -> Result<(), DataError> {
    let hint = format!(
        "To work offline, place {names} (from {base_url}) in {dir}",
        names = files.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
        dir = dir.display(),
    );
    for file in files {
        fetch_verified(base_url, file, &dir.join(file.name), &hint)?;
    }
    Ok(())
}

/// Makes `dest` hold `file` (from `base_url` + `file.name`) with its digest: nothing to do
/// if it already does; otherwise download into a temporary file beside `dest`, verify, and
/// rename. `hint` (which files to place where) ends a network error's message.
pub fn fetch_verified(
    base_url: &str,
    file: &RemoteFile,
    dest: &Path,
    hint: &str,
) -> Result<(), DataError> {
    if dest.is_file() && sha256_file(dest)? == file.sha256 {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(DataError::io(dir))?;
    let url = join_url(base_url, file.name);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .build(),
    );
    let response = agent
        .get(url.as_str())
        .call()
        .map_err(DataError::download(&url, hint))?;
    let mut body = response
        .into_body()
        .into_reader()
        .take(file.size.saturating_add(1));

    let temp = TempPath::new(dir.join(format!(".{}.part{}", file.name, std::process::id())));
    let out = File::create(&temp.path).map_err(DataError::io(&temp.path))?;
    let mut out = BufWriter::new(out);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(DataError::download(&url, hint))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(DataError::io(&temp.path))?;
    }
    let out = out
        .into_inner()
        .map_err(|e| DataError::io(&temp.path)(e.into_error()))?;
    out.sync_all().map_err(DataError::io(&temp.path))?;
    drop(out);
    let got = hex(&hasher.finalize());
    if got != file.sha256 {
        return Err(DataError::Digest {
            file: url,
            expected: file.sha256.to_string(),
            got,
        });
    }
    temp.persist(dest)
}

/// Unpacks the six batch files of CIFAR-10's binary archive (`cifar-10-batches-bin/*.bin`,
/// plus `batches.meta.txt`) into `cache/cifar-10-batches-bin`, via a temporary folder that
/// is renamed only once all six are out. Other entries are ignored, so no entry can be
/// written outside that folder.
pub fn extract_cifar10(archive: &Path, cache: &Path) -> Result<PathBuf, DataError> {
    let name = archive.display().to_string();
    let wanted: Vec<&str> = BINARY_TRAIN_FILES
        .iter()
        .copied()
        .chain([BINARY_TEST_FILE, "batches.meta.txt"])
        .collect();
    let temp = TempPath::new(cache.join(format!(".{BINARY_FOLDER}.part{}", std::process::id())));
    if temp.path.exists() {
        std::fs::remove_dir_all(&temp.path).map_err(DataError::io(&temp.path))?;
    }
    std::fs::create_dir_all(&temp.path).map_err(DataError::io(&temp.path))?;
    let reader = File::open(archive).map_err(DataError::io(archive))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(reader)));
    for entry in tar.entries().map_err(DataError::archive(&name))? {
        let mut entry = entry.map_err(DataError::archive(&name))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(DataError::archive(&name))?
            .into_owned();
        let mut parts = path.components().map(|c| c.as_os_str().to_str());
        let file = match (parts.next(), parts.next(), parts.next()) {
            (Some(Some(BINARY_FOLDER)), Some(Some(file)), None) if wanted.contains(&file) => {
                file.to_string()
            }
            _ => continue,
        };
        let dest = temp.path.join(&file);
        let mut out = File::create(&dest).map_err(DataError::io(&dest))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(DataError::archive(&format!("{name}:{}", path.display())))?;
    }
    let missing: Vec<String> = wanted[..6]
        .iter()
        .filter(|f| !temp.path.join(f).is_file())
        .map(|f| format!("{BINARY_FOLDER}/{f}"))
        .collect();
    if !missing.is_empty() {
        return Err(DataError::ArchiveIncomplete {
            file: name,
            missing,
        });
    }
    let out = cache.join(BINARY_FOLDER);
    if out.exists() {
        // An incomplete earlier folder (a complete one is never unpacked again).
        std::fs::remove_dir_all(&out).map_err(DataError::io(&out))?;
    }
    temp.persist(&out)?;
    Ok(out)
}

/// SHA-256 of a file's bytes, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut file = BufReader::new(File::open(path).map_err(DataError::io(path))?);
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(DataError::io(path))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn join_url(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// A temporary file or folder, removed when dropped unless persisted.
struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    fn new(path: PathBuf) -> Self {
        Self { path, keep: false }
    }

    /// Renames it to `dest`.
    fn persist(mut self, dest: &Path) -> Result<(), DataError> {
        std::fs::rename(&self.path, dest).map_err(DataError::io(dest))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the path may not exist yet.
            let _ = if self.path.is_dir() {
                std::fs::remove_dir_all(&self.path)
            } else {
                std::fs::remove_file(&self.path)
            };
        }
    }
}

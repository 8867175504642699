//! Downloads of MNIST and CIFAR-10 from their canonical locations into a cache folder
//! (cargo feature `download`).
//!
//! Every file is checked against the SHA-256 digest in [`MNIST_FILES`] /
//! [`CIFAR10_ARCHIVE`] before it is kept, and written atomically ([`crate::atomic_file`]):
//! streamed into a hidden temporary file beside its destination, hashed on the way, then
//! synced and renamed into place only if the digest matches (a mismatch or any failure
//! removes the temporary file). A file already
//! in the cache with the right digest is not downloaded again, so a cache that someone filled
//! by hand works offline. When the network is unreachable the error fails fast (connection
//! timeout [`CONNECT_TIMEOUT`]) and says which files to place where.
//!
//! The digests are the ones TensorFlow Datasets publishes for these URLs
//! (`tensorflow_datasets/url_checksums/mnist.txt`, `cifar10.txt`), which other public
//! projects pin to the same values; they could not be recomputed from the files themselves
//! here (no network access). The sizes are from the same tables.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use crate::DataError;
use crate::atomic_file::{AtomicDir, AtomicFile, Existing};
use crate::cifar::{BINARY_FOLDER, BINARY_TEST_FILE, BINARY_TRAIN_FILES};
use crate::digest::{hex, sha256_files};
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
    if dest.is_file() && sha256_files(&[dest])? == file.sha256 {
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

    let mut out = AtomicFile::create(dest).map_err(DataError::io(dest))?;
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
            .map_err(|e| DataError::io(out.temporary_path())(e))?;
    }
    let got = hex(&hasher.finalize());
    if got != file.sha256 {
        return Err(DataError::Digest {
            url,
            expected: file.sha256.to_string(),
            got,
        });
    }
    out.commit(Existing::Replace).map_err(DataError::io(dest))
}

/// Bytes the tar inside CIFAR-10's archive may inflate to: its six batches are 184,380,000
/// bytes, its other entries and tar headers a few kB.
pub const CIFAR10_TAR_MAX_BYTES: u64 = 256 << 20;

/// Unpacks the six batch files of CIFAR-10's binary archive (`cifar-10-batches-bin/*.bin`,
/// plus `batches.meta.txt`) into `cache/cifar-10-batches-bin`, via a temporary folder that
/// is renamed only once all six are out. Other entries are ignored, so no entry can be
/// written outside that folder. The gzip stream is inflated to at most
/// [`CIFAR10_TAR_MAX_BYTES`] (entries skipped or not, tar headers and long names included);
/// an archive that goes on is a [`DataError::Archive`].
pub fn extract_cifar10(archive: &Path, cache: &Path) -> Result<PathBuf, DataError> {
    extract_bounded(archive, cache, CIFAR10_TAR_MAX_BYTES)
}

/// [`extract_cifar10`], inflating at most `max_bytes` of tar.
fn extract_bounded(archive: &Path, cache: &Path, max_bytes: u64) -> Result<PathBuf, DataError> {
    let name = archive.display().to_string();
    let wanted: Vec<&str> = BINARY_TRAIN_FILES
        .iter()
        .copied()
        .chain([BINARY_TEST_FILE, "batches.meta.txt"])
        .collect();
    let out = cache.join(BINARY_FOLDER);
    std::fs::create_dir_all(cache).map_err(DataError::io(cache))?;
    let temp = AtomicDir::create(&out).map_err(DataError::io(cache))?;
    let reader = File::open(archive).map_err(DataError::io(archive))?;
    let mut tar = tar::Archive::new(Bounded {
        inner: GzDecoder::new(BufReader::new(reader)),
        left: max_bytes,
        max: max_bytes,
    });
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
        let dest = temp.path().join(&file);
        let mut written = File::create(&dest).map_err(DataError::io(&dest))?;
        std::io::copy(&mut entry, &mut written)
            .map_err(DataError::archive(&format!("{name}:{}", path.display())))?;
        written.sync_all().map_err(DataError::io(&dest))?;
    }
    let missing: Vec<String> = wanted[..6]
        .iter()
        .filter(|f| !temp.path().join(f).is_file())
        .map(|f| format!("{BINARY_FOLDER}/{f}"))
        .collect();
    if !missing.is_empty() {
        return Err(DataError::ArchiveIncomplete {
            path: name.into(),
            missing,
        });
    }
    if out.exists() {
        // An incomplete earlier folder (a complete one is never unpacked again).
        std::fs::remove_dir_all(&out).map_err(DataError::io(&out))?;
    }
    temp.commit().map_err(DataError::io(&out))?;
    Ok(out)
}

fn join_url(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// A reader of at most `max` bytes of `inner`: a read past them is an error (where
/// [`Read::take`] would end the input quietly), so that a stream that goes on is reported,
/// having been read at most one byte past `max`.
struct Bounded<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            return match self.inner.read(&mut buf[..1])? {
                0 => Ok(0),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("inflates past {} bytes", self.max),
                )),
            };
        }
        let want = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar.gz of `entries` (`(path, size)`, each of zeros).
    fn archive_of(entries: &[(&str, usize)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for &(path, size) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(size as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, std::io::repeat(0).take(size as u64))
                .expect("writing to memory");
        }
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .expect("writing to memory")
    }

    #[test]
    fn extraction_stops_at_its_bound_on_inflated_bytes() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let batch = |name: &str| (format!("{BINARY_FOLDER}/{name}"), 3073);
        let mut entries: Vec<(String, usize)> = BINARY_TRAIN_FILES
            .iter()
            .chain([&BINARY_TEST_FILE])
            .map(|name| batch(name))
            .collect();
        // An entry skipped by name, yet inflated to be skipped: 4 MiB of zeros.
        entries.push(("elsewhere/zeros".into(), 4 << 20));
        let refs: Vec<(&str, usize)> = entries.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        let archive = dir.path().join("bomb.tar.gz");
        std::fs::write(&archive, archive_of(&refs)).expect("writing the archive");
        let err = extract_bounded(&archive, dir.path(), 1 << 20).expect_err("past 1 MiB");
        assert!(
            matches!(&err, DataError::Archive { path: file, .. } if file.ends_with("bomb.tar.gz")),
            "{err}"
        );
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        assert!(
            causes
                .iter()
                .any(|c| c.contains("inflates past 1048576 bytes")),
            "{causes:?}"
        );
        // Within the bound it unpacks.
        extract_bounded(&archive, dir.path(), 8 << 20).expect("under 8 MiB");
    }
}

//! The decode cache: a split decoded once into raw files, then memory-mapped by every later
//! load, so that a dataset larger than memory (ImageNet 64x64: 1.28 M training images,
//! 15.7 GB of pixels) neither decodes at every start nor has to fit in memory.
//!
//! A split `<key>` = `<dataset>-<split>-<C>x<H>x<W>` (e.g. `imagenet64-train-3x64x64`) is
//! three files in the cache folder:
//!
//! - `<key>.u8`: the pixels, `count * C * H * W` bytes, image after image (the layout of
//!   [`ImageSet::pixels`]), memory-mapped read-only at load;
//! - `<key>.labels`: the labels, `u16` little-endian, read into memory (2 bytes per image);
//! - `<key>.manifest`: a JSON object ([`Manifest`]): format version, dataset, split, shape,
//!   count, the [`Fingerprint`] of the source files, and the CRC-32 of each file.
//!
//! **Crash-safe writes.** Each file is written under a temporary name ([`atomic_file`]),
//! synced and renamed into place, the manifest last: a cache without a manifest, or with one
//! that does not match its files, is never used. Files are only ever replaced by a rename,
//! never changed in place, so a process that has mapped the old file keeps reading valid
//! bytes (changing a mapped file under a reader is the one thing a memory map cannot guard
//! against; nothing here does it).
//!
//! **Validity.** At load the manifest must parse and name the same dataset, split and shape;
//! its fingerprint must equal the sources' (each source file's path relative to the data
//! folder, size and modification time, and the reader); the two files must have the sizes the
//! count implies, and the labels their CRC-32. The pixels' CRC-32 is checked only when asked
//! for (`verify`), since that reads the whole file. Anything else is a cache to rebuild, not
//! an error: a truncated, stale or half-written cache is decoded again.
//!
//! **Bounded memory.** The writer streams pixels to disk as the readers decode them (a batch
//! file, an npz chunk or a chunk of image files at a time) and keeps only the labels.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::atomic_file::{self, AtomicFile, Existing};
use crate::error::read_file;
use crate::images::{ImageSet, ImageSink};
use crate::pixels::Pixels;

/// Version of the cache's file format, a manifest's `format` (1 was a text manifest).
pub const FORMAT: u32 = 2;

/// The name of the cache folder inside a data folder, by default.
pub const DEFAULT_FOLDER: &str = ".marscf-cache";

/// Which split a cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey<'a> {
    /// The dataset's canonical name (`"imagenet64"`).
    pub dataset: &'a str,
    /// `"train"` or `"test"`.
    pub split: &'a str,
    /// `[C, H, W]` of the images.
    pub shape: [usize; 3],
}

impl CacheKey<'_> {
    /// `<dataset>-<split>-<C>x<H>x<W>`, the stem of the split's file names.
    pub fn stem(&self) -> String {
        let [c, h, w] = self.shape;
        format!("{}-{}-{c}x{h}x{w}", self.dataset, self.split)
    }

    fn image_bytes(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A 64-bit fingerprint (FNV-1a) of the files a split is decoded from: a change of any
/// file's name, size or modification time, or of the reader, changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The fingerprint of `files` (in reading order) read by `reader` (a description of the
    /// reader and its settings); paths count relative to `root`, so that a data folder can
    /// be moved with its cache.
    pub fn of_files<'p>(
        reader: &str,
        root: &Path,
        files: impl IntoIterator<Item = &'p Path>,
    ) -> Result<Self, DataError> {
        let mut hash = Fnv::default();
        hash.write(&FORMAT.to_le_bytes());
        hash.write(reader.as_bytes());
        for file in files {
            let meta = std::fs::metadata(file).map_err(DataError::io(file))?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let name = file.strip_prefix(root).unwrap_or(file);
            hash.write(name.as_os_str().as_encoded_bytes());
            hash.write(&[0]);
            hash.write(&meta.len().to_le_bytes());
            hash.write(&modified.to_le_bytes());
        }
        Ok(Self(hash.0))
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The manifest of a cached split: what its two files hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// The dataset's canonical name.
    pub dataset: String,
    /// `"train"` or `"test"`.
    pub split: String,
    /// `[C, H, W]` of the images.
    pub shape: [usize; 3],
    /// Number of images.
    pub count: usize,
    /// [`Fingerprint`] of the sources.
    pub sources: u64,
    /// CRC-32 of the `.u8` file.
    pub pixels_crc32: u32,
    /// CRC-32 of the `.labels` file.
    pub labels_crc32: u32,
}

impl Manifest {
    /// The manifest as written: one JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a manifest serialises")
    }

    /// Reads a manifest written by [`to_json`](Self::to_json) in this [`FORMAT`]; `file`
    /// names it in errors.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<Self, DataError> {
        let err = |message: String| DataError::Cache {
            path: file.to_path_buf(),
            message,
        };
        let manifest: Self = serde_json::from_slice(bytes)
            .map_err(|e| err(format!("not a manifest of format {FORMAT}: {e}")))?;
        if manifest.format != FORMAT {
            return Err(err(format!(
                "manifest of format {}, not {FORMAT}",
                manifest.format
            )));
        }
        manifest
            .pixel_bytes()
            .ok_or_else(|| err("manifest: count times shape overflows".into()))?;
        Ok(manifest)
    }

    /// `count * C * H * W`, if it fits.
    fn pixel_bytes(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(self.count, |acc, &d| acc.checked_mul(d))
    }
}

/// The paths of a split's three files in `dir`.
struct Files {
    pixels: PathBuf,
    labels: PathBuf,
    manifest: PathBuf,
}

impl Files {
    fn new(dir: &Path, key: &CacheKey) -> Self {
        let stem = key.stem();
        Self {
            pixels: dir.join(format!("{stem}.u8")),
            labels: dir.join(format!("{stem}.labels")),
            manifest: dir.join(format!("{stem}.manifest")),
        }
    }
}

/// The split `key` from the cache in `dir` if it is there and valid for `sources`; else
/// decodes it with `build` (which pushes every image of the split, in order, into the sink it
/// is given) into the cache, then maps that. With `verify`, the CRC-32 of the pixels is
/// checked too (reading the whole file).
///
/// A folder that cannot be created or written is a [`DataError::CacheUnwritable`].
pub(crate) fn load_or_build(
    dir: &Path,
    key: &CacheKey,
    sources: Fingerprint,
    verify: bool,
    build: impl FnOnce(&mut dyn ImageSink) -> Result<(), DataError>,
) -> Result<ImageSet, DataError> {
    let files = Files::new(dir, key);
    if let Ok(set) = open(&files, key, sources, verify) {
        return Ok(set);
    }
    std::fs::create_dir_all(dir).map_err(|source| DataError::CacheUnwritable {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut writer = Writer::new(dir, &files, key)?;
    build(&mut writer)?;
    writer.finish(&files, key, sources)?;
    open(&files, key, sources, verify).map_err(|source| DataError::CacheNotReadBack {
        path: files.manifest.clone(),
        source: Box::new(source),
    })
}

/// The cached split, or why it cannot be used: an unreadable file ([`DataError::Io`]) or a
/// manifest that does not describe these files ([`DataError::Cache`]).
fn open(
    files: &Files,
    key: &CacheKey,
    sources: Fingerprint,
    verify: bool,
) -> Result<ImageSet, DataError> {
    let stale = |message: String| DataError::Cache {
        path: files.manifest.clone(),
        message,
    };
    let manifest = Manifest::parse(&read_file(&files.manifest)?, &files.manifest)?;
    if (
        manifest.dataset.as_str(),
        manifest.split.as_str(),
        manifest.shape,
    ) != (key.dataset, key.split, key.shape)
    {
        return Err(stale("the manifest is of another split".into()));
    }
    if manifest.sources != sources.0 {
        return Err(stale("the source files changed".into()));
    }
    let pixel_bytes = manifest
        .pixel_bytes()
        .ok_or_else(|| stale("size overflows".into()))?;
    let labels = read_file(&files.labels)?;
    if Some(labels.len()) != manifest.count.checked_mul(2)
        || crc32fast::hash(&labels) != manifest.labels_crc32
    {
        return Err(stale("the labels file is not the one written".into()));
    }
    let file = File::open(&files.pixels).map_err(DataError::io(&files.pixels))?;
    let len = file.metadata().map_err(DataError::io(&files.pixels))?.len();
    if len != pixel_bytes as u64 {
        return Err(stale(format!(
            "the pixels file has {len} bytes, not {pixel_bytes}"
        )));
    }
    if verify && crc32_of(&file).map_err(DataError::io(&files.pixels))? != manifest.pixels_crc32 {
        return Err(stale("the pixels file's CRC-32 does not match".into()));
    }
    // SAFETY: the map is read-only and the cache's files are never changed in place, only
    // replaced by renaming a new file over them (see the module doc), which leaves this
    // mapping's file intact.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(DataError::io(&files.pixels))?;
    Ok(ImageSet {
        shape: key.shape,
        pixels: Pixels::mapped(map),
        labels: labels
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect(),
    })
}

/// CRC-32 of a file's bytes, read (not mapped) a MiB at a time.
fn crc32_of(mut file: &File) -> std::io::Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hasher.finalize()),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Writes a split's pixels to disk as they arrive, keeping only the labels in memory.
struct Writer {
    out: AtomicFile,
    crc: crc32fast::Hasher,
    labels: Vec<u16>,
    image_bytes: usize,
}

impl Writer {
    fn new(dir: &Path, files: &Files, key: &CacheKey) -> Result<Self, DataError> {
        debug_assert!(files.pixels.starts_with(dir));
        let out =
            AtomicFile::create(&files.pixels).map_err(|source| DataError::CacheUnwritable {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Self {
            out,
            crc: crc32fast::Hasher::new(),
            labels: Vec::new(),
            image_bytes: key.image_bytes(),
        })
    }

    /// Syncs and renames the pixels, then writes the labels and, last, the manifest.
    fn finish(self, files: &Files, key: &CacheKey, sources: Fingerprint) -> Result<(), DataError> {
        let Self {
            out, crc, labels, ..
        } = self;
        out.commit(Existing::Replace)
            .map_err(DataError::io(&files.pixels))?;
        let label_bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        write_file(&files.labels, &label_bytes)?;
        let manifest = Manifest {
            format: FORMAT,
            dataset: key.dataset.to_string(),
            split: key.split.to_string(),
            shape: key.shape,
            count: labels.len(),
            sources: sources.0,
            pixels_crc32: crc.finalize(),
            labels_crc32: crc32fast::hash(&label_bytes),
        };
        write_file(&files.manifest, manifest.to_json().as_bytes())
    }
}

impl ImageSink for Writer {
    fn reserve(&mut self, images: usize, _image_bytes: usize) {
        self.labels.reserve(images);
    }

    fn push(&mut self, pixels: &[u8], labels: &[u16]) -> Result<(), DataError> {
        debug_assert_eq!(pixels.len(), labels.len() * self.image_bytes);
        self.out
            .write_all(pixels)
            .map_err(|e| DataError::io(self.out.temporary_path())(e))?;
        self.crc.update(pixels);
        self.labels.extend_from_slice(labels);
        Ok(())
    }
}

/// Writes `bytes` to `dest` whole or not at all ([`atomic_file::write`]).
fn write_file(dest: &Path, bytes: &[u8]) -> Result<(), DataError> {
    atomic_file::write(dest, bytes, Existing::Replace).map_err(DataError::io(dest))
}

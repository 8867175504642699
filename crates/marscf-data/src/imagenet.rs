//! Downsampled ImageNet (32x32 or 64x64 RGB, 1000 classes), in either form it is published:
//!
//! - Image folders as the reference reads them: `ROOT/train_32x32/` and `ROOT/valid_32x32/`
//!   (or `_64x64`), each read by [`read_image_folder`](crate::image_folder::read_image_folder) (class sub-folders, or a flat folder
//!   of PNGs read as one class).
//! - The official npz batches: training files `train_data_batch_<k>.npz` and a validation
//!   file `val_data.npz`, each with a `data` array `(N, 3*S*S)` of `uint8`, channel-major
//!   (all red, then green, then blue, each row-major `S x S`), and optionally `labels`
//!   (1-based class numbers `1..=1000`; stored here as `label - 1`, or 0 when absent). The
//!   files may sit in `ROOT` or in its sub-folders (as the official zips unpack them, e.g.
//!   `Imagenet32_train_npz/`); training batches are read in the order of `k`.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use crate::DataError;
use crate::image_folder::{FolderListing, decode_listing, list_image_folder};
use crate::images::{Collect, ImageSet, ImageSink};
use crate::npy::{NpyHeader, Npz, read_full};

/// Number of ImageNet classes; stored labels are `0..IMAGENET_CLASSES`.
pub const IMAGENET_CLASSES: usize = 1000;
/// Name of the validation npz file.
pub const VAL_NPZ: &str = "val_data.npz";
/// Prefix of the training npz files, `train_data_batch_<k>.npz`.
pub const TRAIN_NPZ_PREFIX: &str = "train_data_batch_";

/// The resolution of a downsampled ImageNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagenetSize {
    /// 32x32 images.
    S32,
    /// 64x64 images.
    S64,
}

impl ImagenetSize {
    /// Side length `S` of an image.
    pub fn side(self) -> usize {
        match self {
            Self::S32 => 32,
            Self::S64 => 64,
        }
    }

    /// `[3, S, S]`.
    pub fn shape(self) -> [usize; 3] {
        [3, self.side(), self.side()]
    }

    /// `(training, validation)` folder names, e.g. `("train_32x32", "valid_32x32")`.
    pub fn folders(self) -> (String, String) {
        let s = self.side();
        (format!("train_{s}x{s}"), format!("valid_{s}x{s}"))
    }

    fn name(self) -> String {
        format!("ImageNet {0}x{0}", self.side())
    }
}

/// One npz batch (read from `reader`, named `file` in errors) as images `[3, S, S]`.
pub fn parse_npz_batch<R: Read + Seek>(
    reader: R,
    file: &str,
    size: ImagenetSize,
) -> Result<ImageSet, DataError> {
    let mut images = Collect::default();
    read_npz_batch(reader, file, size, &mut images)?;
    Ok(images.into_set(size.shape()))
}

/// Images per chunk that [`read_npz_batch`] hands to its sink: about 4 MiB.
const CHUNK_BYTES: usize = 4 << 20;

/// Streams one npz batch into `sink`, [`CHUNK_BYTES`] at a time: the `data` member is
/// inflated as it is copied, never held whole (a 64x64 training batch is 1.5 GB).
///
/// Memory is bounded by the archive's bytes, not by its headers: [`Npz::stream`] checks
/// that the `data` header's `N * 3 S^2` bytes are what the member holds (and the member's
/// size against its compressed bytes) before `N` sizes anything, and the `labels` header must
/// promise `N` labels before they are read.
pub(crate) fn read_npz_batch<R: Read + Seek>(
    reader: R,
    file: &str,
    size: ImagenetSize,
    sink: &mut dyn ImageSink,
) -> Result<(), DataError> {
    let mut npz = Npz::new(reader, file)?;
    let no_data = || DataError::npz(file, "no 'data' array");
    let image_bytes = 3 * size.side() * size.side();
    // The data's header first, so that its shape is checked before the labels are read.
    let n = {
        let data = npz.stream("data")?.ok_or_else(no_data)?;
        images_in(&data.header, &data.file, size)?
    };
    let labels = match npz.stream("labels")? {
        None => None,
        Some(labels) => {
            let count = labels.header.data_len / labels.header.dtype.size;
            if count != n {
                return Err(DataError::mismatch(
                    labels.file,
                    format!("{count} labels for {n} images"),
                ));
            }
            let name = labels.file.clone();
            let values = labels.into_array()?.to_i64(&name)?;
            let labels = values
                .iter()
                .enumerate()
                .map(|(index, &label)| {
                    if (1..=IMAGENET_CLASSES as i64).contains(&label) {
                        Ok((label - 1) as u16)
                    } else {
                        Err(DataError::LabelOutOfRange {
                            path: name.clone().into(),
                            index,
                            label,
                            classes: IMAGENET_CLASSES,
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(labels)
        }
    };
    let mut data = npz.stream("data")?.ok_or_else(no_data)?;
    let truncated = |got: usize| DataError::Truncated {
        path: data.file.clone().into(),
        expected: data.header.data_len,
        got,
    };
    sink.reserve(n, image_bytes);
    let per_chunk = (CHUNK_BYTES / image_bytes).max(1).min(n);
    let mut buf = vec![0u8; per_chunk * image_bytes];
    // The labels of a batch without any: class 0.
    let zeros = vec![0u16; if labels.is_some() { 0 } else { per_chunk }];
    let mut done = 0;
    while done < n {
        let k = per_chunk.min(n - done);
        let chunk = &mut buf[..k * image_bytes];
        let got = read_full(&mut data.data, chunk).map_err(DataError::zip(&data.file))?;
        if got < chunk.len() {
            return Err(truncated(done * image_bytes + got));
        }
        let chunk_labels = match &labels {
            Some(labels) => &labels[done..done + k],
            None => &zeros[..k],
        };
        sink.push(chunk, chunk_labels)?;
        done += k;
    }
    // Nothing may follow; reading to the end also checks the member's CRC-32.
    let extra =
        std::io::copy(&mut data.data, &mut std::io::sink()).map_err(DataError::zip(&data.file))?;
    if extra > 0 {
        return Err(truncated(
            data.header
                .data_len
                .saturating_add(usize::try_from(extra).unwrap_or(usize::MAX)),
        ));
    }
    Ok(())
}

/// The number of images `N` of a `data` array of shape `(N, 3*S*S)` or `(N, 3, S, S)`, uint8.
fn images_in(header: &NpyHeader, data_name: &str, size: ImagenetSize) -> Result<usize, DataError> {
    let side = size.side();
    let image_bytes = 3 * side * side;
    if header.dtype.size != 1 || header.dtype.signed || header.dtype.float {
        return Err(DataError::npz(
            data_name,
            format!("dtype {:?}, expected uint8", header.dtype),
        ));
    }
    match header.shape.as_slice() {
        [n, row] if *row == image_bytes => Ok(*n),
        [n, 3, h, w] if *h == side && *w == side => Ok(*n),
        shape => Err(DataError::mismatch(
            data_name,
            format!(
                "shape {shape:?}, expected (N, {image_bytes}) for {} images",
                size.name()
            ),
        )),
    }
}

/// Reads one npz batch file.
pub fn load_npz_batch(path: &Path, size: ImagenetSize) -> Result<ImageSet, DataError> {
    let file = File::open(path).map_err(DataError::io(path))?;
    parse_npz_batch(BufReader::new(file), &path.display().to_string(), size)
}

/// Where the data of one layout was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagenetFiles {
    /// The `(train, valid)` image folders.
    Folders(PathBuf, PathBuf),
    /// The training batches (in order of their number) and the validation file.
    Npz(Vec<PathBuf>, PathBuf),
}

/// Finds downsampled ImageNet of `size` under `root`: the two image folders if either
/// exists (then both must), else the npz files in `root` or its sub-folders. An error says
/// which files to place where.
pub fn locate(root: &Path, size: ImagenetSize) -> Result<ImagenetFiles, DataError> {
    let (train_name, valid_name) = size.folders();
    let (train, valid) = (root.join(&train_name), root.join(&valid_name));
    let missing = |message: String| DataError::MissingData {
        dataset: size.name(),
        message,
    };
    match (train.is_dir(), valid.is_dir()) {
        (true, true) => return Ok(ImagenetFiles::Folders(train, valid)),
        (true, false) | (false, true) => {
            let absent = if train.is_dir() { &valid } else { &train };
            return Err(missing(format!(
                "the split folder {} is missing. {}",
                absent.display(),
                placement(root, size)
            )));
        }
        (false, false) => {}
    }
    if !root.is_dir() {
        return Err(missing(format!(
            "{} is not a folder. {}",
            root.display(),
            placement(root, size)
        )));
    }
    let mut batches = Vec::new();
    let mut vals = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    dirs.extend(subfolders(root)?);
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).map_err(DataError::io(&dir))? {
            let path = entry.map_err(DataError::io(&dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name == VAL_NPZ {
                vals.push(path);
            } else if let Some(k) = name
                .strip_prefix(TRAIN_NPZ_PREFIX)
                .and_then(|rest| rest.strip_suffix(".npz"))
                .and_then(|k| k.parse::<u32>().ok())
            {
                batches.push((k, path));
            }
        }
    }
    batches.sort();
    vals.sort();
    match (batches.is_empty(), vals.as_slice()) {
        (false, [val]) => Ok(ImagenetFiles::Npz(
            batches.into_iter().map(|(_, p)| p).collect(),
            val.clone(),
        )),
        (true, []) => Err(missing(placement(root, size))),
        (true, _) => Err(missing(format!(
            "found {VAL_NPZ} but no {TRAIN_NPZ_PREFIX}<k>.npz. {}",
            placement(root, size)
        ))),
        (false, []) => Err(missing(format!(
            "found training batches but no {VAL_NPZ}. {}",
            placement(root, size)
        ))),
        (false, several) => Err(missing(format!(
            "{} copies of {VAL_NPZ} ({}); keep one",
            several.len(),
            several
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Where downsampled ImageNet's files go under `root`.
pub fn placement(root: &Path, size: ImagenetSize) -> String {
    let (train, valid) = size.folders();
    format!(
        "Place the image folders {train}/ and {valid}/ (PNG files, optionally in one sub-folder per \
         class) in {root}, or the official npz batches {TRAIN_NPZ_PREFIX}1.npz .. and {VAL_NPZ} \
         (Imagenet{s}_train_npz, Imagenet{s}_val_npz, the downsampled ImageNet of image-net.org) \
         in {root} or a sub-folder of it",
        root = root.display(),
        s = size.side(),
    )
}

/// Reads the `(train, valid)` splits of downsampled ImageNet of `size` from wherever
/// [`locate`] finds them under `root`.
pub fn load(root: &Path, size: ImagenetSize) -> Result<(ImageSet, ImageSet), DataError> {
    let (train, valid) = splits(locate(root, size)?)?;
    let read = |split: &ImagenetSplit| {
        let mut images = Collect::default();
        split
            .decode(size, &mut images)
            .map(|()| images.into_set(size.shape()))
    };
    Ok((read(&train)?, read(&valid)?))
}

/// The source files of one split, listed but not decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ImagenetSplit {
    /// The image files of a folder.
    Folder(FolderListing),
    /// npz batch files, in reading order.
    Npz(Vec<PathBuf>),
}

/// The `(train, valid)` splits of the files [`locate`] found, image folders listed.
pub fn splits(files: ImagenetFiles) -> Result<(ImagenetSplit, ImagenetSplit), DataError> {
    Ok(match files {
        ImagenetFiles::Folders(train, valid) => (
            ImagenetSplit::Folder(list_image_folder(&train)?),
            ImagenetSplit::Folder(list_image_folder(&valid)?),
        ),
        ImagenetFiles::Npz(batches, val) => {
            (ImagenetSplit::Npz(batches), ImagenetSplit::Npz(vec![val]))
        }
    })
}

impl ImagenetSplit {
    /// The files the split is decoded from, in order.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            Self::Folder(listing) => listing.files.iter().map(|(p, _)| p.as_path()).collect(),
            Self::Npz(files) => files.iter().map(PathBuf::as_path).collect(),
        }
    }

    /// Decodes the split in order into `sink`, with bounded memory (a chunk of images or of
    /// an npz member at a time).
    pub(crate) fn decode(
        &self,
        size: ImagenetSize,
        sink: &mut dyn ImageSink,
    ) -> Result<(), DataError> {
        match self {
            Self::Folder(listing) => {
                let side = size.side() as u32;
                decode_listing(&listing.files, Some((side, side)), sink).map(drop)
            }
            Self::Npz(files) => files.iter().try_for_each(|path| {
                let file = File::open(path).map_err(DataError::io(path))?;
                read_npz_batch(
                    BufReader::new(file),
                    &path.display().to_string(),
                    size,
                    sink,
                )
            }),
        }
    }
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
        let path = entry.map_err(DataError::io(dir))?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

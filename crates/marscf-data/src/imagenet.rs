//! Downsampled ImageNet (32x32 or 64x64 RGB, 1000 classes), in either form it is published:
//!
//! - Image folders as the reference reads them: `ROOT/train_32x32/` and `ROOT/valid_32x32/`
//!   (or `_64x64`), each read by [`read_image_folder`] (class sub-folders, or a flat folder
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
use crate::image_folder::read_image_folder;
use crate::images::ImageSet;
use crate::npy::Npz;

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
    let mut npz = Npz::new(reader, file)?;
    let data = npz
        .array("data")?
        .ok_or_else(|| DataError::npz(file, "no 'data' array"))?;
    let data_name = format!("{file}:data.npy");
    let side = size.side();
    let image_bytes = 3 * side * side;
    if data.dtype.size != 1 || data.dtype.signed {
        return Err(DataError::npz(
            data_name,
            format!("dtype {:?}, expected uint8", data.dtype),
        ));
    }
    let n = match data.shape.as_slice() {
        [n, row] if *row == image_bytes => *n,
        [n, 3, h, w] if *h == side && *w == side => *n,
        shape => {
            return Err(DataError::mismatch(
                data_name,
                format!(
                    "shape {shape:?}, expected (N, {image_bytes}) for {} images",
                    size.name()
                ),
            ));
        }
    };
    let labels = match npz.array("labels")? {
        None => vec![0; n],
        Some(labels) => {
            let name = format!("{file}:labels.npy");
            let values = labels.to_i64(&name)?;
            if values.len() != n {
                return Err(DataError::mismatch(
                    name,
                    format!("{} labels for {n} images", values.len()),
                ));
            }
            values
                .iter()
                .enumerate()
                .map(|(index, &label)| {
                    if (1..=IMAGENET_CLASSES as i64).contains(&label) {
                        Ok((label - 1) as u16)
                    } else {
                        Err(DataError::LabelOutOfRange {
                            file: name.clone(),
                            index,
                            label,
                            classes: IMAGENET_CLASSES,
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(ImageSet {
        shape: size.shape(),
        pixels: data.data,
        labels,
    })
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
    let shape = size.shape();
    let expected = Some((size.side() as u32, size.side() as u32));
    match locate(root, size)? {
        ImagenetFiles::Folders(train, valid) => Ok((
            read_image_folder(&train, expected)?.images,
            read_image_folder(&valid, expected)?.images,
        )),
        ImagenetFiles::Npz(batches, val) => {
            let train = ImageSet::concat(shape, batches.iter().map(|p| load_npz_batch(p, size)))?;
            Ok((train, load_npz_batch(&val, size)?))
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

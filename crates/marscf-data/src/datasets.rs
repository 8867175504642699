//! The datasets of the reference by name, and one entry point that loads the training and
//! test splits of any of them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::DataError;
use crate::cache::{self, CacheKey, Fingerprint};
use crate::cifar::CifarLayout;
use crate::imagenet::{ImagenetSize, ImagenetSplit};
use crate::images::{Collect, ImageSet, ImageSink};
use crate::mnist::{self, MnistSplit, embedded};
use crate::transform::MnistLayout;
use crate::{cifar, imagenet};

/// A dataset the reference trains on (plus the embedded MNIST sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// MNIST read from its four IDX files.
    Mnist,
    /// The MNIST sample compiled into this crate (1,600 training and 400 test digits).
    MnistSample,
    /// CIFAR-10, binary or Python distribution.
    Cifar10,
    /// Downsampled ImageNet 32x32.
    Imagenet32,
    /// Downsampled ImageNet 64x64.
    Imagenet64,
}

impl DatasetName {
    /// Every dataset, in the order of the enum.
    pub const ALL: [Self; 5] = [
        Self::Mnist,
        Self::MnistSample,
        Self::Cifar10,
        Self::Imagenet32,
        Self::Imagenet64,
    ];

    /// The canonical name (`"mnist"`, `"mnist-sample"`, `"cifar10"`, `"imagenet32"`,
    /// `"imagenet64"`), which [`FromStr`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::MnistSample => "mnist-sample",
            Self::Cifar10 => "cifar10",
            Self::Imagenet32 => "imagenet32",
            Self::Imagenet64 => "imagenet64",
        }
    }

    /// `[C, H, W]` of the images [`load`] returns (MNIST's depends on `layout`).
    pub fn shape(self, layout: MnistLayout) -> [usize; 3] {
        match self {
            Self::Mnist | Self::MnistSample => layout.shape(),
            Self::Cifar10 | Self::Imagenet32 => [3, 32, 32],
            Self::Imagenet64 => [3, 64, 64],
        }
    }

    /// Whether [`load`] needs a data folder (all but the embedded sample do).
    pub fn needs_root(self) -> bool {
        self != Self::MnistSample
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetName {
    type Err = DataError;

    /// Accepts the canonical names and the reference's spellings (`imagenet_32`,
    /// `imagenet_64`), ignoring case, plus `mnist_sample` and `cifar-10`.
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(Self::Mnist),
            "mnist-sample" | "mnist_sample" => Ok(Self::MnistSample),
            "cifar10" | "cifar-10" => Ok(Self::Cifar10),
            "imagenet32" | "imagenet_32" => Ok(Self::Imagenet32),
            "imagenet64" | "imagenet_64" => Ok(Self::Imagenet64),
            _ => Err(DataError::UnknownDataset {
                name: s.to_string(),
            }),
        }
    }
}

/// The `(train, test)` splits of `name` as 8-bit images (shapes: [`DatasetName::shape`]),
/// decoded into memory.
///
/// - `MnistSample`: the embedded sample; `root` is ignored.
/// - `Mnist`: the four IDX files in `root` (or `root/mnist`, `root/MNIST/raw`).
/// - `Cifar10`: the binary distribution in `root` or `root/cifar-10-batches-bin`, else the
///   Python one in `root/cifar-10-batches-py`.
/// - `Imagenet32` / `Imagenet64`: `root/train_SxS` and `root/valid_SxS` image folders, else
///   the npz batches in `root` or its sub-folders; the test split is the validation set.
///
/// MNIST digits take `layout`. A missing `root`, or missing files, is a
/// [`DataError::MissingData`] that says which files to place where. [`load_with`] loads
/// through the decode cache instead.
pub fn load(
    name: DatasetName,
    root: Option<&Path>,
    layout: MnistLayout,
) -> Result<(ImageSet, ImageSet), DataError> {
    load_with(
        name,
        root,
        &LoadOptions {
            layout,
            ..LoadOptions::default()
        },
    )
}

/// Where [`load_with`] keeps the decode cache ([`crate::cache`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDir {
    /// `<data folder>/.marscf-cache` (a hidden folder, which no reader lists). A data folder
    /// that cannot be written is a [`DataError::CacheUnwritable`]: give a folder with
    /// [`CacheDir::At`], or load into memory.
    InDataRoot,
    /// This folder (created if needed), e.g. on a faster or writable disk. One folder can
    /// hold the caches of several datasets.
    At(PathBuf),
}

/// How [`load_with`] loads a dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The layout of MNIST digits.
    pub layout: MnistLayout,
    /// `None` (the default): decode into memory at every load, as [`load`] does. `Some`:
    /// decode each split once into raw files in this cache, then memory-map them, so that
    /// later loads skip decoding and the pixels are paged in from disk as batches touch them
    /// (memory does not grow with the dataset; labels, 2 bytes per image, stay in memory).
    /// The embedded MNIST sample is always in memory.
    pub cache: Option<CacheDir>,
    /// With a cache, also check the CRC-32 of a cache's pixels before using it (reads the
    /// whole file once per load). Without, a cache is checked by its manifest, the
    /// fingerprint of the sources, the files' sizes and the labels' CRC-32.
    pub verify_cache: bool,
}

impl LoadOptions {
    /// Loading through the cache `dir`, MNIST in `layout`.
    pub fn cached(layout: MnistLayout, dir: CacheDir) -> Self {
        Self {
            layout,
            cache: Some(dir),
            verify_cache: false,
        }
    }
}

/// The `(train, test)` splits of `name` as [`load`] reads them, in memory or through the
/// decode cache as `options` say. A split read from the cache has the same bytes, labels and
/// order as one decoded into memory; only where [`ImageSet::pixels`] live differs.
pub fn load_with(
    name: DatasetName,
    root: Option<&Path>,
    options: &LoadOptions,
) -> Result<(ImageSet, ImageSet), DataError> {
    let layout = options.layout;
    if name == DatasetName::MnistSample {
        return Ok((
            ImageSet::from_mnist(&embedded::train(), layout),
            ImageSet::from_mnist(&embedded::test(), layout),
        ));
    }
    let root = root.ok_or_else(|| DataError::MissingData {
        dataset: name.to_string(),
        message: format!(
            "no data folder was given. {}",
            placement(name, Path::new("<data folder>"))
        ),
    })?;
    let (train, test) = Source::locate(name, root)?;
    let shape = name.shape(layout);
    let Some(cache) = &options.cache else {
        return Ok((
            train.in_memory(shape, layout)?,
            test.in_memory(shape, layout)?,
        ));
    };
    let dir = match cache {
        CacheDir::InDataRoot => root.join(cache::DEFAULT_FOLDER),
        CacheDir::At(dir) => dir.clone(),
    };
    let cached = |split: &str, source: Source| {
        let key = CacheKey {
            dataset: name.name(),
            split,
            shape,
        };
        let reader = format!("{} {:?}", source.reader(), layout);
        let sources = Fingerprint::of_files(&reader, root, source.files())?;
        cache::load_or_build(&dir, &key, sources, options.verify_cache, |sink| {
            source.decode(layout, sink)
        })
    };
    Ok((cached("train", train)?, cached("test", test)?))
}

/// The files of one split and the reader that decodes them.
enum Source {
    /// MNIST's `(images, labels)` IDX files.
    Mnist(PathBuf, PathBuf),
    /// CIFAR-10 batch files.
    Cifar(Vec<PathBuf>, CifarLayout),
    /// Downsampled ImageNet.
    Imagenet(ImagenetSplit, ImagenetSize),
}

impl Source {
    /// The `(train, test)` sources of `name` under `root`.
    fn locate(name: DatasetName, root: &Path) -> Result<(Self, Self), DataError> {
        Ok(match name {
            DatasetName::MnistSample => unreachable!("the embedded sample has no files"),
            DatasetName::Mnist => {
                let dir = mnist::locate(root)?;
                let (train, test) = (
                    mnist::split_files(&dir, mnist::TRAIN_FILES),
                    mnist::split_files(&dir, mnist::TEST_FILES),
                );
                (Self::Mnist(train.0, train.1), Self::Mnist(test.0, test.1))
            }
            DatasetName::Cifar10 => {
                let (dir, layout) = cifar::locate(root)?;
                let (train, test) = cifar::split_files(&dir, layout);
                (Self::Cifar(train, layout), Self::Cifar(vec![test], layout))
            }
            DatasetName::Imagenet32 | DatasetName::Imagenet64 => {
                let size = if name == DatasetName::Imagenet32 {
                    ImagenetSize::S32
                } else {
                    ImagenetSize::S64
                };
                let (train, valid) = imagenet::splits(imagenet::locate(root, size)?)?;
                (Self::Imagenet(train, size), Self::Imagenet(valid, size))
            }
        })
    }

    /// The reader, for the fingerprint of a cache.
    fn reader(&self) -> String {
        match self {
            Self::Mnist(..) => "mnist idx".into(),
            Self::Cifar(_, layout) => format!("cifar10 {layout:?}"),
            Self::Imagenet(ImagenetSplit::Folder(_), size) => format!("imagenet folder {size:?}"),
            Self::Imagenet(ImagenetSplit::Npz(_), size) => format!("imagenet npz {size:?}"),
        }
    }

    /// The files the split is decoded from, in order.
    fn files(&self) -> Vec<&Path> {
        match self {
            Self::Mnist(images, labels) => vec![images, labels],
            Self::Cifar(files, _) => files.iter().map(PathBuf::as_path).collect(),
            Self::Imagenet(split, _) => split.files(),
        }
    }

    fn read_mnist(images: &Path, labels: &Path) -> Result<MnistSplit, DataError> {
        let names = (images.display().to_string(), labels.display().to_string());
        MnistSplit::from_idx(
            &crate::error::read_file(images)?,
            &crate::error::read_file(labels)?,
            (&names.0, &names.1),
        )
    }

    /// Decodes the split in order into `sink`.
    fn decode(&self, layout: MnistLayout, sink: &mut dyn ImageSink) -> Result<(), DataError> {
        match self {
            Self::Mnist(images, labels) => {
                let set = ImageSet::from_mnist(&Self::read_mnist(images, labels)?, layout);
                sink.push(&set.pixels, &set.labels)
            }
            Self::Cifar(files, layout) => cifar::decode_files(files, *layout, sink),
            Self::Imagenet(split, size) => split.decode(*size, sink),
        }
    }

    /// The split decoded into memory.
    fn in_memory(&self, shape: [usize; 3], layout: MnistLayout) -> Result<ImageSet, DataError> {
        if let Self::Mnist(images, labels) = self {
            return Ok(ImageSet::from_mnist(
                &Self::read_mnist(images, labels)?,
                layout,
            ));
        }
        let mut images = Collect::default();
        self.decode(layout, &mut images)?;
        Ok(images.into_set(shape))
    }
}

/// Which files of `name` to place where under `root`.
pub fn placement(name: DatasetName, root: &Path) -> String {
    match name {
        DatasetName::MnistSample => "nothing: the sample is compiled in".into(),
        DatasetName::Mnist => match mnist::locate(root) {
            Err(DataError::MissingData { message, .. }) => message,
            _ => format!("MNIST's four IDX files in {}", root.display()),
        },
        DatasetName::Cifar10 => cifar::placement(root),
        DatasetName::Imagenet32 => imagenet::placement(root, ImagenetSize::S32),
        DatasetName::Imagenet64 => imagenet::placement(root, ImagenetSize::S64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        for (text, name) in [
            ("mnist", DatasetName::Mnist),
            ("mnist-sample", DatasetName::MnistSample),
            ("cifar10", DatasetName::Cifar10),
            ("CIFAR10", DatasetName::Cifar10),
            ("imagenet32", DatasetName::Imagenet32),
            ("imagenet_32", DatasetName::Imagenet32),
            ("imagenet64", DatasetName::Imagenet64),
            ("imagenet_64", DatasetName::Imagenet64),
        ] {
            assert_eq!(text.parse::<DatasetName>().unwrap(), name);
        }
        for name in DatasetName::ALL {
            assert_eq!(name.to_string().parse::<DatasetName>().unwrap(), name);
        }
        assert!(matches!(
            "svhn".parse::<DatasetName>(),
            Err(DataError::UnknownDataset { .. })
        ));
    }

    #[test]
    fn loads_the_embedded_sample_in_each_layout() {
        for layout in [
            MnistLayout::Reference,
            MnistLayout::Grey32,
            MnistLayout::Grey28,
        ] {
            let (train, test) = load(DatasetName::MnistSample, None, layout).unwrap();
            assert_eq!((train.len(), test.len()), (1600, 400));
            assert_eq!(train.shape, DatasetName::MnistSample.shape(layout));
            assert!(train.labels.iter().all(|&l| l < 10));
        }
    }
}

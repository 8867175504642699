//! The datasets of the reference by name, and one entry point that loads the training and
//! test splits of any of them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::DataError;
use crate::imagenet::ImagenetSize;
use crate::images::ImageSet;
use crate::mnist::{self, embedded};
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
    pub fn as_str(self) -> &'static str {
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
        f.write_str(self.as_str())
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

/// The `(train, test)` splits of `name` as 8-bit images (shapes: [`DatasetName::shape`]).
///
/// - `MnistSample`: the embedded sample; `root` is ignored.
/// - `Mnist`: the four IDX files in `root` (or `root/mnist`, `root/MNIST/raw`).
/// - `Cifar10`: the binary distribution in `root` or `root/cifar-10-batches-bin`, else the
///   Python one in `root/cifar-10-batches-py`.
/// - `Imagenet32` / `Imagenet64`: `root/train_SxS` and `root/valid_SxS` image folders, else
///   the npz batches in `root` or its sub-folders; the test split is the validation set.
///
/// MNIST digits take `layout`. A missing `root`, or missing files, is a
/// [`DataError::MissingData`] that says which files to place where.
pub fn load(
    name: DatasetName,
    root: Option<&Path>,
    layout: MnistLayout,
) -> Result<(ImageSet, ImageSet), DataError> {
    let root = || {
        root.ok_or_else(|| DataError::MissingData {
            dataset: name.to_string(),
            message: format!(
                "no data folder was given. {}",
                placement(name, Path::new("<data folder>"))
            ),
        })
    };
    match name {
        DatasetName::MnistSample => Ok((
            ImageSet::from_mnist(&embedded::train(), layout),
            ImageSet::from_mnist(&embedded::test(), layout),
        )),
        DatasetName::Mnist => {
            let (train, test) = mnist::load(root()?)?;
            Ok((
                ImageSet::from_mnist(&train, layout),
                ImageSet::from_mnist(&test, layout),
            ))
        }
        DatasetName::Cifar10 => cifar::load(root()?),
        DatasetName::Imagenet32 => imagenet::load(root()?, ImagenetSize::S32),
        DatasetName::Imagenet64 => imagenet::load(root()?, ImagenetSize::S64),
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

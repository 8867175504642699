//! What a model was trained on, recorded in its checkpoints so that evaluating or resuming
//! it finds the same data (and refuses other data) without being told.

use std::path::PathBuf;

use marscf_data::{DatasetName, ImageSet, MnistLayout};
use serde::{Deserialize, Serialize};

/// The reference's preprocessing, as recorded: 8-bit pixels `k` become
/// `k / 255 - 0.5 + u / 256`, `u ~ U(0, 1)`.
pub const REFERENCE_PREPROCESSING: &str =
    "x = k/255 - 0.5 + u/256, u ~ U(0, 1) (8-bit pixels k, uniform dequantisation)";

/// The data of a run: which dataset, how its images look, how they were read and
/// preprocessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// The dataset's canonical name ([`DatasetName::name`]).
    pub dataset: String,
    /// `[C, H, W]` of every image.
    pub image: [usize; 3],
    /// Bits per pixel value: `2^bits` levels.
    pub bits: u32,
    /// The layout of MNIST digits (`reference`, `grey32`, `grey28`); `None` for other data.
    pub mnist_layout: Option<String>,
    /// The folder the files were read from (`None` for the embedded sample).
    pub root: Option<PathBuf>,
    /// How pixels become the flow's input.
    pub preprocessing: String,
    /// The run evaluated on only the first this many test images (`None`: all of them).
    #[serde(default)]
    pub test_images: Option<usize>,
    /// Training images the run was given (`None` in checkpoints that did not record it).
    #[serde(default)]
    pub train_images: Option<usize>,
    /// [`ImageSet::fingerprint`] of the training images, hex (`None` likewise): a resume on
    /// other data is refused.
    #[serde(default)]
    pub train_fingerprint: Option<String>,
}

impl DataInfo {
    /// `name`'s images as [`marscf_data::load`] reads them from `root` with `layout`: 8 bits,
    /// the reference's preprocessing.
    pub fn new(name: DatasetName, layout: MnistLayout, root: Option<PathBuf>) -> Self {
        let is_mnist = matches!(name, DatasetName::Mnist | DatasetName::MnistSample);
        Self {
            dataset: name.name().to_string(),
            image: name.shape(layout),
            bits: 8,
            mnist_layout: is_mnist.then(|| layout_name(layout).to_string()),
            root,
            preprocessing: REFERENCE_PREPROCESSING.to_string(),
            test_images: None,
            train_images: None,
            train_fingerprint: None,
        }
    }

    /// The same description, recording the count and fingerprint of `train`, the training
    /// images a run is given.
    pub fn with_training_set(self, train: &ImageSet) -> Self {
        Self {
            train_images: Some(train.len()),
            train_fingerprint: Some(format!("{:08x}", train.fingerprint())),
            ..self
        }
    }

    /// Fills what a description written before these were recorded lacks from `current`
    /// (so that an old checkpoint compares with the run given on what it recorded).
    pub fn or_recorded_from(self, current: &DataInfo) -> Self {
        Self {
            train_images: self.train_images.or(current.train_images),
            train_fingerprint: self
                .train_fingerprint
                .or_else(|| current.train_fingerprint.clone()),
            ..self
        }
    }

    /// The same data quantised to `bits` bits per value (Glow's convention, see
    /// [`marscf_data::quantize_to_unit`]); the preprocessing recorded says so. At 8 bits
    /// this is [`DataInfo::new`]'s description unchanged.
    pub fn with_bits(self, bits: u32) -> Self {
        let preprocessing = if bits == 8 {
            REFERENCE_PREPROCESSING.to_string()
        } else {
            format!(
                "x = floor(k/2^{shift})/{top} - 0.5 + u/{bins}, u ~ U(0, 1) (8-bit pixels k quantised to {bits} bits, uniform dequantisation)",
                shift = 8 - bits.min(8),
                top = (1u64 << bits.min(8)) - 1,
                bins = 1u64 << bits.min(8),
            )
        };
        Self {
            bits,
            preprocessing,
            ..self
        }
    }

    /// The dataset, if its name is one this build knows.
    pub fn dataset_name(&self) -> Option<DatasetName> {
        self.dataset.parse().ok()
    }

    /// The recorded MNIST layout ([`MnistLayout::Reference`] if none or unknown).
    pub fn layout(&self) -> MnistLayout {
        match self.mnist_layout.as_deref() {
            Some("grey32") => MnistLayout::Grey32,
            Some("grey28") => MnistLayout::Grey28,
            _ => MnistLayout::Reference,
        }
    }
}

/// The name a layout is recorded (and given on the command line) by.
pub fn layout_name(layout: MnistLayout) -> &'static str {
    match layout {
        MnistLayout::Reference => "reference",
        MnistLayout::Grey32 => "grey32",
        MnistLayout::Grey28 => "grey28",
    }
}

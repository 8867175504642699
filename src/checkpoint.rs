//! Native checkpoints: the weights in Burn's burnpack format (`<name>.bpk`) with a
//! description beside them (`<name>.json`): the model's configuration, the data it was
//! trained on and the run's settings. Both files are written whole under a temporary name
//! and renamed, the description first, so an interrupted save never leaves a broken
//! checkpoint.

use std::path::{Path, PathBuf};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{BurnpackStore, ModuleAdapter, ModuleSnapshot, ModuleStore};
use burn::tensor::Device;

use marscf_data::atomic_file::Existing;
use serde::{Deserialize, Serialize};

use crate::data_info::DataInfo;
use crate::files;
use crate::params::for_each_param;
use crate::train::RunConfig;
use crate::{MarScf, MarScfConfig, ModelError};

/// Where a checkpoint's model came from: the data it was trained on and the run's
/// settings (both `None` for a model built or imported rather than trained).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// The training data.
    pub data: Option<DataInfo>,
    /// The settings of the run that wrote it.
    pub run: Option<RunConfig>,
}

/// What a checkpoint's `.json` says: the model's configuration and its [`Origin`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The model's configuration.
    pub model: MarScfConfig,
    /// Its data and run.
    #[serde(flatten)]
    pub origin: Origin,
}

/// `<stem>.bpk` and `<stem>.json` for a checkpoint named by `path` (with or without one
/// of those extensions).
pub fn checkpoint_files(path: &Path) -> (PathBuf, PathBuf) {
    let stem = match path.extension().and_then(|e| e.to_str()) {
        Some("bpk" | "json") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    (with_suffix(&stem, ".bpk"), with_suffix(&stem, ".json"))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Saves `model` as `<path>.json` (its configuration and `origin`), then `<path>.bpk`,
/// each written whole under a temporary name and renamed ([`marscf_data::atomic_file`]). The weights'
/// rename comes last: a reader finds either no weights or weights with their description
/// beside them, and an existing checkpoint is replaced only by complete files.
pub fn save(model: &MarScf, origin: &Origin, path: &Path) -> Result<(), ModelError> {
    let (weights, config) = checkpoint_files(path);
    if let Some(dir) = weights.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(ModelError::io("create", dir))?;
    }
    let info = CheckpointInfo {
        model: model.config.clone(),
        origin: origin.clone(),
    };
    let json = serde_json::to_string_pretty(&info).expect("checkpoint information serialises");
    let mut store = BurnpackStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(ModelError::format(&weights, "cannot write the weights"))?;
    let bytes = store
        .get_bytes()
        .map_err(ModelError::format(&weights, "cannot write the weights"))?;
    files::write(&config, json.as_bytes(), Existing::Replace)?;
    files::write(&weights, &bytes, Existing::Replace)
}

/// Reads what a checkpoint's `.json` says. A file holding only a model configuration (as
/// written before checkpoints recorded their origin, or given by hand) has an empty
/// [`Origin`].
pub fn load_info(path: &Path) -> Result<CheckpointInfo, ModelError> {
    let (_, config) = checkpoint_files(path);
    let text = std::fs::read_to_string(&config).map_err(ModelError::io("read", &config))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(ModelError::format(&config, "not a valid JSON file"))?;
    if value.get("model").is_some() {
        serde_json::from_value(value).map_err(ModelError::format(
            &config,
            "not a valid checkpoint description",
        ))
    } else {
        let model = serde_json::from_value(value).map_err(ModelError::format(
            &config,
            "not a valid model configuration",
        ))?;
        Ok(CheckpointInfo {
            model,
            origin: Origin::default(),
        })
    }
}

/// Reads the model configuration saved beside a checkpoint (or given as a file of its own).
pub fn load_config(path: &Path) -> Result<MarScfConfig, ModelError> {
    Ok(load_info(path)?.model)
}

/// Loads a checkpoint written by [`save`]: the model is built from the saved configuration
/// and every one of its parameters must be in the file with its shape.
pub fn load(path: &Path, device: &Device) -> Result<MarScf, ModelError> {
    let config = load_config(path)?;
    let (weights, _) = checkpoint_files(path);
    let mut store = BurnpackStore::from_file(&weights).auto_extension(false);
    let tensors: Vec<PackTensor> = store
        .get_all_tensors()
        .map_err(ModelError::format(&weights, "not a valid burnpack file"))?
        .values()
        .cloned()
        .collect();
    let mut model = config.init(device)?;
    apply_tensors(&mut model, tensors, None, false, &weights, false)?;
    Ok(model)
}

/// Loads `tensors` into `model` and lists every missing, unused or wrongly-shaped tensor;
/// unless `partial`, any such problem is an error. A parameter with NaN or infinite values
/// is always an error. Returns (tensors loaded, problems).
pub(crate) fn apply_tensors(
    model: &mut MarScf,
    tensors: Vec<PackTensor>,
    adapter: Option<Box<dyn ModuleAdapter>>,
    skip_enum_variants: bool,
    path: &Path,
    partial: bool,
) -> Result<(usize, Vec<String>), ModelError> {
    let result = model.apply(tensors, None, adapter, skip_enum_variants);
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(
        result
            .missing
            .iter()
            .map(|(key, _)| format!("missing in the checkpoint: {key}")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .map(|key| format!("not used by the model: {key}")),
    );
    if !problems.is_empty() && !partial {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            problems,
        });
    }
    let mut non_finite = Vec::new();
    for_each_param(model, |name, _, value| {
        if !value.is_finite().all().into_scalar::<bool>() {
            non_finite.push(name);
        }
    });
    if !non_finite.is_empty() {
        return Err(ModelError::NonFinite {
            path: path.to_path_buf(),
            tensors: non_finite,
        });
    }
    Ok((result.applied.len(), problems))
}

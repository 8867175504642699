//! Native checkpoints: the weights in Burn's burnpack format (`<name>.bpk`) with the
//! model's configuration beside them (`<name>.json`). Both files are written to a
//! temporary file and renamed, so an interrupted save never leaves a broken checkpoint.

use std::path::{Path, PathBuf};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{BurnpackStore, ModuleAdapter, ModuleSnapshot, ModuleStore};
use burn::tensor::Device;

use crate::params::for_each_param;
use crate::{MarScf, MarScfConfig, ModelError};

/// `<stem>.bpk` and `<stem>.json` for a checkpoint named by `path` (with or without one
/// of those extensions).
pub fn checkpoint_files(path: &Path) -> (PathBuf, PathBuf) {
    let stem = match path.extension().and_then(|e| e.to_str()) {
        Some("bpk" | "json") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let with = |ext: &str| {
        let mut name = stem.clone().into_os_string();
        name.push(format!(".{ext}"));
        PathBuf::from(name)
    };
    (with("bpk"), with("json"))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let io = |e: std::io::Error| ModelError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io(e)
    })
}

/// Saves `model` as `<path>.bpk` + `<path>.json`, replacing an existing checkpoint only
/// once the new files are complete.
pub fn save(model: &MarScf, path: &Path) -> Result<(), ModelError> {
    let (weights, config) = checkpoint_files(path);
    if let Some(dir) = weights.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    let json = serde_json::to_string_pretty(&model.config).expect("a configuration serialises");
    let mut store = BurnpackStore::from_file(&weights)
        .auto_extension(false)
        .overwrite(true);
    model.save_into(&mut store).map_err(|e| ModelError::Io {
        path: weights.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&config, json.as_bytes())
}

/// Reads the configuration saved beside a checkpoint.
pub fn load_config(path: &Path) -> Result<MarScfConfig, ModelError> {
    let (_, config) = checkpoint_files(path);
    let text = std::fs::read_to_string(&config).map_err(|e| ModelError::Io {
        path: config.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: config,
        message: e.to_string(),
    })
}

/// Loads a checkpoint written by [`save`]: the model is built from the saved configuration
/// and every one of its parameters must be in the file with its shape.
pub fn load(path: &Path, device: &Device) -> Result<MarScf, ModelError> {
    let config = load_config(path)?;
    let (weights, _) = checkpoint_files(path);
    let mut store = BurnpackStore::from_file(&weights).auto_extension(false);
    let tensors: Vec<PackTensor> = store
        .get_all_tensors()
        .map_err(|e| ModelError::Format {
            path: weights.clone(),
            message: e.to_string(),
        })?
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

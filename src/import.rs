//! Loading the reference implementation's PyTorch checkpoints (`torch.save(state_dict)`).
//!
//! [`reference_key_map`] is the one table from the reference's parameter names to this
//! crate's. The reference numbers its modules in one flat list
//! `[Squeeze, K x FlowStep, Split, Squeeze, ...]`: flow step `k` of level `l` (from 0) is
//! module `l (K + 2) + 1 + k`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{KeyRemapper, ModuleStore, PyTorchToBurnAdapter, PytorchStore};
use burn::tensor::Device;
use marscf_core::{CouplingKind, MixLogCdfConfig, MultiScaleFlowConfig};

use crate::checkpoint::apply_tensors;
use crate::{MarScf, MarScfConfig, ModelError, PriorKind};

/// The reference's module index of flow step `step` of `level` (both from 0).
pub fn reference_step_index(level: usize, step: usize, steps: usize) -> usize {
    level * (steps + 2) + 1 + step
}

/// The rewrites of parameter names inside a module (after the module's index is mapped),
/// applied in order: `(regex, replacement)`.
const KEY_RULES: [(&str, &str); 22] = [
    // Flow step: ActNorm, 1x1 convolution.
    (r"\.actnormlayer\.is_initialized$", ".actnorm.initialized"),
    (r"\.actnormlayer\.", ".actnorm."),
    (r"\.invert_1x1_layer\.", ".inv_conv."),
    // Affine coupling network: conv + ActNorm twice, then the zero convolution.
    (
        r"\.coupling\.NN_net\.conv([12])\.weight$",
        ".coupling.net.conv$1.conv.weight",
    ),
    (
        r"\.coupling\.NN_net\.conv([12])\.actnorm\.is_initialized$",
        ".coupling.net.conv$1.actnorm.initialized",
    ),
    (
        r"\.coupling\.NN_net\.conv([12])\.actnorm\.",
        ".coupling.net.conv$1.actnorm.",
    ),
    (
        r"\.coupling\.NN_net\.conv3\.(weight|bias)$",
        ".coupling.net.conv3.conv.$1",
    ),
    (
        r"\.coupling\.NN_net\.conv3\.logs$",
        ".coupling.net.conv3.logs",
    ),
    // MixLogCDF coupling network (Flow++): WN convolutions wrap an nn.Conv2d as `.conv`.
    (r"\.coupling\.nn\.in_conv\.conv\.", ".coupling.net.in_conv."),
    (
        r"\.coupling\.nn\.mid_convs\.(\d+)\.conv\.conv\.conv\.",
        ".coupling.net.blocks.$1.gated_conv.conv.",
    ),
    (
        r"\.coupling\.nn\.mid_convs\.(\d+)\.conv\.gate\.conv\.",
        ".coupling.net.blocks.$1.gated_conv.gate.",
    ),
    (
        r"\.coupling\.nn\.mid_convs\.(\d+)\.norm_([12])\.",
        ".coupling.net.blocks.$1.norm_$2.",
    ),
    // Burn's LayerNorm calls its affine parameters gamma and beta.
    (r"\.(norm_[12])\.weight$", ".$1.gamma"),
    (r"\.(norm_[12])\.bias$", ".$1.beta"),
    (
        r"\.coupling\.nn\.mid_convs\.(\d+)\.attn\.",
        ".coupling.net.blocks.$1.attention.",
    ),
    (
        r"\.coupling\.nn\.out_conv\.conv\.",
        ".coupling.net.out_conv.",
    ),
    (r"\.coupling\.nn\.rescale\.", ".coupling.net.rescale."),
    // mAR prior, one ChannelPrior per level.
    (
        r"^flow\.c_prior\.prior_list\.(\d+)\.z1_cond_network\.0\.",
        "prior.levels.$1.condition.conv1.",
    ),
    (
        r"^flow\.c_prior\.prior_list\.(\d+)\.z1_cond_network\.2\.",
        "prior.levels.$1.condition.conv2.",
    ),
    (
        r"^flow\.c_prior\.prior_list\.(\d+)\.prior_lstm\.conv_embed\.",
        "prior.levels.$1.embed.",
    ),
    (
        r"^flow\.c_prior\.prior_list\.(\d+)\.prior_lstm\.conv_out1\.",
        "prior.levels.$1.out.",
    ),
    (
        r"^flow\.c_prior\.prior_list\.(\d+)\.prior_lstm\.lstm\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$",
        "prior.levels.$1.lstm.layers.$3.$2",
    ),
];

/// Regex rewrites, applied in order, from reference keys (prefix already stripped) to
/// this crate's parameter paths.
pub fn reference_key_map(config: &MarScfConfig) -> Vec<(String, String)> {
    let flow = &config.flow;
    let mut map = Vec::new();
    for level in 0..flow.levels {
        for step in 0..flow.steps {
            let index = reference_step_index(level, step, flow.steps);
            map.push((
                format!(r"^flow\.layers\.{index}\."),
                format!("flow.levels.{level}.steps.{step}."),
            ));
        }
    }
    map.extend(
        KEY_RULES
            .iter()
            .map(|(from, to)| (from.to_string(), to.to_string())),
    );
    map
}

/// [`reference_key_map`] compiled for one configuration.
pub struct KeyTable {
    remapper: KeyRemapper,
}

impl KeyTable {
    /// The table for `config`'s levels, steps and coupling.
    pub fn new(config: &MarScfConfig) -> Self {
        let remapper = KeyRemapper::from_patterns(reference_key_map(config))
            .expect("the key table's patterns are valid regexes");
        Self { remapper }
    }

    /// This crate's parameter path for a reference key (prefix already stripped).
    pub fn native_path(&self, reference_key: &str) -> String {
        self.remapper
            .to_regex_pairs()
            .iter()
            .fold(reference_key.to_string(), |key, (pattern, to)| {
                pattern.replace_all(&key, to.as_str()).into_owned()
            })
    }
}

/// Reference parameters that the reference builds but never uses, accepted and dropped:
/// the top level's conditioning network (the top level has nothing to condition on).
pub fn is_reference_only(key: &str, levels: usize) -> bool {
    levels.checked_sub(1).is_some_and(|top| {
        key.starts_with(&format!("flow.c_prior.prior_list.{top}.z1_cond_network."))
    })
}

/// Why the model's shape cannot be inferred from a reference checkpoint's keys (see
/// [`infer_config`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferError {
    /// Neither flow modules (`flow.layers.<i>`) nor prior levels (`flow.c_prior...`).
    #[error("no flow or prior keys")]
    NoModel,
    /// The number of flow modules is not `L (K + 2) - 1` for the `L` prior levels.
    #[error("cannot infer K: {modules} modules for {levels} levels")]
    Steps {
        /// Flow modules found.
        modules: usize,
        /// Prior levels found.
        levels: usize,
    },
    /// A key the inference reads is absent.
    #[error("no key {key}")]
    MissingKey {
        /// The reference's key (prefix stripped).
        key: String,
    },
    /// A tensor the inference reads has another rank than the reference gives it.
    #[error("{key}: expected a tensor of rank {rank}, shape {expected}, found shape {found:?}")]
    Rank {
        /// The reference's key (prefix stripped).
        key: String,
        /// The rank the reference gives it.
        rank: usize,
        /// Its shape in the reference's terms.
        expected: &'static str,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The MixLogCDF output convolution's channels are not `half (3 k + 2)`, `k >= 1`.
    #[error(
        "cannot infer the mixture components from {out_channels} output channels for {half} input channels"
    )]
    Components {
        /// Output channels of `nn.out_conv`.
        out_channels: usize,
        /// Input channels of `nn.in_conv` (half the step's channels).
        half: usize,
    },
    /// The first flow step's coupling has neither the affine nor the MixLogCDF keys.
    #[error("cannot infer the coupling: neither affine (NN_net) nor MixLogCDF (nn.in_conv) keys")]
    Coupling,
}

/// What [`load_reference`] did besides loading.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The configuration used.
    pub config: MarScfConfig,
    /// Whether it was inferred from the checkpoint's keys (no configuration given).
    pub config_inferred: bool,
    /// Whether the image size was assumed (inferred configuration, no image side given):
    /// see [`reference_image_side`].
    pub image_size_assumed: bool,
    /// The prefix stripped from every key (`module.` of DataParallel, a wrapping dict's
    /// key such as `state_dict.`), empty if none.
    pub prefix: String,
    /// Number of tensors loaded.
    pub loaded: usize,
    /// Reference-only keys dropped (see [`is_reference_only`]).
    pub ignored: Vec<String>,
    /// Problems tolerated by a partial load (empty otherwise).
    pub problems: Vec<String>,
}

/// Reads a reference checkpoint: a `state_dict`, possibly with DataParallel's `module.`
/// prefix or inside a dict (e.g. `{"state_dict": ...}`). Without `config`, the shape of
/// the model is inferred from the keys (see [`infer_config`]), for images `image_side`
/// pixels wide if given. Unless `partial`, any missing, unused or wrongly-shaped tensor
/// fails the load with every problem listed.
pub fn load_reference(
    path: &Path,
    config: Option<&MarScfConfig>,
    image_side: Option<usize>,
    partial: bool,
    device: &Device,
) -> Result<(MarScf, ImportReport), ModelError> {
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    let all: BTreeMap<String, PackTensor> = store
        .get_all_tensors()
        .map_err(ModelError::format(
            path,
            "not a readable PyTorch checkpoint",
        ))?
        .clone();
    let prefix = state_dict_prefix(all.keys()).ok_or_else(|| {
        ModelError::invalid(
            path,
            "no mAR-SCF parameters (keys `...flow.layers.<i>...`) in this file",
        )
    })?;
    let tensors: BTreeMap<String, PackTensor> = all
        .into_iter()
        .filter_map(|(key, mut tensor)| {
            let key = key.strip_prefix(&prefix)?.to_string();
            tensor.name = key.clone();
            Some((key, tensor))
        })
        .collect();

    let (config, config_inferred) = match config {
        Some(config) => (config.clone(), false),
        None => (
            infer_config(&tensors, image_side).map_err(ModelError::format(
                path,
                "cannot infer the model's configuration from its keys",
            ))?,
            true,
        ),
    };
    let (ignored, kept): (Vec<_>, Vec<_>) = tensors
        .into_values()
        .partition(|t| is_reference_only(&t.name, config.flow.levels));
    let (renamed, names) = KeyTable::new(&config).remapper.remap(kept);
    let reference_keys: BTreeMap<String, String> = names
        .into_iter()
        .map(|(native, reference)| (native, format!("{prefix}{reference}")))
        .collect();

    let mut model = config.init(device)?;
    let (loaded, problems) = apply_tensors(
        &mut model,
        renamed,
        Some(Box::new(PyTorchToBurnAdapter)),
        true,
        path,
        partial,
    )
    .map_err(|err| match err {
        ModelError::Mismatch { path, problems } => ModelError::Mismatch {
            path,
            problems: name_reference_keys(problems, &reference_keys),
        },
        other => other,
    })?;
    let problems = name_reference_keys(problems, &reference_keys);
    let report = ImportReport {
        image_size_assumed: config_inferred && image_side.is_none(),
        config,
        config_inferred,
        prefix,
        loaded,
        ignored: ignored.into_iter().map(|t| t.name).collect(),
        problems,
    };
    Ok((model, report))
}

/// Appends to each problem that quotes a parameter path (`'flow.levels.0...'`) the
/// checkpoint key it was read from, `reference_keys` mapping one to the other.
fn name_reference_keys(
    problems: Vec<String>,
    reference_keys: &BTreeMap<String, String>,
) -> Vec<String> {
    problems
        .into_iter()
        .map(|problem| {
            let quoted = problem.split('\'').skip(1).step_by(2);
            match quoted.filter_map(|path| reference_keys.get(path)).next() {
                Some(key) => format!("{problem} (checkpoint key {key})"),
                None => problem,
            }
        })
        .collect()
}

/// The prefix before `flow.layers.` shared by the checkpoint's keys, if any key has it.
fn state_dict_prefix<'a>(keys: impl Iterator<Item = &'a String>) -> Option<String> {
    keys.filter_map(|key| key.find("flow.layers.").map(|at| key[..at].to_string()))
        .min_by_key(|p| p.len())
}

/// The shape of tensor `key`, which the reference gives rank `R` and shape `expected` (in
/// its own terms, e.g. `[1, 4 C, 1, 1]`); an error naming the key if it is absent or of
/// another rank.
fn dims<const R: usize>(
    tensors: &BTreeMap<String, PackTensor>,
    key: &str,
    expected: &'static str,
) -> Result<[usize; R], InferError> {
    let tensor = tensors.get(key).ok_or_else(|| InferError::MissingKey {
        key: key.to_string(),
    })?;
    tensor
        .shape
        .as_slice()
        .try_into()
        .map_err(|_| InferError::Rank {
            key: key.to_string(),
            rank: R,
            expected,
            found: tensor.shape.as_slice().to_vec(),
        })
}

/// The image side the reference trains an `L`-level model on: 64 for `L = 4` (ImageNet
/// 64x64), 32 otherwise (MNIST, CIFAR-10, ImageNet 32x32).
pub fn reference_image_side(levels: usize) -> usize {
    if levels == 4 { 64 } else { 32 }
}

/// The reference's model shape from its keys: `L` = number of prior levels, `K` from the
/// number of modules (`L (K + 2) - 1`), the hidden width from the first coupling network,
/// the image channels from the first ActNorm (`4 C`), the coupling from its parameter
/// names, the prior's width and depth from its LSTM. The image size leaves no trace in
/// the weights: `image_side` if given, else [`reference_image_side`]. Every tensor it reads
/// must have the reference's rank.
pub fn infer_config(
    tensors: &BTreeMap<String, PackTensor>,
    image_side: Option<usize>,
) -> Result<MarScfConfig, InferError> {
    let levels = tensors
        .keys()
        .filter_map(|k| number_after(k, "flow.c_prior.prior_list."))
        .collect::<BTreeSet<_>>()
        .len();
    let last_module = tensors
        .keys()
        .filter_map(|k| number_after(k, "flow.layers."))
        .max();
    let (Some(last_module), true) = (last_module, levels > 0) else {
        return Err(InferError::NoModel);
    };
    // `last_module` is parsed from a key: saturate rather than overflow on a huge index.
    let modules_plus_one = last_module.saturating_add(2);
    if modules_plus_one % levels != 0 || modules_plus_one / levels < 3 {
        return Err(InferError::Steps {
            modules: last_module.saturating_add(1),
            levels,
        });
    }
    let steps = modules_plus_one / levels - 2;
    let [_, channels_4, _, _] =
        dims::<4>(tensors, "flow.layers.1.actnormlayer.bias", "[1, 4 C, 1, 1]")?;
    let channels = channels_4 / 4;
    let (coupling, hidden) = infer_coupling(tensors)?;
    let lstm_layers = tensors
        .keys()
        .filter_map(|k| k.strip_prefix("flow.c_prior.prior_list.0.prior_lstm.lstm.weight_ih_l"))
        .count();
    let [prior_hidden, _, _, _] = dims::<4>(
        tensors,
        "flow.c_prior.prior_list.0.prior_lstm.conv_embed.weight",
        "[hidden, in, k, k]",
    )?;
    let side = image_side.unwrap_or_else(|| reference_image_side(levels));
    let flow = MultiScaleFlowConfig::new([channels, side, side], levels, steps, hidden)
        .with_coupling(coupling);
    Ok(MarScfConfig::new(flow).with_prior(PriorKind::Mar {
        hidden: prior_hidden,
        lstm_layers,
    }))
}

/// The number after `marker` in `key` (`flow.layers.` in `flow.layers.7.x` gives 7).
fn number_after(key: &str, marker: &str) -> Option<usize> {
    key.strip_prefix(marker)?.split('.').next()?.parse().ok()
}

/// The coupling of the first flow step and its hidden width, from its parameter names and
/// shapes (MixLogCDF: the mixture components from the output channels, `half (3 k + 2)`).
fn infer_coupling(
    tensors: &BTreeMap<String, PackTensor>,
) -> Result<(CouplingKind, usize), InferError> {
    if tensors.contains_key("flow.layers.1.coupling.NN_net.conv1.weight") {
        let [hidden, _, _, _] = dims::<4>(
            tensors,
            "flow.layers.1.coupling.NN_net.conv1.weight",
            "[hidden, C / 2, 3, 3]",
        )?;
        Ok((CouplingKind::Affine, hidden))
    } else if tensors.contains_key("flow.layers.1.coupling.nn.in_conv.conv.weight_v") {
        let [hidden, half, _, _] = dims::<4>(
            tensors,
            "flow.layers.1.coupling.nn.in_conv.conv.weight_v",
            "[hidden, C / 2, k, k]",
        )?;
        let [out_channels, _, _, _] = dims::<4>(
            tensors,
            "flow.layers.1.coupling.nn.out_conv.conv.weight_v",
            "[C / 2 (3 components + 2), hidden, k, k]",
        )?;
        let per_channel = out_channels / half.max(1);
        if out_channels % half.max(1) != 0 || per_channel < 5 || (per_channel - 2) % 3 != 0 {
            return Err(InferError::Components { out_channels, half });
        }
        let blocks = tensors
            .keys()
            .filter_map(|k| number_after(k, "flow.layers.1.coupling.nn.mid_convs."))
            .collect::<BTreeSet<_>>()
            .len();
        let mixlogcdf = MixLogCdfConfig::new()
            .with_components((per_channel - 2) / 3)
            .with_blocks(blocks);
        Ok((CouplingKind::MixLogCdf(mixlogcdf), hidden))
    } else {
        Err(InferError::Coupling)
    }
}

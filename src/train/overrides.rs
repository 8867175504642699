//! Settings given for a run (on a command line, say), typed: a new run takes them over
//! [`new_run`]'s defaults, a resumed run over its saved settings (and the trainer then
//! refuses those a resume may not change, see [`crate::train::resume`]).

use std::path::PathBuf;

use marscf_data::{DatasetName, MnistLayout};

use crate::checkpoint::{CheckpointInfo, Origin};
use crate::core::{CouplingKind, MultiScaleFlowConfig};
use crate::data_info::DataInfo;
use crate::train::RunConfig;
use crate::{MarScfConfig, ModelError, PriorKind};

/// The dataset of a new run unless told otherwise: the embedded digits.
pub const NEW_RUN_DATASET: DatasetName = DatasetName::MnistSample;

/// Levels, steps per level and hidden width of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSize {
    /// Levels `L`.
    pub levels: usize,
    /// Flow steps per level `K`.
    pub steps: usize,
    /// Hidden width `C` of the coupling networks.
    pub hidden: usize,
}

/// The size of a new run's flow unless told otherwise.
pub const NEW_RUN_SIZE: ModelSize = ModelSize {
    levels: 3,
    steps: 4,
    hidden: 64,
};

/// Each setting of a run, `None` where not given. [`RunOverrides::apply`] puts the given
/// ones in place in a run's description.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOverrides {
    /// The dataset (the image shape follows it and `mnist_layout`).
    pub dataset: Option<DatasetName>,
    /// The layout of MNIST digits.
    pub mnist_layout: Option<MnistLayout>,
    /// Where the dataset's files are.
    pub data_root: Option<PathBuf>,
    /// Evaluate on only the first this many test images.
    pub test_images: Option<usize>,
    /// Bits per pixel value, of the data and the model.
    pub bits: Option<u32>,
    /// The coupling of every flow step: a coupling of the description's kind keeps the
    /// description's parameters (the CLI's `--coupling mixlogcdf` restates the kind only).
    pub coupling: Option<CouplingKind>,
    /// Levels `L`.
    pub levels: Option<usize>,
    /// Flow steps per level `K`.
    pub steps: Option<usize>,
    /// Hidden width `C` of the couplings.
    pub hidden: Option<usize>,
    /// The prior. Of the description's kind, it keeps the description's sizes unless it
    /// gives sizes other than the reference's (or `prior_hidden` and `prior_layers` do).
    pub prior: Option<PriorKind>,
    /// Width of the mAR prior's ConvLSTM states.
    pub prior_hidden: Option<usize>,
    /// Stacked ConvLSTM layers per level of the mAR prior.
    pub prior_layers: Option<usize>,
    /// Images per optimizer step.
    pub batch_size: Option<usize>,
    /// Seed of everything random.
    pub seed: Option<u64>,
    /// The CIFAR-10 shift and flip augmentation (on for CIFAR-10 unless given).
    pub augment: Option<bool>,
    /// Decay of the weight average.
    pub ema: Option<f64>,
    /// Stop after this many epochs.
    pub epochs: Option<u64>,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<u64>,
    /// Stop before this many minutes of wall time.
    pub max_minutes: Option<f64>,
    /// Adamax learning rate.
    pub lr: Option<f64>,
    /// Linear warm-up in optimizer steps.
    pub warmup_steps: Option<u64>,
    /// Clip the global gradient norm.
    pub grad_clip: Option<f64>,
    /// Consecutive non-finite steps after which training stops.
    pub nan_patience: Option<u32>,
    /// Evaluate and checkpoint every this many steps (0: every epoch).
    pub eval_every: Option<u64>,
    /// Batch size of evaluation.
    pub eval_batch_size: Option<usize>,
    /// Samples in the grid drawn at each evaluation.
    pub samples: Option<usize>,
    /// Temperature of those samples.
    pub temperature: Option<f64>,
}

/// A new run writing to `out_dir` with every default: [`NEW_RUN_DATASET`] in the
/// reference's layout, affine couplings of [`NEW_RUN_SIZE`], the mAR prior of the
/// reference's size, [`RunConfig::new`]'s settings.
pub fn new_run(out_dir: impl Into<PathBuf>) -> CheckpointInfo {
    let data = DataInfo::new(NEW_RUN_DATASET, MnistLayout::default(), None);
    let ModelSize {
        levels,
        steps,
        hidden,
    } = NEW_RUN_SIZE;
    CheckpointInfo {
        model: MarScfConfig::new(MultiScaleFlowConfig::new(data.image, levels, steps, hidden)),
        origin: Origin {
            data: Some(data),
            run: Some(RunConfig::new(out_dir)),
        },
    }
}

/// A run's whole description, as [`RunOverrides::apply`] makes it.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The model.
    pub model: MarScfConfig,
    /// What the data is.
    pub data: DataInfo,
    /// The run's settings.
    pub run: RunConfig,
}

impl RunOverrides {
    /// `info` with every given setting in its place; a description without data or
    /// settings gets [`new_run`]'s. A dataset or layout other than the description's
    /// reshapes the data and the flow's image, and a dataset other than the description's
    /// sets augmentation to its default (on for CIFAR-10) unless `augment` is given. A
    /// coupling or prior of another kind replaces the description's; one of the same kind
    /// keeps the description's parameters (a mAR prior given with sizes other than the
    /// reference's sets those). `prior_hidden` and `prior_layers` set the mAR prior's sizes;
    /// for another prior they are [`ModelError::PriorSize`].
    pub fn apply(&self, info: CheckpointInfo) -> Result<RunPlan, ModelError> {
        // Every field named, so that a new setting is a compile error until it is applied.
        let Self {
            dataset,
            mnist_layout,
            data_root,
            test_images,
            bits,
            coupling,
            levels,
            steps,
            hidden,
            prior,
            prior_hidden,
            prior_layers,
            batch_size,
            seed,
            augment,
            ema,
            epochs,
            max_steps,
            max_minutes,
            lr,
            warmup_steps,
            grad_clip,
            nan_patience,
            eval_every,
            eval_batch_size,
            samples,
            temperature,
        } = self.clone();
        let CheckpointInfo { mut model, origin } = info;
        let defaults = new_run("").origin;
        let mut data = origin.data.or(defaults.data).expect("a new run has data");
        let mut run = origin.run.or(defaults.run).expect("a new run has settings");
        let new_dataset = dataset.filter(|name| Some(*name) != data.dataset_name());
        let new_layout = mnist_layout.filter(|layout| *layout != data.layout());
        if new_dataset.is_some() || new_layout.is_some() {
            let name = new_dataset
                .or_else(|| data.dataset_name())
                .unwrap_or(NEW_RUN_DATASET);
            let layout = new_layout.unwrap_or_else(|| data.layout());
            data = DataInfo {
                test_images: data.test_images,
                ..DataInfo::new(name, layout, data.root.take()).with_bits(data.bits)
            };
            model.flow.image = data.image;
        }
        if let Some(name) = new_dataset {
            run.augment = name == DatasetName::Cifar10;
        }
        set(&mut data.root, data_root.map(Some));
        set(&mut data.test_images, test_images.map(Some));
        if let Some(bits) = bits {
            data = data.with_bits(bits);
            model.bits = bits;
        }
        if let Some(coupling) = coupling
            && coupling.name() != model.flow.coupling.name()
        {
            model.flow.coupling = coupling;
        }
        set(&mut model.flow.levels, levels);
        set(&mut model.flow.steps, steps);
        set(&mut model.flow.hidden, hidden);
        let (mut prior_hidden, mut prior_layers) = (prior_hidden, prior_layers);
        match prior {
            Some(prior) if prior.name() != model.prior.name() => model.prior = prior,
            Some(
                sized @ PriorKind::Mar {
                    hidden,
                    lstm_layers,
                },
            ) if sized != PriorKind::default() => {
                prior_hidden = prior_hidden.or(Some(hidden));
                prior_layers = prior_layers.or(Some(lstm_layers));
            }
            _ => {}
        }
        if prior_hidden.is_some() || prior_layers.is_some() {
            let PriorKind::Mar {
                hidden,
                lstm_layers,
            } = &mut model.prior
            else {
                return Err(ModelError::PriorSize {
                    prior: model.prior.name(),
                });
            };
            set(hidden, prior_hidden);
            set(lstm_layers, prior_layers);
        }
        set(&mut run.batch_size, batch_size);
        set(&mut run.seed, seed);
        set(&mut run.augment, augment);
        set(&mut run.optim.ema, ema.map(Some));
        set(&mut run.epochs, epochs.map(Some));
        set(&mut run.max_steps, max_steps.map(Some));
        set(&mut run.max_minutes, max_minutes.map(Some));
        set(&mut run.optim.lr, lr);
        set(&mut run.optim.warmup_steps, warmup_steps);
        set(&mut run.optim.grad_clip, grad_clip.map(Some));
        set(&mut run.optim.nan_patience, nan_patience);
        set(&mut run.eval_every, eval_every);
        set(&mut run.eval_batch_size, eval_batch_size);
        set(&mut run.samples, samples);
        set(&mut run.temperature, temperature);
        Ok(RunPlan { model, data, run })
    }
}

/// `*slot = value` where a value is given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_given_changes_nothing() {
        let run = new_run("out");
        let unchanged = RunOverrides::default().apply(run.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(unchanged.model).unwrap(),
            serde_json::to_value(run.model).unwrap()
        );
        assert_eq!(Some(unchanged.data), run.origin.data);
        assert_eq!(Some(unchanged.run), run.origin.run);
    }

    #[test]
    fn every_given_setting_lands_in_its_place() {
        let given = RunOverrides {
            dataset: Some(DatasetName::Cifar10),
            mnist_layout: None,
            data_root: Some("/data/cifar".into()),
            test_images: Some(100),
            bits: Some(5),
            coupling: Some(CouplingKind::Additive),
            levels: Some(2),
            steps: Some(3),
            hidden: Some(16),
            prior: None,
            prior_hidden: Some(8),
            prior_layers: Some(2),
            batch_size: Some(7),
            seed: Some(11),
            augment: None,
            ema: Some(0.99),
            epochs: Some(4),
            max_steps: Some(40),
            max_minutes: Some(2.5),
            lr: Some(1e-3),
            warmup_steps: Some(9),
            grad_clip: Some(50.0),
            nan_patience: Some(3),
            eval_every: Some(13),
            eval_batch_size: Some(17),
            samples: Some(4),
            temperature: Some(0.7),
        };
        let RunPlan { model, data, run } = given.apply(new_run("out")).unwrap();
        let mut expected_data = DataInfo::new(
            DatasetName::Cifar10,
            MnistLayout::default(),
            Some("/data/cifar".into()),
        )
        .with_bits(5);
        expected_data.test_images = Some(100);
        assert_eq!(data, expected_data);
        assert_eq!(model.flow.image, [3, 32, 32]);
        assert_eq!(model.bits, 5);
        assert_eq!(model.flow.coupling, CouplingKind::Additive);
        assert_eq!(
            (model.flow.levels, model.flow.steps, model.flow.hidden),
            (2, 3, 16)
        );
        assert_eq!(
            model.prior,
            PriorKind::Mar {
                hidden: 8,
                lstm_layers: 2
            }
        );
        let mut expected_run = RunConfig::new("out");
        expected_run.batch_size = 7;
        expected_run.seed = 11;
        expected_run.augment = true; // CIFAR-10's default
        expected_run.optim.ema = Some(0.99);
        expected_run.epochs = Some(4);
        expected_run.max_steps = Some(40);
        expected_run.max_minutes = Some(2.5);
        expected_run.optim.lr = 1e-3;
        expected_run.optim.warmup_steps = 9;
        expected_run.optim.grad_clip = Some(50.0);
        expected_run.optim.nan_patience = 3;
        expected_run.eval_every = 13;
        expected_run.eval_batch_size = 17;
        expected_run.samples = 4;
        expected_run.temperature = 0.7;
        assert_eq!(run, expected_run);
    }

    /// A saved run away from every default: what a resume applies its options to.
    fn saved() -> CheckpointInfo {
        let plan = RunOverrides {
            dataset: Some(DatasetName::Cifar10),
            augment: Some(false),
            prior_hidden: Some(16),
            prior_layers: Some(1),
            lr: Some(2e-3),
            ..RunOverrides::default()
        }
        .apply(new_run("out"))
        .unwrap();
        CheckpointInfo {
            model: plan.model,
            origin: Origin {
                data: Some(plan.data),
                run: Some(plan.run),
            },
        }
    }

    #[test]
    fn options_that_restate_the_saved_run_change_nothing() {
        let restated = RunOverrides {
            dataset: Some(DatasetName::Cifar10),
            mnist_layout: Some(MnistLayout::Reference),
            prior: Some(PriorKind::default()),
            ..RunOverrides::default()
        };
        let saved = saved();
        let plan = restated.apply(saved.clone()).unwrap();
        assert!(!plan.run.augment, "the saved run's augmentation stays");
        assert_eq!(
            plan.model.prior,
            PriorKind::Mar {
                hidden: 16,
                lstm_layers: 1
            },
            "the saved prior's sizes stay"
        );
        assert_eq!(Some(plan.data), saved.origin.data);
        assert_eq!(Some(plan.run), saved.origin.run);
        let glow = RunOverrides {
            prior: Some(PriorKind::Glow),
            ..RunOverrides::default()
        };
        assert_eq!(glow.apply(saved).unwrap().model.prior, PriorKind::Glow);

        let sized = PriorKind::Mar {
            hidden: 8,
            lstm_layers: 2,
        };
        let new = RunOverrides {
            prior: Some(sized.clone()),
            ..RunOverrides::default()
        };
        assert_eq!(new.apply(new_run("out")).unwrap().model.prior, sized);
    }

    #[test]
    fn a_coupling_of_the_same_kind_keeps_its_parameters() {
        let custom = CouplingKind::MixLogCdf(crate::core::MixLogCdfConfig::new().with_blocks(2));
        let mut saved = new_run("out");
        saved.model.flow.coupling = custom.clone();
        let restated = RunOverrides {
            coupling: Some("mixlogcdf".parse().unwrap()),
            ..RunOverrides::default()
        };
        assert_eq!(
            restated.apply(saved.clone()).unwrap().model.flow.coupling,
            custom
        );
        let affine = RunOverrides {
            coupling: Some(CouplingKind::Affine),
            ..RunOverrides::default()
        };
        assert_eq!(
            affine.apply(saved).unwrap().model.flow.coupling,
            CouplingKind::Affine
        );
    }

    #[test]
    fn a_layout_reshapes_and_prior_sizes_need_the_mar_prior() {
        let grey = RunOverrides {
            mnist_layout: Some(MnistLayout::Grey28),
            augment: Some(true),
            ..RunOverrides::default()
        }
        .apply(new_run("out"))
        .unwrap();
        assert_eq!(grey.model.flow.image, [1, 28, 28]);
        assert_eq!(grey.data.image, [1, 28, 28]);
        assert!(grey.run.augment);

        let sized_glow = RunOverrides {
            prior: Some(PriorKind::Glow),
            prior_layers: Some(2),
            ..RunOverrides::default()
        };
        assert!(matches!(
            sized_glow.apply(new_run("out")),
            Err(ModelError::PriorSize { prior: "glow" })
        ));
    }
}

//! One training run's state: the model, Adamax, the weight average and the counters, with
//! the step that updates them and the files that save and restore them.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Origin};
use crate::files;
use crate::params::{ParamInfo, param_paths};
use crate::train::TrainError;
use crate::train::adamax::AdamaxConfig;
use crate::train::collective::{Collective, broadcast_params};
use crate::train::ema::Ema;
use crate::train::gradients::{clip_to_norm, global_norm};
use crate::train::parallel::{BatchGradient, DataParallel, Reduction};
use crate::train::schedule::warmup_lr;
use crate::{MarScf, ModelError};
use marscf_data::atomic_file::Existing;

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimOptions {
    /// Base learning rate of Adamax.
    pub lr: f64,
    /// Linear warm-up, in optimizer steps.
    pub warmup_steps: u64,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// Decay of the weight average (the averaged weights are what evaluation uses).
    pub ema: Option<f64>,
    /// Consecutive non-finite steps after which training stops.
    pub nan_patience: u32,
}

impl Default for OptimOptions {
    /// The reference's: lr 8e-4, a warm-up of 100 steps (the reference counts 10,000
    /// samples: 78 steps at its batch of 128, 312 at 32), no clipping, no averaging; stop
    /// after 5 non-finite steps in a row. The one place these defaults are written.
    fn default() -> Self {
        Self {
            lr: 8e-4,
            warmup_steps: 100,
            grad_clip: None,
            ema: None,
            nan_patience: 5,
        }
    }
}

/// The counters of a run, saved with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Optimizer steps applied.
    pub step: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped: u64,
    /// Non-finite steps in a row (reset by a good one).
    pub consecutive_skipped: u32,
}

/// What one call to [`Training::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The update was applied.
    Applied {
        /// Mean bits/dim of the batch before the update.
        bits_per_dim: f64,
        /// Global gradient norm before clipping.
        grad_norm: f64,
        /// Learning rate used.
        lr: f64,
    },
    /// The batch's loss or gradient was NaN or infinite: nothing was changed.
    Skipped {
        /// What was not finite.
        reason: String,
    },
}

/// A model being trained, with its optimizer state and weight average.
pub struct Training {
    /// The model, on an autodiff device.
    pub model: MarScf,
    /// The weight average, if enabled.
    pub ema: Option<Ema>,
    /// Counters.
    pub counters: Counters,
    optimizer: ModuleOptimizer,
    params: BTreeMap<String, ParamInfo>,
    options: OptimOptions,
    parallel: DataParallel,
    communication: Communication,
}

/// The gradients' all-reduces over the processes so far (none in one process).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Communication {
    /// All-reduces done (one per step with a finite loss).
    pub reductions: u64,
    /// Their seconds in all.
    pub seconds: f64,
    /// Values (f32) summed per all-reduce.
    pub values: usize,
}

impl Communication {
    fn add(&mut self, reduce: Reduction) {
        self.reductions += 1;
        self.seconds += reduce.seconds;
        self.values = reduce.values;
    }
}

impl Training {
    /// Starts training `model` (moved to an autodiff device, in training mode).
    pub fn new(model: MarScf, options: OptimOptions) -> Self {
        let device = model
            .devices()
            .into_iter()
            .next()
            .expect("a model has parameters");
        let model = model.fork(&device.clone().autodiff()).train();
        let ema = options.ema.map(|decay| Ema::new(&model, decay));
        Self {
            params: param_paths(&model),
            parallel: DataParallel::single(&device),
            model,
            ema,
            counters: Counters::default(),
            optimizer: AdamaxConfig::new().init(),
            options,
            communication: Communication::default(),
        }
    }

    /// Spreads the steps over `parallel`'s devices (see [`DataParallel`]); its main device
    /// must be the model's.
    pub fn with_devices(mut self, parallel: DataParallel) -> Result<Self, TrainError> {
        if parallel.main() != self.parallel.main() {
            return Err(TrainError::OtherMainDevice {
                model: format!("{:?}", self.parallel.main()),
                given: format!("{:?}", parallel.main()),
            });
        }
        self.parallel = parallel;
        Ok(self)
    }

    /// The devices the steps run on, main first.
    pub fn devices(&self) -> &[Device] {
        self.parallel.devices()
    }

    /// The processes the steps run in.
    pub fn world(&self) -> &dyn Collective {
        self.parallel.world()
    }

    /// The gradients' all-reduces so far.
    pub fn communication(&self) -> Communication {
        self.communication
    }

    /// Takes rank 0's weights (the model's and the average's) on every process, in one
    /// broadcast each: the start of a training over several processes, so that they begin
    /// from the same state whatever each built or read.
    pub fn take_rank0_weights(&mut self) {
        let world = self.parallel.world();
        if world.size() == 1 {
            return;
        }
        let device = self.parallel.main().clone();
        self.model = broadcast_params(self.model.valid(), world)
            .fork(&device)
            .train();
        if let Some(ema) = &mut self.ema {
            ema.model = broadcast_params(ema.model.clone(), world);
        }
    }

    /// The options in use.
    pub fn options(&self) -> &OptimOptions {
        &self.options
    }

    /// One optimizer step on a dequantised batch `(B, C, H, W)` (on the main device): the
    /// mean bits/dim, its gradient (over the devices, see [`DataParallel::gradient`]),
    /// clipping, Adamax, the weight average. A non-finite loss or gradient skips the step;
    /// `nan_patience` of them in a row is [`TrainError::Diverged`].
    pub fn step(&mut self, batch: Tensor<4>) -> Result<StepOutcome, TrainError> {
        let BatchGradient {
            bits_per_dim,
            gradients,
            reduce,
        } = self.parallel.gradient(&self.model, batch, &self.params)?;
        if let Some(reduce) = reduce {
            self.communication.add(reduce);
        }
        let grad_norm = gradients
            .as_ref()
            .map_or(f64::NAN, |grads| global_norm(grads, &self.params));
        let Some(grads) = gradients.filter(|_| grad_norm.is_finite()) else {
            let reason = if bits_per_dim.is_finite() {
                "gradient"
            } else {
                "loss"
            };
            return self.skip(format!(
                "non-finite {reason} (bits/dim {bits_per_dim}, gradient norm {grad_norm})"
            ));
        };
        let grads = match self.options.grad_clip {
            Some(max_norm) => clip_to_norm(grads, &self.params, grad_norm, max_norm),
            None => grads,
        };
        self.counters.step += 1;
        self.counters.consecutive_skipped = 0;
        let lr = warmup_lr(
            self.options.lr,
            self.options.warmup_steps,
            self.counters.step,
        );
        let model = self.model.clone();
        self.model = self.optimizer.step(lr, model, grads);
        if let Some(ema) = &mut self.ema {
            ema.update(&self.model);
        }
        Ok(StepOutcome::Applied {
            bits_per_dim,
            grad_norm,
            lr,
        })
    }

    fn skip(&mut self, reason: String) -> Result<StepOutcome, TrainError> {
        self.counters.skipped += 1;
        self.counters.consecutive_skipped += 1;
        if self.counters.consecutive_skipped >= self.options.nan_patience {
            return Err(TrainError::Diverged {
                step: self.counters.step,
                consecutive: self.counters.consecutive_skipped,
                reason,
            });
        }
        Ok(StepOutcome::Skipped { reason })
    }

    /// The weights evaluation uses: the average when enabled, else the model, without
    /// autodiff.
    pub fn eval_model(&self) -> MarScf {
        match &self.ema {
            Some(ema) => ema.model.clone(),
            None => self.model.valid(),
        }
    }

    /// Writes the whole state into `dir` (created): `model` and `ema` (if any) as
    /// checkpoints recording `origin`, `optimizer.bpk` and `counters.json`.
    pub fn save(&self, dir: &Path, origin: &Origin) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(ModelError::io("create", dir))?;
        checkpoint::save(&self.model, origin, &dir.join("model"))?;
        if let Some(ema) = &self.ema {
            checkpoint::save(&ema.model, origin, &dir.join("ema"))?;
        }
        let optimizer = dir.join("optimizer.bpk");
        self.optimizer.save(&optimizer).map_err(ModelError::format(
            &optimizer,
            "cannot write the optimizer state",
        ))?;
        // Burn writes it in place: synced here, so that the state folder is complete on
        // disk before the run folder's rename makes it the state to resume from.
        std::fs::File::open(&optimizer)
            .and_then(|file| file.sync_all())
            .map_err(ModelError::io("sync", &optimizer))?;
        let counters = serde_json::to_string_pretty(&self.counters).expect("counters serialise");
        files::write(
            &dir.join("counters.json"),
            counters.as_bytes(),
            Existing::Replace,
        )?;
        Ok(())
    }

    /// Restores a state written by [`save`](Self::save), on `device`. With `options.ema`,
    /// the saved average must be there and load: it is never silently restarted.
    pub fn load(dir: &Path, options: OptimOptions, device: &Device) -> Result<Self, TrainError> {
        let model = checkpoint::load(&dir.join("model"), &device.clone().autodiff())?.train();
        let ema = match options.ema {
            Some(decay) => Some(Ema {
                decay,
                model: checkpoint::load(&dir.join("ema"), device)?,
            }),
            None => None,
        };
        let optimizer_file = dir.join("optimizer.bpk");
        let optimizer =
            AdamaxConfig::new()
                .init()
                .load(&optimizer_file)
                .map_err(ModelError::format(
                    &optimizer_file,
                    "not a valid optimizer state",
                ))?;
        let counters_file = dir.join("counters.json");
        let text = std::fs::read_to_string(&counters_file)
            .map_err(ModelError::io("read", &counters_file))?;
        let counters = serde_json::from_str(&text).map_err(ModelError::format(
            &counters_file,
            "not a valid counters file",
        ))?;
        Ok(Self {
            params: param_paths(&model),
            parallel: DataParallel::single(device),
            model,
            ema,
            counters,
            optimizer,
            options,
            communication: Communication::default(),
        })
    }
}

//! The training loop: a run starts (or resumes) in its folder, takes reproducible steps,
//! evaluates and saves on a schedule, and stops by its rules.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use marscf_data::atomic_file::Existing;
use marscf_data::{BatchOptions, EpochOrder, ImageSet, make_batch, stream};

use crate::MarScfConfig;
use crate::checkpoint::{self, CheckpointInfo, Origin};
use crate::data_info::DataInfo;
use crate::report::{
    MetricsRecord, append_metrics, plot_metrics, read_metrics, save_image_grid, truncate_metrics,
};
use crate::train::collective::{Collective, checksum, same_on_every_rank};
use crate::train::evaluate::evaluate_across;
use crate::train::folder::{RunFolder, RunLock, read_position};
use crate::train::stop::StopRule;
use crate::train::{
    Communication, DataParallel, Observer, RunConfig, RunPosition, StepOutcome, TrainError,
    Training, resume,
};

/// The RNG stream of training batches (and of the device's dropout masks).
const TRAIN_STREAM: u64 = 0x7a1;
/// The RNG stream of the samples drawn at evaluations.
const SAMPLE_STREAM: u64 = 0x5a3;
/// Batches between two checks that every process holds the same weights and position (also
/// checked at the start and before every save). Counted in batches, which advance on every
/// process alike, so that the check is reached by all of them together.
const REPLICA_CHECK_EVERY: u64 = 100;

/// How a run starts in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run, in a folder that is missing or empty ([`TrainError::RunExists`]
    /// otherwise: nothing is touched).
    New,
    /// A new run; whatever the folder holds is first moved aside, never deleted.
    Overwrite,
    /// Continues the run saved in the folder (a new run if there is none); the settings
    /// given must agree with the saved ones ([`TrainError::ResumeMismatch`]) except those
    /// a resumed run may change (the stopping rules, evaluation, learning rate).
    Resume,
}

/// The data of a run: what it is, the training and the test images.
#[derive(Debug, Clone)]
pub struct TrainingData {
    /// What the images are, recorded in every checkpoint.
    pub info: DataInfo,
    /// The training images.
    pub train: ImageSet,
    /// The test images.
    pub test: ImageSet,
}

/// The outcome of a finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Optimizer steps applied.
    pub steps: u64,
    /// Steps skipped (non-finite).
    pub skipped: u64,
    /// Where the run is now.
    pub position: RunPosition,
    /// The best checkpoint (by test bits/dim).
    pub best_checkpoint: PathBuf,
    /// The gradients' all-reduces over the processes (none in one process).
    pub communication: Communication,
    /// Seconds of the optimizer steps in all (batches, forward, backward, all-reduce,
    /// update), the run's earlier sessions not included.
    pub step_seconds: f64,
}

/// `marscf_<dataset>_<coupling>_<K>_<C>`, the reference's checkpoint name.
pub fn checkpoint_name(dataset: &str, model: &MarScfConfig) -> String {
    format!(
        "marscf_{dataset}_{}_{}_{}",
        model.flow.coupling, model.flow.steps, model.flow.hidden
    )
}

/// What the run saved in `out_dir` says of itself (model, data, settings), if it saved a
/// state to resume from.
pub fn saved_run(out_dir: &Path) -> Result<Option<CheckpointInfo>, TrainError> {
    match RunFolder::new(out_dir).latest_state() {
        Some(state) => Ok(Some(checkpoint::load_info(&state.join("model"))?)),
        None => Ok(None),
    }
}

/// Trains `model` on `data` as `run` says, in `run.out_dir`, starting as `start` says;
/// a resumed run continues exactly where the saved one stopped.
///
/// Each step's batch is split over `parallel`'s processes and devices ([`DataParallel`]; the
/// first device is the main device, which evaluates and saves). In a world of several
/// processes every process calls this with the same arguments; rank 0 alone claims the
/// folder and writes in it, the others read a saved state from it when resuming (a
/// filesystem they share), evaluate their share of the test set and write nothing. An error
/// on one process leaves the others waiting: end them all
/// ([`end_every_process_on_error`](crate::train::end_every_process_on_error)).
///
/// The checkpoints record no device or process count, so a run may resume on other
/// numbers of either; without dropout it is the same training up to rounding, with dropout
/// the masks depend on the number of shards.
pub fn train(
    model: &MarScfConfig,
    run: &RunConfig,
    data: &TrainingData,
    parallel: DataParallel,
    start: Start,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError> {
    check_data(model, run, data)?;
    let processes = parallel.world().size();
    if run.batch_size < processes {
        return Err(TrainError::Data(format!(
            "batch size {} for {processes} processes: each needs at least one image",
            run.batch_size
        )));
    }
    let mut session = Session::open(model, run, data, parallel, start, observer)?;
    let mut stop = StopRule::new(run, data.test.len());
    let mut step_seconds = 0.0;
    observer.on_start(session.step(), run.max_steps);
    while !session.rank0_says(stop.reached(
        session.step(),
        session.position.epoch,
        session.elapsed(),
    )) {
        let started = Instant::now();
        let epoch_ended = session.train_step(observer)?;
        step_seconds += started.elapsed().as_secs_f64();
        stop.step_took(started.elapsed().as_secs_f64());
        if session.position.batches.is_multiple_of(REPLICA_CHECK_EVERY) {
            session.check_replicas()?;
        }
        if session.evaluation_due(epoch_ended) {
            let started = Instant::now();
            session.evaluate_and_save(observer)?;
            stop.eval_took(started.elapsed().as_secs_f64());
        }
    }
    if session.evaluated_at != Some(session.step()) {
        session.evaluate_and_save(observer)?;
    }
    Ok(RunSummary {
        steps: session.step(),
        skipped: session.training.counters.skipped,
        communication: session.training.communication(),
        step_seconds,
        position: session.position,
        best_checkpoint: session.best,
    })
}

fn check_data(
    model: &MarScfConfig,
    run: &RunConfig,
    data: &TrainingData,
) -> Result<(), TrainError> {
    model.validate()?;
    run.validate()?;
    let image = model.flow.image;
    let sets = [("training", &data.train), ("test", &data.test)];
    for (name, set) in sets {
        if set.shape != image {
            return Err(TrainError::Data(format!(
                "{name} images are {:?}, the model expects {image:?}",
                set.shape
            )));
        }
        if set.is_empty() {
            return Err(TrainError::Data(format!("the {name} set is empty")));
        }
    }
    if data.info.bits != model.bits {
        return Err(TrainError::Data(format!(
            "the data is described as {}-bit, the model is configured for {} bits",
            data.info.bits, model.bits
        )));
    }
    if data.info.image != image {
        return Err(TrainError::Data(format!(
            "the data is described as {:?} images, the model expects {image:?}",
            data.info.image
        )));
    }
    if run.batch_size == 0 || run.batch_size > data.train.len() {
        return Err(TrainError::Data(format!(
            "batch size {} for {} training images",
            run.batch_size,
            data.train.len()
        )));
    }
    Ok(())
}

/// A run under way: its state, where it is, and where it writes.
struct Session<'a> {
    run: &'a RunConfig,
    data: &'a TrainingData,
    /// The main device, without autodiff.
    device: Device,
    folder: RunFolder,
    best: PathBuf,
    origin: Origin,
    training: Training,
    position: RunPosition,
    order: EpochOrder,
    epoch_order: Vec<usize>,
    started: Instant,
    seconds_before: f64,
    evaluated_at: Option<u64>,
    /// The run folder's lock, held while the session lives (by rank 0, the one writer).
    lock: Option<RunLock>,
}

impl<'a> Session<'a> {
    /// Claims the folder and builds a new run (saving its first state before any step), or
    /// restores the saved one.
    fn open(
        model: &MarScfConfig,
        run: &'a RunConfig,
        data: &'a TrainingData,
        parallel: DataParallel,
        start: Start,
        observer: &mut dyn Observer,
    ) -> Result<Self, TrainError> {
        let device = parallel.main().clone().without_autodiff();
        let folder = RunFolder::new(&run.out_dir);
        let origin = Origin {
            data: Some(data.info.clone().with_training_set(&data.train)),
            run: Some(run.clone()),
        };
        let world = parallel.world();
        let (lock, state) = if world.rank() == 0 {
            let (lock, state) = claim_or_find_state(&folder, start, observer)?;
            (Some(lock), state)
        } else {
            (None, None)
        };
        let state = state_on_every_rank(state, &folder, world)?;
        let resumed = match state {
            Some(state) => Some(restore(
                &state, model, &origin, run, &folder, &device, observer,
            )?),
            None => None,
        };
        let is_new = resumed.is_none();
        let (training, position) = match resumed {
            Some(restored) => restored,
            None => (
                initial_training(model, run, data, &device)?,
                RunPosition::default(),
            ),
        };
        let mut training = training.with_devices(parallel)?;
        training.take_rank0_weights();
        if lock.is_some() && !is_new {
            truncate_metrics(&folder.metrics, training.counters.step)?;
        }
        let order = EpochOrder {
            seed: run.seed,
            len: data.train.len(),
        };
        let session = Self {
            run,
            data,
            device,
            best: folder.best(&checkpoint_name(&data.info.dataset, model)),
            folder,
            origin,
            epoch_order: order.permutation(position.epoch),
            order,
            seconds_before: position.seconds,
            training,
            position,
            started: Instant::now(),
            evaluated_at: None,
            lock,
        };
        session.check_replicas()?;
        if is_new {
            session.save_state()?;
        }
        Ok(session)
    }

    fn step(&self) -> u64 {
        self.training.counters.step
    }

    fn world(&self) -> &dyn Collective {
        self.training.world()
    }

    /// Rank 0's `decision`, on every process (a stopping rule that reads the clock may
    /// decide differently on each).
    fn rank0_says(&self, decision: bool) -> bool {
        let mut value = [f64::from(u8::from(decision))];
        self.world().broadcast_f64(&mut value);
        value[0] != 0.0
    }

    /// [`TrainError::ReplicasDiverged`] unless every process holds rank 0's weights and
    /// position.
    fn check_replicas(&self) -> Result<(), TrainError> {
        let world = self.world();
        if world.size() == 1 {
            return Ok(());
        }
        let position = [self.step() as f64, self.position.batches as f64];
        let mut values = checksum(&self.training.model.valid(), &position);
        if let Some(ema) = &self.training.ema {
            values.extend(checksum(&ema.model, &[]));
        }
        same_on_every_rank(&values, world).map_err(|ranks| TrainError::ReplicasDiverged {
            step: self.step(),
            ranks,
            processes: world.size(),
        })
    }

    /// Seconds of training, earlier sessions of the run included.
    fn elapsed(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    /// One optimizer step on the next batch of the epoch order; returns whether the epoch
    /// ended with it.
    fn train_step(&mut self, observer: &mut dyn Observer) -> Result<bool, TrainError> {
        let run = self.run;
        let start = self.position.batch_in_epoch as usize * run.batch_size;
        let indices = &self.epoch_order[start..start + run.batch_size];
        let batch = training_batch(
            run,
            self.training.model.config.bits,
            &self.data.train,
            indices,
            self.position.batches,
            &self.device,
        );
        self.seed_dropout();
        let started = Instant::now();
        let outcome = self.training.step(batch)?;
        let images_per_second = run.batch_size as f64 / started.elapsed().as_secs_f64();
        observer.on_step(self.step(), &outcome, images_per_second);
        let epoch_ended = self.advance();
        match outcome {
            StepOutcome::Applied { .. } if self.lock.is_none() => {}
            StepOutcome::Applied {
                bits_per_dim, lr, ..
            } => append_metrics(
                &self.folder.metrics,
                &MetricsRecord {
                    train_bits_per_dim: Some(bits_per_dim),
                    lr: Some(lr),
                    images_per_second: Some(images_per_second),
                    ..self.record()
                },
            )?,
            StepOutcome::Skipped { reason } => {
                observer.on_message(&format!("skipped a step: {reason}"))
            }
        }
        Ok(epoch_ended)
    }

    /// Dropout masks come from the devices' generators: seeded per batch, so that a resumed
    /// run draws the same ones (device `i` of process `r` from stream `r N + i`, a device
    /// listed twice once; devices of one backend share its generator, which the shards then
    /// draw from in order).
    fn seed_dropout(&self) {
        let devices = self.training.devices();
        let first = self.world().rank() * devices.len();
        for (i, device) in devices.iter().enumerate() {
            if !devices[..i].contains(device) {
                let tag = TRAIN_STREAM + (((first + i) as u64) << 16);
                device.seed(stream_seed(self.run.seed, tag, self.position.batches));
            }
        }
    }

    /// Moves the position past one batch; returns whether the epoch ended.
    fn advance(&mut self) -> bool {
        let batches_per_epoch = (self.data.train.len() / self.run.batch_size) as u64;
        self.position.batches += 1;
        self.position.batch_in_epoch += 1;
        let epoch_ended = self.position.batch_in_epoch == batches_per_epoch;
        if epoch_ended {
            self.position.epoch += 1;
            self.position.batch_in_epoch = 0;
            self.epoch_order = self.order.permutation(self.position.epoch);
        }
        self.position.seconds = self.elapsed();
        epoch_ended
    }

    /// Whether an evaluation is due after a step (every `eval_every` steps, or at the end
    /// of each epoch when that is 0).
    fn evaluation_due(&self, epoch_ended: bool) -> bool {
        let step = self.step();
        let due = match self.run.eval_every {
            0 => epoch_ended,
            every => step > 0 && step.is_multiple_of(every),
        };
        due && self.evaluated_at != Some(step)
    }

    /// Test bits/dim; the best checkpoint if it improved; the metrics, plot and samples;
    /// then the state to resume from.
    fn evaluate_and_save(&mut self, observer: &mut dyn Observer) -> Result<(), TrainError> {
        let run = self.run;
        let model = self.training.eval_model();
        let bits_per_dim = evaluate_across(
            &model,
            &self.data.test,
            run.eval_batch_size,
            run.seed,
            &self.device,
            self.world(),
        )?;
        self.check_replicas()?;
        let improved = bits_per_dim.is_finite()
            && self
                .position
                .best_test_bits_per_dim
                .is_none_or(|best| bits_per_dim < best);
        if improved {
            self.position.best_test_bits_per_dim = Some(bits_per_dim);
            if self.lock.is_some() {
                checkpoint::save(&model, &self.origin, &self.best)?;
            }
        }
        self.position.last_test_bits_per_dim = Some(bits_per_dim);
        observer.on_eval(self.step(), bits_per_dim, improved);
        self.evaluated_at = Some(self.step());
        if self.lock.is_none() {
            return Ok(());
        }
        let record = MetricsRecord {
            test_bits_per_dim: Some(bits_per_dim),
            ..self.record()
        };
        append_metrics(&self.folder.metrics, &record)?;
        plot_metrics(&read_metrics(&self.folder.metrics), &self.folder.plot)?;
        if run.samples > 0 {
            let device = self.device.clone().without_autodiff();
            device.seed(stream_seed(run.seed, SAMPLE_STREAM, self.step()));
            let samples = model.sample(run.samples, run.temperature)?;
            let per_row = (run.samples as f64).sqrt().ceil() as usize;
            let caption = format!("step {}, temperature {}", self.step(), run.temperature);
            save_image_grid(
                samples,
                per_row,
                Some(&caption),
                &self.folder.samples,
                Existing::Replace,
            )?;
        }
        self.save_state()
    }

    /// Saves the state to resume from (rank 0; the other processes write nothing).
    fn save_state(&self) -> Result<(), TrainError> {
        match &self.lock {
            Some(lock) => {
                self.folder
                    .save_state(&self.training, &self.position, &self.origin, lock)
            }
            None => Ok(()),
        }
    }

    /// A metrics line at the current step, with no measurement filled in.
    fn record(&self) -> MetricsRecord {
        MetricsRecord {
            step: self.step(),
            epoch: self.position.epoch,
            seconds: self.position.seconds,
            train_bits_per_dim: None,
            test_bits_per_dim: None,
            lr: None,
            images_per_second: None,
        }
    }
}

/// Prepares `folder` as `start` says and takes its lock: the state to resume from, or
/// `None` once the folder is claimed for a new run (an old run moved aside first for
/// [`Start::Overwrite`]). A folder that holds files but no run is never touched.
fn claim_or_find_state(
    folder: &RunFolder,
    start: Start,
    observer: &mut dyn Observer,
) -> Result<(RunLock, Option<PathBuf>), TrainError> {
    match start {
        Start::Resume if folder.is_run() => {
            let lock = folder.lock()?;
            folder.remove_unfinished_writes(&lock)?;
            let state = folder.latest_state();
            if state.is_none() {
                observer.on_message("nothing to resume: starting a new run");
            }
            return Ok((lock, state));
        }
        Start::Resume => {
            let found = folder.contents();
            if !found.is_empty() {
                return Err(TrainError::NotARun {
                    dir: folder.dir.clone(),
                    found,
                });
            }
            observer.on_message("nothing to resume: starting a new run");
        }
        Start::Overwrite => {
            if let Some(moved) = folder.move_aside()? {
                observer.on_message(&format!("the old run was moved to {}", moved.display()));
            }
        }
        Start::New => {}
    }
    Ok((folder.claim()?, None))
}

/// The state to resume from on every process: rank 0 found it (or found none) while
/// claiming the folder; the others read the same one from the folder they share with it.
fn state_on_every_rank(
    found: Option<PathBuf>,
    folder: &RunFolder,
    world: &dyn Collective,
) -> Result<Option<PathBuf>, TrainError> {
    let mut resumes = [f64::from(u8::from(found.is_some()))];
    world.broadcast_f64(&mut resumes);
    if world.rank() == 0 || resumes[0] == 0.0 {
        return Ok(found);
    }
    match folder.latest_state() {
        Some(state) => Ok(Some(state)),
        None => Err(TrainError::StateNotShared {
            rank: world.rank(),
            dir: folder.dir.clone(),
        }),
    }
}

/// The new run's training state: the model initialised (ActNorm's data-dependent
/// initialisation) from the first batch of the first epoch.
fn initial_training(
    model: &MarScfConfig,
    run: &RunConfig,
    data: &TrainingData,
    device: &Device,
) -> Result<Training, TrainError> {
    device.seed(run.seed);
    let order = EpochOrder {
        seed: run.seed,
        len: data.train.len(),
    };
    let first = &order.permutation(0)[..run.batch_size];
    let batch = training_batch(run, model.bits, &data.train, first, 0, device);
    let model = model.init(device)?.initialize(batch)?;
    Ok(Training::new(model, run.optim.clone()))
}

/// The saved run's state in `state`, once its settings agree with those given.
fn restore(
    state: &Path,
    model: &MarScfConfig,
    origin: &Origin,
    run: &RunConfig,
    folder: &RunFolder,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<(Training, RunPosition), TrainError> {
    let mut saved = checkpoint::load_info(&state.join("model"))?;
    // A state saved before checkpoints recorded their data (or its count and fingerprint)
    // and settings: nothing to compare there.
    saved.origin.data = match (saved.origin.data, &origin.data) {
        (Some(recorded), Some(current)) => Some(recorded.or_recorded_from(current)),
        (recorded, current) => recorded.or_else(|| current.clone()),
    };
    saved.origin.run = saved.origin.run.or_else(|| origin.run.clone());
    let given = CheckpointInfo {
        model: model.clone(),
        origin: origin.clone(),
    };
    let check = resume::compare(&saved, &given);
    if !check.refused.is_empty() {
        return Err(TrainError::ResumeMismatch {
            dir: folder.dir.clone(),
            differences: check.refused,
        });
    }
    for change in &check.taken {
        observer.on_message(&format!("resuming with a change: {change}"));
    }
    let training = Training::load(state, run.optim.clone(), device)?;
    let position = read_position(state)?;
    observer.on_message(&format!(
        "resumed at step {} from {}",
        training.counters.step,
        state.display()
    ));
    Ok((training, position))
}

/// The dequantised (and, if the run says so, augmented) training batch of `indices` at
/// `bits` bits per value, the `index`-th batch of the run.
fn training_batch(
    run: &RunConfig,
    bits: u32,
    set: &ImageSet,
    indices: &[usize],
    index: u64,
    device: &Device,
) -> Tensor<4> {
    let options = BatchOptions {
        augment: run.augment,
        dequantize: true,
        bits,
    };
    make_batch(
        set,
        indices,
        options,
        &mut stream(run.seed, TRAIN_STREAM, index),
        device,
    )
}

/// A device seed for one purpose and position of the run.
fn stream_seed(seed: u64, tag: u64, index: u64) -> u64 {
    use rand::RngExt;
    stream(seed, tag, index).random()
}

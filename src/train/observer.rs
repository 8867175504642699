//! What a run reports to whoever watches it (a progress bar, a log, nothing).

use crate::train::StepOutcome;

/// What a run reports to whoever watches it.
pub trait Observer {
    /// The run starts (or resumes) at `step`; `total` steps if known.
    fn on_start(&mut self, _step: u64, _total: Option<u64>) {}
    /// A training step finished.
    fn on_step(&mut self, _step: u64, _outcome: &StepOutcome, _images_per_second: f64) {}
    /// An evaluation finished.
    fn on_eval(&mut self, _step: u64, _test_bits_per_dim: f64, _best: bool) {}
    /// Anything else worth saying.
    fn on_message(&mut self, _message: &str) {}
}

/// An observer that says nothing.
pub struct Silent;
impl Observer for Silent {}

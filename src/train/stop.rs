//! When a run stops: a number of steps or epochs, or a wall-time budget that leaves room
//! for the step under way and the final evaluation.

use crate::train::RunConfig;

/// A first evaluation's cost before one has been timed, in training steps per batch of
/// test images: a forward pass without backward (the ratio is measured in
/// docs/performance.md), plus one step for the samples and checkpoints.
const EVAL_STEPS_PER_TEST_BATCH: f64 = 0.65;

/// The stopping rules of a run and the slowest step and evaluation seen.
#[derive(Debug, Clone)]
pub struct StopRule {
    max_steps: Option<u64>,
    epochs: Option<u64>,
    budget_seconds: Option<f64>,
    test_batches: f64,
    slowest_step: f64,
    slowest_eval: f64,
}

impl StopRule {
    /// The rules of `run` for a test set of `test_images`.
    pub fn new(run: &RunConfig, test_images: usize) -> Self {
        Self {
            max_steps: run.max_steps,
            epochs: run.epochs,
            budget_seconds: run.max_minutes.map(|m| 60.0 * m),
            test_batches: test_images as f64 / run.batch_size as f64,
            slowest_step: 0.0,
            slowest_eval: 0.0,
        }
    }

    /// A training step took `seconds`.
    pub fn step_took(&mut self, seconds: f64) {
        self.slowest_step = self.slowest_step.max(seconds);
    }

    /// An evaluation (with its samples and checkpoints) took `seconds`.
    pub fn eval_took(&mut self, seconds: f64) {
        self.slowest_eval = self.slowest_eval.max(seconds);
    }

    /// Whether to stop before another step, at `step` in `epoch` after `elapsed` seconds:
    /// a count is reached, or another step and the final evaluation would not fit the budget.
    pub fn reached(&self, step: u64, epoch: u64, elapsed: f64) -> bool {
        let eval = if self.slowest_eval > 0.0 {
            self.slowest_eval
        } else {
            self.slowest_step * (EVAL_STEPS_PER_TEST_BATCH * self.test_batches + 1.0)
        };
        self.max_steps.is_some_and(|s| step >= s)
            || self.epochs.is_some_and(|e| epoch >= e)
            || self
                .budget_seconds
                .is_some_and(|budget| elapsed + self.slowest_step + eval > budget)
    }
}

//! Progress bars: training's (bits/dim, images/s and ETA as the run goes), and one over
//! images for sampling and FID.

use indicatif::{ProgressBar, ProgressStyle};
use marscf::train::{Observer, StepOutcome};

/// Shows a run's progress on the terminal.
pub struct ProgressBarObserver {
    bar: ProgressBar,
    max_minutes: Option<f64>,
}

impl ProgressBarObserver {
    /// A bar for a run of `max_steps` steps (a spinner with elapsed time if unknown).
    pub fn new(max_steps: Option<u64>, max_minutes: Option<f64>) -> Self {
        let bar = match max_steps {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        let template = match max_steps {
            Some(_) => "{elapsed_precise} [{bar:30}] step {pos}/{len} ETA {eta} {msg}",
            None => "{elapsed_precise} {spinner} step {pos} {msg}",
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Self { bar, max_minutes }
    }

    /// A line above the bar; on stderr when the bar is hidden (output not a terminal), so
    /// that logs keep every evaluation and message.
    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

impl Observer for ProgressBarObserver {
    fn on_start(&mut self, step: u64, _total: Option<u64>) {
        self.bar.set_position(step);
        if let Some(minutes) = self.max_minutes {
            self.say(format!("training for at most {minutes} minutes"));
        }
    }

    fn on_step(&mut self, step: u64, outcome: &StepOutcome, images_per_second: f64) {
        self.bar.set_position(step);
        if let StepOutcome::Applied {
            bits_per_dim, lr, ..
        } = outcome
        {
            self.bar.set_message(format!(
                "train {bits_per_dim:.3} bits/dim, {images_per_second:.1} img/s, lr {lr:.1e}"
            ));
        }
    }

    fn on_eval(&mut self, step: u64, test_bits_per_dim: f64, best: bool) {
        let mark = if best { " (best, saved)" } else { "" };
        self.say(format!(
            "step {step}: test {test_bits_per_dim:.4} bits/dim{mark}"
        ));
    }

    fn on_message(&mut self, message: &str) {
        self.say(message.to_string());
    }
}

impl Drop for ProgressBarObserver {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A bar over `len` images, with ETA.
pub fn image_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} images ETA {eta} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

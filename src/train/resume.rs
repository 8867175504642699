//! What may change when a run resumes: the saved run and the one asked for are compared
//! setting by setting; a difference that would make it another run is refused, one that
//! only changes how long or how it is watched is taken.

use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::CheckpointInfo;
use crate::train::{OptimOptions, RunConfig};

/// The differences between a saved run and the run asked for, one line each
/// (`run.batch_size: saved 32, given 64`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeCheck {
    /// Differences that make it another run: the resume must be refused.
    pub refused: Vec<String>,
    /// Differences the resumed run takes.
    pub taken: Vec<String>,
}

/// Compares the `saved` run's description with the `given` one, setting by setting.
pub fn compare(saved: &CheckpointInfo, given: &CheckpointInfo) -> ResumeCheck {
    let mut saved = saved.clone();
    if let (Some(saved), Some(given)) = (&mut saved.origin.data, &given.origin.data) {
        // Where the files were read from does not describe the run.
        saved.root = given.root.clone();
    }
    let resumed = with_resumable_settings(saved.clone(), given);
    let lines = |a: &CheckpointInfo, b: &CheckpointInfo| {
        let mut differences = Vec::new();
        diff("", &to_value(a), &to_value(b), &mut differences);
        differences
    };
    ResumeCheck {
        refused: lines(&resumed, given),
        taken: lines(&saved, &resumed),
    }
}

/// `saved` with the settings a resumed run may change taken from `given`: the stopping
/// rules, how many test images, evaluation, the sample grid, the output folder, the
/// learning-rate schedule, clipping and patience. The others (data, model, batch, seed,
/// augmentation, weight average) make the run what it is.
fn with_resumable_settings(mut saved: CheckpointInfo, given: &CheckpointInfo) -> CheckpointInfo {
    if let (Some(saved), Some(given)) = (&mut saved.origin.data, &given.origin.data) {
        saved.test_images = given.test_images;
    }
    if let (Some(saved), Some(given)) = (&mut saved.origin.run, &given.origin.run) {
        // Every field named: a new setting does not compile until it is put on one side.
        let RunConfig {
            batch_size: _,
            optim,
            seed: _,
            eval_every,
            max_steps,
            epochs,
            max_minutes,
            augment: _,
            samples,
            temperature,
            eval_batch_size,
            out_dir,
        } = given.clone();
        let OptimOptions {
            lr,
            warmup_steps,
            grad_clip,
            ema: _,
            nan_patience,
        } = optim;
        (saved.max_steps, saved.epochs, saved.max_minutes) = (max_steps, epochs, max_minutes);
        (saved.eval_every, saved.eval_batch_size) = (eval_every, eval_batch_size);
        (saved.samples, saved.temperature, saved.out_dir) = (samples, temperature, out_dir);
        (saved.optim.lr, saved.optim.warmup_steps) = (lr, warmup_steps);
        (saved.optim.grad_clip, saved.optim.nan_patience) = (grad_clip, nan_patience);
    }
    saved
}

fn to_value(info: &impl Serialize) -> Value {
    serde_json::to_value(info).expect("a checkpoint description serialises")
}

/// Appends `"path: saved a, given b"` for every leaf where `saved` and `given` differ;
/// objects are compared key by key, anything else as a whole.
fn diff(path: &str, saved: &Value, given: &Value, out: &mut Vec<String>) {
    match (saved, given) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let (a, b) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                diff(&child, a, b, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: saved {a}, given {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Origin;
    use crate::data_info::DataInfo;
    use crate::train::RunConfig;
    use crate::{MarScfConfig, core::MultiScaleFlowConfig};
    use marscf_data::{DatasetName, MnistLayout};

    fn info(run: RunConfig, root: &str) -> CheckpointInfo {
        CheckpointInfo {
            model: MarScfConfig::new(MultiScaleFlowConfig::new([1, 28, 28], 2, 1, 8)),
            origin: Origin {
                data: Some(DataInfo::new(
                    DatasetName::Mnist,
                    MnistLayout::Grey28,
                    Some(root.into()),
                )),
                run: Some(run),
            },
        }
    }

    #[test]
    fn refuses_what_makes_another_run_and_takes_the_rest() {
        let saved = info(RunConfig::new("out"), "/data");
        assert_eq!(compare(&saved, &saved), ResumeCheck::default());

        let mut run = RunConfig::new("out");
        run.batch_size = 64;
        run.optim.lr = 4e-4;
        run.max_minutes = Some(10.0);
        let mut given = info(run, "/elsewhere");
        given.model.flow.hidden = 16;
        let check = compare(&saved, &given);
        assert_eq!(
            check.refused,
            [
                "model.flow.hidden: saved 8, given 16",
                "run.batch_size: saved 32, given 64"
            ]
        );
        assert_eq!(
            check.taken,
            [
                "run.max_minutes: saved null, given 10.0",
                "run.optim.lr: saved 0.0008, given 0.0004"
            ]
        );
    }
}

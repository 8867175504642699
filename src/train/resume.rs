//! What may change when a run resumes: the saved run and the one asked for are compared
//! setting by setting; a difference that would make it another run is refused, one that
//! only changes how long or how it is watched is taken.

use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::CheckpointInfo;

/// Settings of a resumed run that may differ from the saved run's: the stopping rules,
/// evaluation (how many test images) and samples, the learning-rate schedule, clipping and
/// patience.
const CHANGEABLE: [&str; 13] = [
    "data.test_images",
    "run.max_steps",
    "run.epochs",
    "run.max_minutes",
    "run.eval_every",
    "run.eval_batch_size",
    "run.samples",
    "run.temperature",
    "run.out_dir",
    "run.optim.lr",
    "run.optim.warmup_steps",
    "run.optim.grad_clip",
    "run.optim.nan_patience",
];

/// Settings that do not describe the run at all (where the data was read from).
const IGNORED: [&str; 1] = ["data.root"];

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
    let mut differences = Vec::new();
    diff("", &to_value(saved), &to_value(given), &mut differences);
    let mut check = ResumeCheck::default();
    for (path, line) in differences {
        if IGNORED.contains(&path.as_str()) {
            continue;
        }
        if CHANGEABLE.contains(&path.as_str()) {
            check.taken.push(line);
        } else {
            check.refused.push(line);
        }
    }
    check
}

fn to_value(info: &impl Serialize) -> Value {
    serde_json::to_value(info).expect("a checkpoint description serialises")
}

/// Appends `(path, "path: saved a, given b")` for every leaf where `saved` and `given`
/// differ; objects are compared key by key, anything else as a whole.
fn diff(path: &str, saved: &Value, given: &Value, out: &mut Vec<(String, String)>) {
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
        (a, b) if a != b => out.push((path.to_string(), format!("{path}: saved {a}, given {b}"))),
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

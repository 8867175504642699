//! A run killed at any moment (SIGKILL, no chance to clean up) loses nothing it had saved:
//! after every kill, the best checkpoint evaluates and `train --resume` continues from the
//! last complete state. A tiny model that evaluates and checkpoints after every step puts
//! many of the kills inside checkpoint writes.
//!
//! `MARSCF_CRASH_TRIALS` sets the number of kills (default 30).

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::temp_dir;

fn marscf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marscf"));
    command.env("BURN_DEVICE", "flex");
    command
}

/// `train --resume` of the tiny model in `out`, stopping after `max_steps`.
fn train(out: &Path, max_steps: u64) -> Command {
    let mut command = marscf();
    command.args([
        "train",
        "--resume",
        "--mnist-layout",
        "grey28",
        "-L",
        "2",
        "-K",
        "1",
    ]);
    command.args([
        "-C",
        "8",
        "--batch-size",
        "8",
        "--test-images",
        "8",
        "--samples",
        "4",
    ]);
    command.args(["--eval-every", "1", "--max-steps", &max_steps.to_string()]);
    command.arg("--out").arg(out);
    command
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// The step of the last complete state (`last/`, or `last.old/` mid-swap), if any.
fn saved_step(out: &Path) -> Option<u64> {
    ["last", "last.old"].iter().find_map(|dir| {
        let dir = out.join(dir);
        dir.join("position.json").is_file().then(|| {
            let counters = std::fs::read(dir.join("counters.json")).expect("a complete state");
            let counters: serde_json::Value = serde_json::from_slice(&counters).unwrap();
            counters["step"].as_u64().unwrap()
        })
    })
}

/// Whether a write was under way: a temporary file or state folder is left.
fn killed_inside_a_write(out: &Path) -> bool {
    std::fs::read_dir(out).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains(".tmp") || name == "last.old"
        })
    }) || out.join("last.tmp").exists()
}

/// A small deterministic generator of kill delays.
fn delays(seed: u64) -> impl Iterator<Item = Duration> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(150 + (state >> 33) % 1800)
    })
}

#[test]
fn a_run_killed_at_any_moment_resumes_and_its_best_checkpoint_evaluates() {
    let trials: usize = std::env::var("MARSCF_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let dir = temp_dir("crash");
    let out = dir.join("run");
    let best = out.join("marscf_mnist-sample_affine_1_8.bpk");
    let mut failures = Vec::new();
    let mut inside_writes = 0;
    for (trial, delay) in delays(0x5eed).take(trials).enumerate() {
        let mut child = train(&out, 10_000)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        inside_writes += killed_inside_a_write(&out) as usize;

        if best.is_file() {
            let eval = marscf()
                .args(["eval", "--checkpoint"])
                .arg(&best)
                .args(["--test-images", "8", "--json"])
                .output()
                .unwrap();
            if !eval.status.success() {
                failures.push(format!("trial {trial}: eval failed: {}", text(&eval)));
            }
        }
        let from = saved_step(&out).unwrap_or(0);
        let resumed = train(&out, from + 1).output().unwrap();
        let said = text(&resumed);
        if !resumed.status.success() || !said.contains(&format!("done: {} steps", from + 1)) {
            failures.push(format!(
                "trial {trial}: resume from step {from} failed: {said}"
            ));
        }
    }
    eprintln!(
        "{trials} kills, {inside_writes} inside a checkpoint write, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    std::fs::remove_dir_all(dir).ok();
}

//! A run killed at any moment (SIGKILL, no chance to clean up) loses nothing it had saved:
//! after every kill, the best checkpoint evaluates and `train --resume` continues from the
//! last complete state. A tiny model evaluates and checkpoints after every step; every
//! other kill comes a few milliseconds after an evaluation is logged, while its plot,
//! samples and checkpoints are being written, the rest at uniformly random moments.
//!
//! `MARSCF_CRASH_TRIALS` sets the number of kills (default 30).

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::temp_dir;
use support::marscf_command as marscf;

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

/// A small deterministic generator of numbers in `0..n`.
fn draws(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    }
}

/// Evaluations logged in the run's metrics so far (lines with a test bits/dim).
fn evaluations(out: &Path) -> usize {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .map(|log| {
            log.lines()
                .filter(|line| !line.contains("\"test_bits_per_dim\":null"))
                .count()
        })
        .unwrap_or(0)
}

/// Waits until a new evaluation is logged (or `limit` passes), then `extra`.
fn after_next_evaluation(out: &Path, limit: Duration, extra: Duration) {
    let (seen, started) = (evaluations(out), std::time::Instant::now());
    while evaluations(out) == seen && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(extra);
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
    let mut draw = draws(0x5eed);
    for trial in 0..trials {
        let mut child = train(&out, 10_000)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if trial % 2 == 0 {
            std::thread::sleep(Duration::from_millis(150 + draw(1800)));
        } else {
            let extra = Duration::from_millis(draw(150));
            after_next_evaluation(&out, Duration::from_secs(20), extra);
        }
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

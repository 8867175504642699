//! A run killed at any moment (SIGKILL, no chance to clean up) loses nothing it had saved:
//! after every kill, the best checkpoint evaluates and `train --resume` continues from the
//! last complete state. A tiny model evaluates and checkpoints after every step. Every
//! other kill lands inside a write, placed there deterministically: the writer of one file
//! (each in turn: the state folder, the best checkpoint's weights and description, the
//! plot, the samples, a file inside the state folder) is paused just before its rename by
//! the test hook `MARSCF_PAUSE_BEFORE_RENAME` and killed there; the rest come at uniformly
//! random moments. Both kinds must have happened.
//!
//! `MARSCF_CRASH_TRIALS` sets the number of kills (default 24).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use marscf::data::atomic_file;
use marscf_test_support::marscf_command as marscf;
use marscf_test_support::temp_dir;

/// `train --resume` of the tiny model in `out`, stopping after `max_steps`.
fn train(out: &Path, max_steps: u64) -> Command {
    let mut command = marscf!();
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

/// Whether a write was under way: a temporary file or folder is left, or the state swap
/// was between its two renames.
fn killed_inside_a_write(out: &Path) -> bool {
    std::fs::read_dir(out).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name();
            atomic_file::is_temporary(&name) || name == "last.old"
        })
    })
}

/// The files whose writes the paused trials interrupt, in turn (`BEST` stands for the best
/// checkpoint's name; `counters.json` is written inside the state's temporary folder).
const PAUSED_WRITES: [&str; 6] = [
    "last",
    "BEST.bpk",
    "BEST.json",
    "bits_per_dim.png",
    "samples.png",
    "counters.json",
];

/// Waits (at most `limit`) until the child says its writer paused; returns whether it did.
fn wait_for_pause(child: &mut Child, limit: Duration) -> bool {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("paused before renaming onto") {
                let _ = tx.send(());
                break;
            }
        }
    });
    rx.recv_timeout(limit).is_ok()
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

#[test]
fn a_run_killed_at_any_moment_resumes_and_its_best_checkpoint_evaluates() {
    let trials: usize = std::env::var("MARSCF_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24);
    let dir = temp_dir("crash");
    let best_name = "marscf_mnist-sample_affine_1_8";
    let mut failures = Vec::new();
    let (mut paused, mut inside, mut outside) = (0, 0, 0);
    let mut draw = draws(0x5eed);
    for trial in 0..trials {
        let pause = (trial % 2 == 1).then(|| PAUSED_WRITES[trial / 2 % PAUSED_WRITES.len()]);
        // The best checkpoint is written only when the test bits/dim improves, which the
        // first evaluation of a new run always does: its writes are paused in a new run.
        let out = match pause {
            Some(file) if file.starts_with("BEST") => dir.join(format!("new-{trial}")),
            _ => dir.join("run"),
        };
        let best = out.join(format!("{best_name}.bpk"));
        let mut command = train(&out, 10_000);
        command.stdout(Stdio::null());
        let mut child = match pause {
            Some(file) => command
                .env(atomic_file::PAUSE_ENV, file.replace("BEST", best_name))
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            None => command.stderr(Stdio::null()).spawn().unwrap(),
        };
        match pause {
            Some(file) => {
                if wait_for_pause(&mut child, Duration::from_secs(60)) {
                    paused += 1;
                } else {
                    failures.push(format!("trial {trial}: the write of {file} never paused"));
                }
            }
            None => std::thread::sleep(Duration::from_millis(150 + draw(1800))),
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if killed_inside_a_write(&out) {
            inside += 1;
        } else {
            outside += 1;
            if let Some(file) = pause {
                failures.push(format!(
                    "trial {trial}: paused in {file}'s write, nothing left"
                ));
            }
        }

        if best.is_file() {
            let eval = marscf!()
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
        if killed_inside_a_write(&out) {
            failures.push(format!("trial {trial}: the resume left a temporary behind"));
        }
    }
    eprintln!(
        "{trials} kills: {paused} paused inside a write, {inside} left a write unfinished, {outside} between writes; {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(paused, trials / 2, "every paused trial paused");
    assert!(
        inside >= paused,
        "every paused kill left its write unfinished"
    );
    assert!(outside > 0, "no kill landed between writes");
}

//! The traps a user can fall into, each closed: a run folder is never overwritten, a
//! checkpoint is scored on its own data, a resume with other settings is refused, and the
//! reference's own command line parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use marscf_test_support::{
    cli::{path, stderr},
    marscf,
};
use marscf_test_support::{reference::affine_fixture_checkpoint, temp_dir};

fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}", stderr(output));
}

/// An error exit (1, not a usage error or a crash) whose message contains every `expected`.
fn assert_refused(output: &Output, expected: &[&str]) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    for text in expected {
        assert!(stderr.contains(text), "stderr lacks {text:?}: {stderr}");
    }
}

/// Every file below `dir` with its bytes, but the run's lock file (which names the last
/// process that took the lock, refused or not).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if !path.ends_with(marscf::train::folder::LOCK_FILE) {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

/// A tiny run on 1x28x28 digits: `L = 2, K = 1, C = 8`, batch 8, 16 test images.
fn tiny_train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train"];
    args.extend_from_slice(&marscf_test_support::cli::TINY_MODEL);
    args.extend_from_slice(&[
        "--batch-size",
        "8",
        "--test-images",
        "16",
        "--samples",
        "0",
        "--out",
        path(out),
    ]);
    args.extend_from_slice(extra);
    marscf!(&args)
}

#[test]
fn a_folder_holding_a_run_is_never_overwritten() {
    let dir = temp_dir("safety-folder");
    let out = dir.join("run");
    assert_success(&tiny_train(&out, &["--max-steps", "2"]));
    let before = snapshot(&out);
    assert!(before.keys().any(|p| p.ends_with("metrics.jsonl")));

    // Without --resume or --overwrite: refused, every file byte-identical.
    let refused = tiny_train(&out, &["--max-steps", "3"]);
    assert_refused(
        &refused,
        &["already holds files", "--resume", "--overwrite"],
    );
    assert_eq!(snapshot(&out), before);

    // --overwrite moves the old run aside, whole, and starts anew.
    assert_success(&tiny_train(&out, &["--max-steps", "1", "--overwrite"]));
    let aside = dir.join("run.replaced-1");
    assert_eq!(snapshot(&aside), before);
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(
        metrics.lines().all(|l| !l.contains("\"step\":2")),
        "{metrics}"
    );
}

#[test]
fn resuming_with_other_settings_is_refused_and_typed_changes_are_taken() {
    let dir = temp_dir("safety-resume");
    let out = dir.join("run");
    assert_success(&tiny_train(&out, &["--max-steps", "2"]));
    let before = snapshot(&out);

    // Another width, another batch size: error exits listing the difference, no panic.
    let wider = marscf!(&["train", "--resume", "--out", path(&out), "-C", "16"]);
    assert_refused(&wider, &["model.flow.hidden: saved 8, given 16"]);
    let batch = marscf!(&[
        "train",
        "--resume",
        "--out",
        path(&out),
        "--batch-size",
        "4",
    ]);
    assert_refused(&batch, &["run.batch_size: saved 8, given 4"]);
    let dataset = marscf!(&[
        "train",
        "--resume",
        "--out",
        path(&out),
        "--dataset",
        "mnist-sample",
        "--mnist-layout",
        "reference",
    ]);
    assert_refused(&dataset, &["data.image"]);
    assert_eq!(snapshot(&out), before);

    // Nothing else typed: the saved settings (L, K, C, layout, batch) are taken; a longer
    // run is a change a resumed run may make, and says so.
    let resumed = marscf!(&["train", "--resume", "--out", path(&out), "--max-steps", "4"]);
    assert_success(&resumed);
    let said = String::from_utf8_lossy(&resumed.stdout).into_owned() + &stderr(&resumed);
    assert!(said.contains("run.max_steps: saved 2, given 4"), "{said}");
    assert!(said.contains("done: 4 steps"), "{said}");
}

/// A CIFAR-10 binary distribution of `per_file` random images per batch file.
fn fake_cifar(root: &Path, per_file: usize) {
    let folder = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut byte = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    let names = (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()]);
    for name in names {
        let mut bytes = Vec::new();
        for _ in 0..per_file {
            bytes.push(byte() % 10);
            bytes.extend((0..3072).map(|_| byte()));
        }
        std::fs::write(folder.join(name), bytes).unwrap();
    }
}

#[test]
fn a_checkpoint_is_scored_on_its_own_data_or_not_at_all() {
    let dir = temp_dir("safety-data");
    let root = dir.join("cifar");
    fake_cifar(&root, 4);
    let out = dir.join("run");
    let train = marscf!(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-root",
        path(&root),
        "-L",
        "2",
        "-K",
        "1",
        "-C",
        "8",
        "--batch-size",
        "4",
        "--max-steps",
        "1",
        "--samples",
        "0",
        "--out",
        path(&out),
    ]);
    assert_success(&train);
    let best = out.join("marscf_cifar10_affine_1_8.bpk");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(best.with_extension("json")).unwrap()).unwrap();
    assert_eq!(info["data"]["dataset"], "cifar10");
    assert_eq!(info["data"]["image"], serde_json::json!([3, 32, 32]));
    assert_eq!(info["data"]["bits"], 8);
    assert_eq!(info["run"]["batch_size"], 4);

    // No --dataset: the checkpoint's own data (same 3x32x32 shape as MNIST's reference
    // layout, which is never used in its place).
    let eval = marscf!(&["eval", "--checkpoint", path(&best), "--json"]);
    assert_success(&eval);
    let line: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(line["dataset"], "cifar10");
    assert_eq!(line["split"], "test");
    assert_eq!(line["images"], 4);

    // Its data gone: an error naming the files, not MNIST's number.
    std::fs::remove_dir_all(&root).unwrap();
    assert_refused(&marscf!(&["eval", "--checkpoint", path(&best)]), &["cifar"]);

    // Data of another shape, asked for: refused.
    let grey = marscf!(&[
        "eval",
        "--checkpoint",
        path(&best),
        "--dataset",
        "mnist-sample",
        "--mnist-layout",
        "grey28",
    ]);
    assert_refused(&grey, &["the model expects [3, 32, 32]"]);

    // A reference checkpoint that does not name its dataset: --dataset is required.
    let reference = marscf!(&["eval", "--checkpoint", path(&affine_fixture_checkpoint())]);
    assert_refused(&reference, &["does not record the data", "--dataset"]);
}

#[test]
fn the_reference_readme_command_line_parses() {
    let dir = temp_dir("safety-flags");
    // The reference README's own command: it gets past the argument parser to the data.
    let reference = marscf!(&[
        "train",
        "--dataset_name",
        "cifar10",
        "--coupling",
        "mixlogcdf",
        "--batch_size",
        "64",
        "--K",
        "4",
        "--C",
        "96",
        "--data_root",
        path(&dir.join("nowhere")),
        "--out",
        path(&dir.join("run")),
    ]);
    assert_refused(&reference, &["cifar"]);
    // The same spellings in bench, and the long name of the hidden width.
    let bench = marscf!(&[
        "bench",
        "--L",
        "2",
        "--K",
        "1",
        "--hidden",
        "8",
        "--batch_size",
        "2",
        "--reps",
        "1",
        "--cases",
        "coupling_fwd_level1",
    ]);
    assert_success(&bench);
    let line: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(
        (line["L"].as_u64(), line["K"].as_u64(), line["C"].as_u64()),
        (Some(2), Some(1), Some(8))
    );
}

#[test]
fn import_says_what_it_assumed_about_the_image_size() {
    let dir = temp_dir("safety-import");
    let source = affine_fixture_checkpoint();
    let assumed = marscf!(&[
        "import",
        "--pytorch",
        path(&source),
        "--out",
        path(&dir.join("a")),
    ]);
    assert_success(&assumed);
    assert!(
        stderr(&assumed).contains("32x32 assumed for L = 3"),
        "{}",
        stderr(&assumed)
    );
    let given = marscf!(&[
        "import",
        "--pytorch",
        path(&source),
        "--image-size",
        "64",
        "--out",
        path(&dir.join("b")),
    ]);
    assert_success(&given);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("b/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(
        info["model"]["flow"]["image"],
        serde_json::json!([3, 64, 64])
    );
}

#[test]
fn a_run_on_two_devices_resumes_on_one() {
    let dir = temp_dir("safety-devices");
    let out = dir.join("run");
    let two = tiny_train(&out, &["--max-steps", "2", "--devices", "2"]);
    assert_success(&two);
    let said = String::from_utf8_lossy(&two.stdout);
    assert!(said.contains("2 shards on its one device"), "{said}");
    // The device count is no setting of the run: the resume on one device is not refused.
    let resumed = marscf!(&["train", "--resume", "--out", path(&out), "--max-steps", "3"]);
    assert_success(&resumed);
    let said = String::from_utf8_lossy(&resumed.stdout);
    assert!(said.contains("done: 3 steps"), "{said}");
    let none = tiny_train(&dir.join("none"), &["--devices", "0"]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
}

#[test]
fn a_folder_that_holds_no_run_is_never_touched() {
    let dir = temp_dir("safety-not-a-run");
    let out = dir.join("papers");
    std::fs::create_dir_all(out.join("last.tmp")).unwrap();
    for name in [
        "draft.tmp-123",
        "figure.tmp.png",
        ".notes.x1.marscf-tmp",
        "last.tmp/keep.txt",
    ] {
        std::fs::write(out.join(name), name).unwrap();
    }
    let before = snapshot(&out);
    for option in ["--resume", "--overwrite"] {
        let refused = tiny_train(&out, &["--max-steps", "1", option]);
        assert_refused(
            &refused,
            &["holds files but no marscf run", "draft.tmp-123"],
        );
        assert_eq!(snapshot(&out), before, "{option}");
    }
    assert!(!dir.join("papers.replaced-1").exists());
}

#[test]
fn a_second_writer_is_refused_and_a_dead_writers_lock_is_taken() {
    let dir = temp_dir("safety-lock");
    let out = dir.join("run");
    // The first writer stops inside its first state write, holding the run's lock.
    let mut first = marscf_test_support::marscf_command!()
        .args([
            "train",
            "--mnist-layout",
            "grey28",
            "-L",
            "2",
            "-K",
            "1",
            "-C",
            "8",
            "--batch-size",
            "8",
            "--test-images",
            "16",
            "--samples",
            "0",
            "--max-steps",
            "2",
            "--out",
            path(&out),
        ])
        .env(marscf::data::atomic_file::PAUSE_ENV, "last")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(first.stderr.take().unwrap()));
    while !said.contains("paused before renaming") {
        said = lines.next().expect("the writer pauses").unwrap();
    }
    let second = marscf!(&["train", "--resume", "--out", path(&out), "--max-steps", "2"]);
    assert_refused(
        &second,
        &["in use by another process", &format!("pid {}", first.id())],
    );
    let overwrite = tiny_train(&out, &["--max-steps", "1", "--overwrite"]);
    assert_refused(&overwrite, &["in use by another process"]);
    assert!(!dir.join("run.replaced-1").exists());

    // Killed, its lock goes with it: the run resumes (from the state saved before).
    first.kill().unwrap();
    first.wait().unwrap();
    let resumed = marscf!(&["train", "--resume", "--out", path(&out), "--max-steps", "2"]);
    assert_success(&resumed);
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("done: 2 steps"));
}

#[test]
fn sample_and_interpolate_never_replace_a_file_unasked() {
    let dir = temp_dir("safety-outputs");
    let out = dir.join("run");
    assert_success(&tiny_train(&out, &["--max-steps", "1"]));
    let checkpoint = out.join("marscf_mnist-sample_affine_1_8.bpk");
    let grid = dir.join("grid.png");
    let near = dir.join("grid.tmp.png");
    std::fs::write(&grid, b"mine").unwrap();
    std::fs::write(&near, b"also mine").unwrap();
    let sample = |extra: &[&str]| {
        let mut args = vec!["sample", "--checkpoint", path(&checkpoint), "--n", "4"];
        args.extend_from_slice(&["--out", path(&grid)]);
        args.extend_from_slice(extra);
        marscf!(&args)
    };
    assert_refused(&sample(&[]), &["grid.png exists", "--overwrite"]);
    let interpolate = |extra: &[&str]| {
        let mut args = vec!["interpolate", "--checkpoint", path(&checkpoint)];
        args.extend_from_slice(&["--test-images", "4", "--steps", "2"]);
        args.extend_from_slice(&["--out", path(&grid)]);
        args.extend_from_slice(extra);
        marscf!(&args)
    };
    assert_refused(&interpolate(&[]), &["grid.png exists", "--overwrite"]);
    assert_eq!(std::fs::read(&grid).unwrap(), b"mine");
    assert_success(&sample(&["--overwrite"]));
    assert!(std::fs::read(&grid).unwrap().starts_with(b"\x89PNG"));
    assert_success(&interpolate(&["--overwrite"]));
    assert_eq!(std::fs::read(&near).unwrap(), b"also mine");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".marscf-tmp"))
        .collect();
    assert!(names.is_empty(), "temporaries left: {names:?}");
    // Empty requests are refused before any work.
    assert_eq!(sample(&["--overwrite", "--n", "0"]).status.code(), Some(2));
}

#[test]
fn numeric_options_out_of_range_are_refused() {
    let dir = temp_dir("safety-ranges");
    for (option, value) in [
        ("--grad-clip", "-1"),
        ("--grad-clip", "0"),
        ("--ema", "1"),
        ("--ema", "-0.1"),
        ("--lr", "NaN"),
        ("--lr", "0"),
        ("--max-minutes", "-5"),
        ("--temperature", "inf"),
        ("--batch-size", "0"),
        ("--eval-batch-size", "0"),
        ("--nan-patience", "0"),
    ] {
        let out = dir.join("run");
        let refused = tiny_train(&out, &["--max-steps", "1", &format!("{option}={value}")]);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{option} {value}: {}",
            stderr(&refused)
        );
        assert!(stderr(&refused).contains(option), "{}", stderr(&refused));
        assert!(!out.exists(), "{option} {value} created the run folder");
    }
}

#[test]
fn import_never_replaces_a_checkpoint_description() {
    let dir = temp_dir("safety-import-json");
    let source = affine_fixture_checkpoint();
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("checkpoint.json");
    std::fs::write(&json, b"my notes").unwrap();
    let refused = marscf!(&["import", "--pytorch", path(&source), "--out", path(&dir)]);
    assert_refused(&refused, &["checkpoint.json exists"]);
    assert_eq!(std::fs::read(&json).unwrap(), b"my notes");
    assert!(!dir.join("checkpoint.bpk").exists());
}

//! The `marscf` command as a user runs it: good paths produce their files, bad input is an
//! error exit with a message (never a panic) that leaves existing files untouched.

use std::path::Path;
use std::process::Output;

use marscf_test_support::{cli::path, marscf, marscf_command};
use marscf_test_support::{reference::affine_fixture_checkpoint, temp_dir};

fn assert_clean_failure(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(
        stderr.contains(expected),
        "stderr lacks {expected:?}: {stderr}"
    );
}

#[test]
fn train_eval_import_and_sample() {
    let dir = temp_dir("happy");
    let out = dir.join("run");
    let train = marscf!(&[
        "train",
        "--dataset",
        "mnist-sample",
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
        "--max-steps",
        "2",
        "--test-images",
        "16",
        "--samples",
        "4",
        "--out",
        path(&out),
    ]);
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    for file in [
        "metrics.jsonl",
        "bits_per_dim.png",
        "samples.png",
        "last/model.bpk",
        "marscf_mnist-sample_affine_1_8.bpk",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }

    // The trained checkpoint through the flow and back, an interpolation strip, and the
    // reference's evaluation protocol: each on the checkpoint's own data.
    let best = out.join("marscf_mnist-sample_affine_1_8.bpk");
    let reconstruct = marscf!(&["reconstruct", "--checkpoint", path(&best), "--images", "8"]);
    assert!(
        reconstruct.status.success(),
        "{}",
        String::from_utf8_lossy(&reconstruct.stderr)
    );
    let said = String::from_utf8_lossy(&reconstruct.stdout).into_owned();
    let error: f64 = said.rsplit("= ").next().unwrap().trim().parse().unwrap();
    assert!(error < 1e-4, "{said}");
    let strip = dir.join("strip.png");
    let interpolate = marscf!(&[
        "interpolate",
        "--checkpoint",
        path(&best),
        "--steps",
        "4",
        "--out",
        path(&strip),
    ]);
    assert!(
        interpolate.status.success(),
        "{}",
        String::from_utf8_lossy(&interpolate.stderr)
    );
    assert!(strip.is_file());
    let reference = marscf!(&[
        "eval",
        "--checkpoint",
        path(&best),
        "--protocol",
        "reference",
        "--test-images",
        "20",
        "--batch-size",
        "8",
        "--json",
    ]);
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&reference.stdout).unwrap();
    assert_eq!(line["protocol"], "reference");
    assert_eq!(line["images"], 16, "the last partial batch is dropped");

    let eval = marscf!(&[
        "eval",
        "--checkpoint",
        path(&affine_fixture_checkpoint()),
        "--dataset",
        "mnist-sample",
        "--test-images",
        "16",
        "--json",
    ]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(line["bits_per_dim"].as_f64().unwrap().is_finite());
    assert_eq!(line["images"], 16);
    assert!(line["seconds"].as_f64().is_some() && line["checkpoint"].as_str().is_some());

    let import = marscf!(&[
        "import",
        "--pytorch",
        path(&affine_fixture_checkpoint()),
        "--out",
        path(&dir),
    ]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let native = dir.join("checkpoint.bpk");
    let grid = dir.join("grid.png");
    let sample = marscf!(&[
        "sample",
        "--checkpoint",
        path(&native),
        "--n",
        "4",
        "--out",
        path(&grid),
    ]);
    assert!(
        sample.status.success(),
        "{}",
        String::from_utf8_lossy(&sample.stderr)
    );
    assert!(grid.is_file());
}

#[test]
fn bad_input_is_an_error_exit_that_touches_nothing() {
    let dir = temp_dir("bad");
    // A corrupt checkpoint.
    let corrupt = dir.join("corrupt.bpk");
    std::fs::write(&corrupt, b"not a checkpoint").unwrap();
    std::fs::write(dir.join("corrupt.json"), b"{}").unwrap();
    assert_clean_failure(
        &marscf!(&["eval", "--checkpoint", path(&corrupt)]),
        "error:",
    );
    assert_clean_failure(
        &marscf!(&["eval", "--checkpoint", path(&dir.join("missing.pt"))]),
        "error:",
    );

    // A dataset whose files are missing, and one that is corrupt: the run folder's files stay.
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("metrics.jsonl"), b"precious\n").unwrap();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let train = |root: &Path| {
        marscf!(&[
            "train",
            "--dataset",
            "mnist",
            "--data-root",
            path(root),
            "--max-steps",
            "1",
            "--out",
            path(&out),
        ])
    };
    assert_clean_failure(&train(&empty), "train-images-idx3-ubyte");
    std::fs::write(
        empty.join("train-images-idx3-ubyte.gz"),
        b"\x1f\x8b garbage",
    )
    .unwrap();
    for name in [
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::write(empty.join(name), b"garbage").unwrap();
    }
    assert_clean_failure(&train(&empty), "error:");
    assert_eq!(
        std::fs::read(out.join("metrics.jsonl")).unwrap(),
        b"precious\n"
    );

    // Unknown dataset, image size that does not divide by 2^L, unknown backend.
    assert_clean_failure(
        &marscf!(&["train", "--dataset", "svhn", "--out", path(&out)]),
        "svhn",
    );
    let odd = marscf!(&[
        "train",
        "--mnist-layout",
        "grey28",
        "-L",
        "3",
        "--out",
        path(&out),
    ]);
    assert_clean_failure(&odd, "2^3");
    let backend = marscf_command!()
        .args(["bench", "--cases", "coupling_fwd_level1"])
        .env("BURN_DEVICE", "tpu")
        .output()
        .unwrap();
    assert_clean_failure(&backend, "BURN_DEVICE=tpu");
}

#[test]
fn glow_options_train_and_eval_reports_draws_breakdown_and_per_image_scores() {
    let dir = temp_dir("glow-options");
    let out = dir.join("run");
    let mut train_args = vec![
        "train",
        "--mnist-layout",
        "grey28",
        "-L",
        "2",
        "-K",
        "1",
        "-C",
        "8",
        "--coupling",
        "additive",
        "--prior",
        "glow",
        "--n-bits",
        "5",
        "--batch-size",
        "8",
        "--max-steps",
        "2",
        "--test-images",
        "12",
        "--samples",
        "0",
        "--out",
        path(&out),
    ];
    let train = marscf!(&train_args);
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let best = out.join("marscf_mnist-sample_additive_1_8.bpk");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(saved["model"]["bits"], 5);
    assert_eq!(saved["data"]["bits"], 5);
    assert_eq!(saved["model"]["prior"]["kind"], "glow");
    assert_eq!(saved["model"]["flow"]["coupling"]["kind"], "additive");

    // A resumed run at another depth is another run.
    let n_bits = train_args.iter().position(|a| *a == "5").unwrap();
    train_args[n_bits] = "4";
    train_args.push("--resume");
    assert_clean_failure(&marscf!(&train_args), "bits");

    let csv = dir.join("scores.csv");
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--checkpoint",
            path(&best),
            "--test-images",
            "12",
            "--draws",
            "2",
            "--per-image",
            path(&csv),
            "--json",
        ];
        args.extend_from_slice(extra);
        marscf!(&args)
    };
    let first = eval(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        (line["draws"].as_u64(), line["images"].as_u64()),
        (Some(2), Some(12))
    );
    assert!(line["standard_error"].as_f64().unwrap() > 0.0);
    // Two draws: the importance-weighted bound below the mean of the bounds.
    let iw = line["iw_bits_per_dim"].as_f64().unwrap();
    assert!(iw < line["bits_per_dim"].as_f64().unwrap(), "{line}");
    assert!(line["iw_standard_error"].as_f64().unwrap() > 0.0);
    let breakdown = &line["breakdown"];
    assert_eq!(breakdown["dequantization"].as_f64().unwrap().round(), 5.0);
    let sum = breakdown["dequantization"].as_f64().unwrap()
        + breakdown["levels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["log_det"].as_f64().unwrap() + l["prior"].as_f64().unwrap())
            .sum::<f64>();
    assert!((sum - line["bits_per_dim"].as_f64().unwrap()).abs() < 1e-5);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 13);

    // The scores are not overwritten unless asked.
    assert_clean_failure(&eval(&[]), "--overwrite");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), rows);
    let again = eval(&["--overwrite"]);
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        rows,
        "same seed, same scores"
    );
}

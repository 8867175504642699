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
    assert_eq!(
        rows.lines().next(),
        Some("index,label,bits_per_dim,iw_bits_per_dim")
    );
    for row in rows.lines().skip(1) {
        let fields: Vec<f64> = row.split(',').map(|f| f.parse().unwrap()).collect();
        assert!(fields[3] < fields[2], "{row}");
    }

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

/// The file names in `folder`: its PNG images and its temporaries.
fn png_and_temporary_files(folder: &Path) -> (usize, usize) {
    let names: Vec<std::ffi::OsString> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let temporary = names
        .iter()
        .filter(|n| marscf::data::atomic_file::is_temporary(n))
        .count();
    let png = names
        .iter()
        .filter(|n| n.to_string_lossy().ends_with(".png"))
        .count();
    (png, temporary)
}

#[test]
fn sampling_killed_midway_goes_on_to_exactly_n_images() {
    let dir = temp_dir("sample-kill");
    let folder = dir.join("fid");
    let checkpoint = affine_fixture_checkpoint();
    let args = [
        "sample",
        "--checkpoint",
        path(&checkpoint),
        "--n",
        "30",
        "--batch-size",
        "8",
        "--temperature",
        "0.8",
        "--out-dir",
        path(&folder),
    ];
    // Killed while writing image 13 (its temporary complete, not yet renamed).
    let mut first = marscf_command!()
        .args(args)
        .env(marscf::data::atomic_file::PAUSE_ENV, "000013.png")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(first.stderr.take().unwrap()));
    while !lines
        .next()
        .expect("the writer pauses")
        .unwrap()
        .contains("paused before renaming")
    {}
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(png_and_temporary_files(&folder), (13, 1));

    let second = marscf!(&args);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(said.contains("13 kept, 17 written"), "{said}");
    assert_eq!(png_and_temporary_files(&folder), (30, 0));

    // Only an .npz: its images wait in a hidden folder that goes once the file is written.
    let npz = dir.join("samples.npz");
    let npz_only = [
        "sample",
        "--checkpoint",
        path(&checkpoint),
        "--n",
        "5",
        "--npz",
        path(&npz),
    ];
    let made = marscf!(&npz_only);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["fid", "samples.npz"]);
    // Asked again: the file exists, and stays as it was.
    let before = std::fs::read(&npz).unwrap();
    assert_clean_failure(&marscf!(&npz_only), "--overwrite");
    assert_eq!(std::fs::read(&npz).unwrap(), before);
    // An .npz inside the images' folder: refused before anything is drawn.
    let inside = folder.join("all.npz");
    let mut args = args.to_vec();
    args.extend(["--npz", path(&inside)]);
    assert_clean_failure(&marscf!(&args), "inside --out-dir");
    assert_eq!(png_and_temporary_files(&folder), (30, 0));
    assert!(!inside.exists());
}

#[test]
fn fid_between_two_statistics_files() {
    use marscf::fid::FidStatistics;
    let dir = temp_dir("fid-cli");
    // Diagonal covariances: d² = |μa - μb|² + Σ_i (√σa_i - √σb_i)² = 0.25 + 1 + 0 + 1.
    let diagonal = |mu: [f64; 3], var: [f64; 3]| FidStatistics {
        mu: mu.to_vec(),
        sigma: (0..9)
            .map(|k| if k % 4 == 0 { var[k / 4] } else { 0.0 })
            .collect(),
    };
    let (a, b) = (dir.join("a.npz"), dir.join("b.npz"));
    diagonal([0.0, 1.0, -1.0], [4.0, 1.0, 9.0])
        .write_npz(&a, marscf::data::atomic_file::Existing::Keep)
        .unwrap();
    diagonal([0.5, 1.0, -1.0], [1.0, 1.0, 16.0])
        .write_npz(&b, marscf::data::atomic_file::Existing::Keep)
        .unwrap();
    for (first, second, want) in [(&a, &b, 2.25), (&a, &a, 0.0)] {
        let run = marscf!(&["fid", path(first), path(second), "--json", "--no-cache"]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert!(
            (line["fid"].as_f64().unwrap() - want).abs() < 1e-12,
            "{line} against {want}"
        );
    }
    // Images need the network's weights: a clear error, not a panic.
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    assert_clean_failure(
        &marscf!(&["fid", path(&a), path(&images), "--no-cache"]),
        "--inception",
    );
    // Weights other than pytorch-fid's (here the tests' calibration file) are refused.
    let other = marscf_test_support::fid::fixture("inception-bn.pth");
    let run = marscf!(&[
        "fid",
        path(&a),
        path(&images),
        "--no-cache",
        "--inception",
        path(&other)
    ]);
    assert_clean_failure(&run, "not that of pytorch-fid's FID Inception weights");
}

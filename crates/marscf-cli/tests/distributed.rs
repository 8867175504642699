//! `mpirun -np 2 marscf train` (feature `mpi`) against `marscf train` with the same global
//! batch: the same test bits/dim, one writer, one report.

use std::path::Path;
use std::process::{Command, Output};

use marscf_test_support::{
    cli::{path, stderr},
    marscf_command, temp_dir,
};

/// The arguments of a short MNIST-sample run into `out`.
fn run_args(out: &Path) -> Vec<&str> {
    let mut args = vec!["train"];
    args.extend_from_slice(&marscf_test_support::cli::TINY_MODEL);
    args.extend_from_slice(&[
        "--batch-size",
        "8",
        "--test-images",
        "48",
        "--eval-batch-size",
        "16",
        "--samples",
        "4",
        "--max-steps",
        "20",
        "--out",
        path(out),
    ]);
    args
}

/// The test bits/dim a finished `marscf train` printed last.
fn final_test_bits_per_dim(output: &Output) -> f64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("done:"))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}\n{}", stderr(output)));
    let value = line
        .split("test bits/dim ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the summary names the test bits/dim");
    value.parse().expect("a number")
}

#[test]
fn two_processes_train_as_one() {
    let dir = temp_dir("cli-mpi");
    let (alone, shared) = (dir.join("alone"), dir.join("shared"));

    let one = marscf_command!().args(run_args(&alone)).output().unwrap();
    assert!(one.status.success(), "{}", stderr(&one));
    let two = Command::new("mpirun")
        .args(["--timeout", "300", "--oversubscribe", "--bind-to", "none"])
        .args(["-np", "2"])
        .arg(env!("CARGO_BIN_EXE_marscf"))
        .args(run_args(&shared))
        .env("BURN_DEVICE", "flex")
        .env("RAYON_NUM_THREADS", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun runs (Open MPI installed)");
    assert!(two.status.success(), "{}", stderr(&two));

    let (a, b) = (final_test_bits_per_dim(&one), final_test_bits_per_dim(&two));
    assert!(
        (a - b).abs() < 1e-3,
        "test bits/dim: one process {a}, two {b}"
    );
    // Rank 0 alone reports and writes.
    let stdout = String::from_utf8_lossy(&two.stdout);
    assert_eq!(stdout.matches("training mAR-SCF").count(), 1, "{stdout}");
    assert!(stdout.contains("in each of 2 processes"), "{stdout}");
    assert_eq!(stdout.matches("all-reduce: ").count(), 1, "{stdout}");
    let metrics = |out: &Path| std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics(&alone).lines().count(),
        metrics(&shared).lines().count()
    );
}

//! Running the `marscf` binary from the CLI tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The `marscf` binary on the Flex backend, ready for arguments.
pub fn marscf_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marscf"));
    command.env("BURN_DEVICE", "flex");
    command
}

/// Runs `marscf args` to completion.
pub fn marscf(args: &[&str]) -> Output {
    marscf_command()
        .args(args)
        .output()
        .expect("the binary runs")
}

/// `p` as an argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// What the command printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The options of the tests' tiny model: 1x28x28 digits, L = 2, K = 1, hidden 8.
pub const TINY_MODEL: [&str; 8] = ["--mnist-layout", "grey28", "-L", "2", "-K", "1", "-C", "8"];

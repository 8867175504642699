//! Running the `marscf` binary from the CLI crate's tests. The binary's path is known only to
//! the test crate that Cargo builds it for (`CARGO_BIN_EXE_marscf`), hence the two macros.

use std::path::Path;
use std::process::{Command, Output};

/// `marscf_command!()`: the calling test crate's `marscf` binary on the Flex backend, as a
/// [`Command`] ready for arguments.
#[macro_export]
macro_rules! marscf_command {
    () => {
        $crate::cli::command(env!("CARGO_BIN_EXE_marscf"))
    };
}

/// `marscf!(&["train", ..])`: runs the calling test crate's `marscf` binary to completion.
#[macro_export]
macro_rules! marscf {
    ($args:expr) => {
        $crate::cli::run($crate::marscf_command!(), $args)
    };
}

/// The binary at `binary` on the Flex backend.
pub fn command(binary: &str) -> Command {
    let mut command = Command::new(binary);
    command.env("BURN_DEVICE", "flex");
    command
}

/// Runs `command args` to completion.
pub fn run(mut command: Command, args: &[&str]) -> Output {
    command.args(args).output().expect("the binary runs")
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

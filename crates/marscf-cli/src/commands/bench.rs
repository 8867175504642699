//! `marscf bench`: one JSON line per timed case (see [`marscf_cli::bench`]).

use clap::Args;
use marscf::select_device;
use marscf_cli::bench::{BenchConfig, CASES, run_case};

use crate::args::ModelArgs;
use crate::commands::Result;
use marscf::train::ModelSize;

/// Options of `marscf bench` (the model of [`BenchConfig::default`] unless told otherwise).
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Batch size.
    #[arg(long, visible_aliases = ["batch_size", "batch"], default_value_t = BenchConfig::default().batch)]
    batch_size: usize,
    /// Timed repetitions after one warm-up.
    #[arg(long, default_value_t = BenchConfig::default().reps)]
    reps: usize,
    /// Comma-separated cases (default: all).
    #[arg(long, value_delimiter = ',')]
    cases: Option<Vec<String>>,
}

/// Runs `marscf bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let device = select_device()?;
    let backend = marscf::device::selected_backend_name();
    let defaults = BenchConfig::default();
    let size = args.model.size(ModelSize {
        levels: defaults.levels,
        steps: defaults.steps,
        hidden: defaults.hidden,
    });
    let config = BenchConfig {
        coupling: args.model.coupling_or_affine(),
        levels: size.levels,
        steps: size.steps,
        hidden: size.hidden,
        batch: args.batch_size,
        reps: args.reps,
    };
    let cases = args
        .cases
        .unwrap_or_else(|| CASES.iter().map(|c| c.to_string()).collect());
    for case in cases {
        let result = run_case(&case, &config, &device, &backend)?;
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

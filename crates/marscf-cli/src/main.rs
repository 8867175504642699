//! `marscf`: train, evaluate and sample mAR-SCF models, import the reference's checkpoints,
//! time the model.

mod args;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{bench, eval, fid, import, interpolate, reconstruct, sample, train};

/// mAR-SCF normalizing flows with multi-scale autoregressive priors.
#[derive(Parser, Debug)]
#[command(name = "marscf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model (resumable), evaluating test bits/dim as it goes.
    Train(Box<train::TrainArgs>),
    /// Test bits/dim of a native checkpoint or of a reference `.pt`.
    Eval(eval::EvalArgs),
    /// Draw samples from a checkpoint: a grid, or one PNG per image and/or an .npz for FID.
    Sample(sample::SampleArgs),
    /// The Fréchet Inception distance between two image sets (pytorch-fid's).
    Fid(fid::FidArgs),
    /// Convert a reference PyTorch checkpoint to a native one.
    Import(import::ImportArgs),
    /// Test images through the flow and back: the largest reconstruction error.
    Reconstruct(reconstruct::ReconstructArgs),
    /// A PNG strip of the images between two test images' latents.
    Interpolate(interpolate::InterpolateArgs),
    /// Time training, evaluation, sampling and one coupling; one JSON line per case.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    if let Err(error) = marscf::keep_freed_memory() {
        eprintln!("warning: {error}");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Fid(args) => fid::run(args),
        Command::Import(args) => import::run(args),
        Command::Reconstruct(args) => reconstruct::run(args),
        Command::Interpolate(args) => interpolate::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

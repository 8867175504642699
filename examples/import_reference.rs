//! Converts a reference PyTorch checkpoint (`torch.save(model.state_dict())`, as the
//! authors publish theirs) into a native checkpoint, and prints what it found.
//!
//! ```text
//! cargo run --release --example import_reference -- marscf_cifar10_mixlogcdf_4_256.pt [OUT_DIR]
//! ```

use std::path::PathBuf;

use marscf::{checkpoint, import, select_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let source = PathBuf::from(
        args.next()
            .ok_or("usage: import_reference FILE.pt [OUT_DIR]")?,
    );
    let out = PathBuf::from(args.next().unwrap_or_else(|| "checkpoints".into()));
    let device = select_device()?;
    let (model, report) = import::load_reference(&source, None, None, false, &device)?;
    let flow = &report.config.flow;
    println!(
        "{}: {} tensors, L = {}, K = {}, C = {}, coupling {:?}{}",
        source.display(),
        report.loaded,
        flow.levels,
        flow.steps,
        flow.hidden,
        flow.coupling,
        if report.config_inferred {
            " (inferred from the keys; images taken as 32x32)"
        } else {
            ""
        }
    );
    if !report.ignored.is_empty() {
        println!(
            "dropped {} reference-only tensors (the top level's unused conditioning network)",
            report.ignored.len()
        );
    }
    let target = out.join(
        source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("imported"),
    );
    checkpoint::save(&model, &checkpoint::Origin::default(), &target)?;
    println!(
        "written {}.bpk and {}.json",
        target.display(),
        target.display()
    );
    Ok(())
}

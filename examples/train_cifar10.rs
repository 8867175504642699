//! Trains mAR-SCF on CIFAR-10 with the reference's augmentation, as the reference README's
//! example (`--coupling mixlogcdf --batch_size 64 --K 4 --C 96`).
//!
//! ```text
//! cargo run --release --example train_cifar10 -- DATA_ROOT [OUT_DIR] [MINUTES]
//! cargo run --release --features cuda --example train_cifar10 -- data/cifar10
//! ```
//!
//! DATA_ROOT holds the binary (`data_batch_1.bin` ... `test_batch.bin`) or the Python
//! (`cifar-10-batches-py/`) distribution; with the `download` feature (default) missing
//! files are fetched there and checked by SHA-256.

use std::path::PathBuf;

use marscf::core::{CouplingKind, MixLogCdfConfig, MultiScaleFlowConfig};
use marscf::data::MnistLayout;
use marscf::data::datasets::{DatasetName, load};
use marscf::train::{DataParallel, OptimOptions, RunConfig, Silent, Start, TrainingData, train};
use marscf::{DataInfo, MarScfConfig, select_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    marscf::keep_freed_memory()?;
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .ok_or("usage: train_cifar10 DATA_ROOT [OUT_DIR] [MINUTES]")?,
    );
    let out = PathBuf::from(args.next().unwrap_or_else(|| "runs/train_cifar10".into()));
    let minutes: Option<f64> = args.next().map(|m| m.parse()).transpose()?;
    #[cfg(feature = "download")]
    marscf::data::download::download_cifar10(marscf::data::download::CIFAR10_BASE_URL, &root)?;
    let (train_set, test_set) = load(DatasetName::Cifar10, Some(&root), MnistLayout::Reference)?;
    let info = DataInfo::new(DatasetName::Cifar10, MnistLayout::Reference, Some(root));
    let data = TrainingData {
        info,
        train: train_set,
        test: test_set,
    };
    let coupling = CouplingKind::MixLogCdf(MixLogCdfConfig::new());
    let model = MarScfConfig::new(
        MultiScaleFlowConfig::new(data.info.image, 3, 4, 96).with_coupling(coupling),
    );
    let run = RunConfig {
        batch_size: 64,
        // The reference's warm-up of 10,000 samples at batch 64.
        optim: OptimOptions {
            warmup_steps: 156,
            ..OptimOptions::default()
        },
        max_minutes: minutes,
        augment: true,
        samples: 64,
        eval_batch_size: 100,
        ..RunConfig::new(out.clone())
    };
    let device = select_device()?;
    println!(
        "CIFAR-10: {} train / {} test images, {}",
        data.train.len(),
        data.test.len(),
        marscf::device::selected_backend_name()
    );
    let parallel = DataParallel::single(&device);
    let summary = train(&model, &run, &data, parallel, Start::Resume, &mut Silent)?;
    println!(
        "{} steps, {} epochs: test {:.4} bits/dim (best {:.4}); {}",
        summary.steps,
        summary.position.epoch,
        summary.position.last_test_bits_per_dim.unwrap_or(f64::NAN),
        summary.position.best_test_bits_per_dim.unwrap_or(f64::NAN),
        out.display()
    );
    Ok(())
}

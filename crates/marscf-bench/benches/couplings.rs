//! Coupling throughput at the reference's first-level size: 12 channels at 16x16, batch 16;
//! affine with hidden 128, MixLogCDF with hidden 96 (10 blocks, 32 components). Forward,
//! and forward + backward of `sum(y) + sum(logdet)`. On the backend `select_device` picks.

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use marscf::core::{CouplingKind, InvertibleLayer, MixLogCdfConfig};

fn couplings(c: &mut Criterion) {
    let device = marscf::select_device().expect("a backend");
    let backend = marscf::device::selected_backend_name();
    let mut group = c.benchmark_group(format!("coupling/{backend}"));
    group.sample_size(10);
    for (name, kind, hidden) in [
        ("affine_c128", CouplingKind::Affine, 128),
        (
            "mixlogcdf_c96",
            CouplingKind::MixLogCdf(MixLogCdfConfig::new().with_dropout(0.0)),
            96,
        ),
    ] {
        for backward in [false, true] {
            let device = if backward {
                device.clone().autodiff()
            } else {
                device.clone()
            };
            let coupling = kind.init(12, hidden, &device).expect("valid sizes");
            let x = Tensor::<4>::random([16, 12, 16, 16], Distribution::Normal(0.0, 1.0), &device);
            let label = if backward { "fwd_bwd" } else { "fwd" };
            group.bench_function(format!("{name}/{label}"), |b| {
                b.iter(|| {
                    let (y, logdet) = coupling.forward(x.clone());
                    let total = y.sum() + logdet.sum();
                    if backward {
                        let _ = total.backward();
                    } else {
                        let _ = total.into_data();
                    }
                    device.sync().expect("device work finishes");
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, couplings);
criterion_main!(benches);

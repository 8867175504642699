//! A whole training step (forward, backward, Adamax) of the default affine model
//! (L = 3, K = 8, C = 128, batch 16, 3x32x32), and an evaluation forward pass.

use criterion::{Criterion, criterion_group, criterion_main};
use marscf_cli::bench::{BenchConfig, run_case};

fn train_step(c: &mut Criterion) {
    let device = marscf::select_device().expect("a backend");
    let backend = marscf::device::selected_backend_name();
    let config = BenchConfig {
        reps: 1,
        ..BenchConfig::default()
    };
    let mut group = c.benchmark_group(format!("model/{backend}"));
    group.sample_size(10);
    for case in ["train_step", "eval_forward"] {
        group.bench_function(case, |b| {
            b.iter_custom(|iterations| {
                let repeated = BenchConfig {
                    reps: iterations as usize,
                    ..config.clone()
                };
                let result = run_case(case, &repeated, &device, &backend).expect("the case runs");
                std::time::Duration::from_secs_f64(result.median_s * iterations as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);

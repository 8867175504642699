//! The mAR prior on the 3x32x32, L = 3 latents (6x16x16, 12x8x8, 48x4x4), batch 16:
//! likelihood forward + backward, and sampling all three levels.

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use marscf::core::Prior;
use marscf::prior::MarPriorConfig;

fn prior(c: &mut Criterion) {
    let device = marscf::select_device().expect("a backend");
    let backend = marscf::device::selected_backend_name();
    let mut group = c.benchmark_group(format!("prior/{backend}"));
    group.sample_size(10);
    let shapes = [[16, 6, 16, 16], [16, 12, 8, 8], [16, 48, 4, 4]];
    let normal = |shape: [usize; 4], device| {
        Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device)
    };

    let autodiff = device.clone().autodiff();
    let trained = MarPriorConfig::new(vec![6, 12, 48]).init(&autodiff);
    let latents: Vec<_> = shapes.iter().map(|s| normal(*s, &autodiff)).collect();
    group.bench_function("likelihood_fwd_bwd", |b| {
        b.iter(|| {
            let mut total = trained.log_prob(2, latents[2].clone(), None).sum();
            for (level, z) in latents.iter().enumerate().take(2) {
                let log_p = trained.log_prob(level, z.clone(), Some(z.clone()));
                total = total + log_p.sum();
            }
            let _ = total.backward();
            autodiff.sync().expect("device work finishes");
        })
    });

    // The same likelihood with every step's embedding, input gates and output head run one
    // step at a time (the layout before batching over time), for comparison.
    group.bench_function("likelihood_fwd_bwd_step_by_step", |b| {
        b.iter(|| {
            let mut total = Tensor::<1>::zeros([1], &autodiff);
            for (level, z) in latents.iter().enumerate() {
                let prior = &trained.levels[level];
                let e = (level < 2).then(|| {
                    prior
                        .condition
                        .as_ref()
                        .expect("conditioned")
                        .forward(z.clone())
                });
                let [batch, channels, h, w] = z.dims();
                let mut previous = Tensor::<4>::zeros([batch, 1, h, w], &autodiff);
                let mut state = None;
                for t in 0..channels {
                    let input = match &e {
                        Some(e) => Tensor::cat(vec![previous, e.clone()], 1),
                        None => previous,
                    };
                    let (hidden, next) = prior.lstm.step(prior.embed.forward(input), state);
                    state = Some(next);
                    let out = prior.out.forward(hidden);
                    let z_t = z.clone().narrow(1, t, 1);
                    let log_p = marscf::core::gaussian_log_density(
                        z_t.clone(),
                        out.clone().narrow(1, 0, 1),
                        out.narrow(1, 1, 1),
                    );
                    total = total + log_p.sum().reshape([1]);
                    previous = z_t;
                }
            }
            let _ = total.sum().backward();
            autodiff.sync().expect("device work finishes");
        })
    });

    let sampler = MarPriorConfig::new(vec![6, 12, 48]).init(&device);
    let conditions: Vec<_> = shapes.iter().map(|s| normal(*s, &device)).collect();
    group.bench_function("sample", |b| {
        b.iter(|| {
            for (level, shape) in shapes.iter().enumerate() {
                let condition = (level < 2).then(|| conditions[level].clone());
                let _ = sampler
                    .sample(level, *shape, condition, 1.0, &device)
                    .into_data();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, prior);
criterion_main!(benches);

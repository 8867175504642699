use std::time::Instant;
use burn::tensor::{Tensor, Distribution};
use marscf::prior::MarPriorConfig;
fn main() {
    let device = marscf::select_device().unwrap();
    let ad = device.clone().autodiff();
    let prior = MarPriorConfig::new(vec![6, 12, 48]).init(&ad);
    let b = 32;
    for (level, (n, hw)) in [(6usize, 16usize), (12, 8), (48, 4)].into_iter().enumerate() {
        let z = Tensor::<4>::random([b, n, hw, hw], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let cond = if level < 2 { Some(Tensor::<4>::random([b, n, hw, hw], Distribution::Normal(0.0, 1.0), &ad)) } else { None };
        for _ in 0..2 {
            let t = Instant::now();
            let lp = prior.levels[level].log_prob(z.clone(), cond.clone()).sum();
            let _ = lp.clone().into_scalar::<f32>();
            let f = t.elapsed().as_secs_f64();
            let _g = lp.backward();
            println!("level {level}: fwd {f:.3}s fwd+bwd {:.3}s", t.elapsed().as_secs_f64());
        }
    }
}

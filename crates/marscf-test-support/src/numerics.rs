//! Seeded inputs, perturbed parameters and the independent computations the numeric tests
//! compare against.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Tensor};
use marscf::core::host_linalg;

/// Adds N(0, std²) noise to every trainable parameter, leaving the fixed buffers (the
/// permutation `p`, `sign_s`, the `initialized` flags) alone, so that tests exercise
/// parameters away from their initial values (zero convolutions included).
pub fn perturb<M: Module>(module: M, std: f64) -> M {
    struct Perturb {
        std: f64,
        path: Vec<String>,
    }
    impl ModuleMapper for Perturb {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let fixed = matches!(
                self.path.last().map(String::as_str),
                Some("p" | "sign_s" | "initialized")
            );
            if fixed {
                return param;
            }
            let std = self.std;
            param.map(|t| {
                let noise = t.random_like(Distribution::Normal(0.0, std));
                (t.detach() + noise).detach()
            })
        }
    }
    module.map(&mut Perturb {
        std,
        path: Vec::new(),
    })
}

/// `max |a - b|`.
pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    (a - b).abs().max().into_scalar::<f32>() as f64
}

/// A batch of uniform values in `[-0.5, 0.5)`, the range of the flow's pixels.
pub fn pixels(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Uniform(-0.5, 0.5), device)
}

/// `ln |det J|` of `f` at `x` (`(1, C, H, W)`, at most a few hundred dimensions), from the
/// Jacobian built row by row with autodiff (one backward pass per output) and an f64 LU.
/// `x` must live on an autodiff device.
pub fn jacobian_log_abs_det(f: impl Fn(Tensor<4>) -> Tensor<4>, x: &Tensor<4>) -> f64 {
    let n = x.dims().iter().product::<usize>();
    let mut jacobian = Vec::with_capacity(n * n);
    for i in 0..n {
        let input = x.clone().detach().require_grad();
        let y = f(input.clone());
        assert_eq!(
            y.dims().iter().product::<usize>(),
            n,
            "f must preserve the dimension"
        );
        let grads = y.reshape([n]).narrow(0, i, 1).sum().backward();
        let row = input.grad(&grads).expect("the input is tracked");
        jacobian.extend(host_linalg::to_host(row));
    }
    // ln |det J| = Σ ln |U_ii| for J = P L U (det P = ±1, det L = 1).
    let lu = host_linalg::lu_decompose(&jacobian, n).expect("the Jacobian is invertible");
    (0..n).map(|i| lu.u[i * n + i].abs().ln()).sum()
}

/// The `5σ` acceptance interval of a count drawn from `Binomial(n, p)`:
/// `n p ± 5 sqrt(n p (1 - p))`. A correct sampler falls outside with probability about
/// `6e-7`; a sampler with the wrong `p` falls inside only if the interval is wider than
/// the gap between the two means, so size `n` such that `5σ` is well below `n |p - p'|`.
pub fn binomial_5_sigma(n: usize, p: f64) -> std::ops::RangeInclusive<f64> {
    let (n, mean) = (n as f64, n as f64 * p);
    let sigma = (n * p * (1.0 - p)).sqrt();
    (mean - 5.0 * sigma)..=(mean + 5.0 * sigma)
}

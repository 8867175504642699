//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Tensor};
use marscf::core::host_linalg;

/// The device every test runs on (see `marscf::select_device`).
pub fn device() -> Device {
    marscf::select_device().expect("a backend is compiled in")
}

/// Holds Burn's device random generator for one test. It is one generator per backend and
/// process: a test that seeds it and expects what follows (a resumed run that must equal
/// the uninterrupted one) fails when another test's draws come in between. Every test of a
/// binary that draws takes this first.
pub fn exclusive_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

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

/// `shared/` beside the workspace, or `$MARSCF_SHARED_DIR`. (The workspace root is the
/// first folder above the test's package holding `Cargo.lock`: this module also serves
/// `crates/marscf-cli`'s tests.)
pub fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("MARSCF_SHARED_DIR")
        .map(Into::into)
        .unwrap_or_else(|| {
            let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let root = package
                .ancestors()
                .find(|dir| dir.join("Cargo.lock").is_file())
                .unwrap_or(package);
            root.join("../shared")
        })
}

/// The reference-parity fixture folders: every folder below `$MARSCF_PARITY_DIR` (default
/// `shared/fixtures/reference-parity`) that holds a `config.json`.
pub fn parity_folders() -> Vec<std::path::PathBuf> {
    let root = std::env::var_os("MARSCF_PARITY_DIR")
        .map(Into::into)
        .unwrap_or_else(|| shared_dir().join("fixtures/reference-parity"));
    let mut folders: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("parity fixtures at {}: {e}", root.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("config.json").is_file())
        .collect();
    folders.sort();
    assert!(
        !folders.is_empty(),
        "no fixture folders in {}",
        root.display()
    );
    folders
}

/// The f32 tensors of a safetensors file, by name.
pub fn read_safetensors(
    path: &std::path::Path,
) -> std::collections::BTreeMap<String, burn::tensor::TensorData> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(
                view.dtype(),
                safetensors::Dtype::F32,
                "{name}: only f32 fixtures"
            );
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (
                name,
                burn::tensor::TensorData::new(values, view.shape().to_vec()),
            )
        })
        .collect()
}

/// An empty folder for one test, under the system's temporary folder, unique per process.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("marscf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The affine reference fixture's checkpoint (L = 3, K = 2, C = 16).
pub fn affine_fixture_checkpoint() -> std::path::PathBuf {
    parity_folders()
        .into_iter()
        .find(|f| f.ends_with("affine-L3-K2-C16"))
        .expect("the affine fixture folder")
        .join("checkpoint.pt")
}

/// A tiny model on 1x28x28 digits: L = 2, K = 1, hidden 8, a one-layer prior, no dropout.
pub fn tiny_model() -> marscf::MarScfConfig {
    let flow = marscf::core::MultiScaleFlowConfig::new([1, 28, 28], 2, 1, 8);
    marscf::MarScfConfig::new(flow).with_prior(marscf::PriorKind::Mar {
        hidden: 8,
        lstm_layers: 1,
    })
}

/// The first `n` embedded digits of the training (or test) split, 1x28x28.
pub fn digits(n: usize, test: bool) -> marscf::data::ImageSet {
    use marscf::data::{ImageSet, MnistLayout, embedded};
    let split = if test {
        embedded::test()
    } else {
        embedded::train()
    };
    ImageSet::from_mnist(&split, MnistLayout::Grey28).take(n)
}

/// Every parameter's gradient in `grads`, flattened, by path.
pub fn gradients_by_path(
    model: &marscf::MarScf,
    grads: &burn::optim::GradientsParams,
) -> std::collections::BTreeMap<String, Tensor<1>> {
    marscf::params::param_paths(model)
        .into_iter()
        .filter_map(|(path, info)| marscf::params::flat_gradient(grads, &info).map(|g| (path, g)))
        .collect()
}

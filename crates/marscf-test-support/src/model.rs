//! The test device, the lock on Burn's random generator, the tiny model and its digits.

use burn::tensor::{Device, Tensor};

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

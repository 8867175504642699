//! Test bits/dim over a whole image set.

use burn::module::Module;
use burn::tensor::Device;
use marscf_data::{BatchOptions, ImageSet, make_batch, stream};

use crate::{MarScf, ModelError};

/// The RNG stream of evaluation noise (fixed per batch, so evaluations compare).
const EVAL_STREAM: u64 = 0xe7a1;

/// The mean test bits/dim of `model` over `set`, in batches of `batch_size`, each image
/// dequantised with noise drawn from `seed`. Runs without autodiff.
pub fn evaluate(
    model: &MarScf,
    set: &ImageSet,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> Result<f64, ModelError> {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut total = 0.0;
    for (b, chunk) in indices.chunks(batch_size.max(1)).enumerate() {
        let options = BatchOptions {
            augment: false,
            dequantize: true,
            bits: model.config.bits,
        };
        let x = make_batch(
            set,
            chunk,
            options,
            &mut stream(seed, EVAL_STREAM, b as u64),
            &device,
        );
        total += model.forward(x)?.bits_per_dim.sum().into_scalar::<f32>() as f64;
    }
    Ok(total / set.len().max(1) as f64)
}

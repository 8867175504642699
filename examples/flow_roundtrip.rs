//! Builds a multi-scale flow, pushes a batch of real MNIST digits (the embedded sample)
//! through it and back, and prints bits/dim and the reconstruction error.
//!
//! ```text
//! cargo run --release --example flow_roundtrip
//! ```

use std::time::Instant;

use marscf::core::{MultiScaleFlowConfig, StandardNormal};
use marscf::data::{BatchOptions, ImageSet, MnistLayout, embedded, make_batch, stream};
use marscf::{bits_per_dim, objective_start, select_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = select_device()?;
    device.seed(0);
    let batch = 64;
    let digits = ImageSet::from_mnist(&embedded::train(), MnistLayout::Reference);
    let indices: Vec<usize> = (0..batch).collect();
    let options = BatchOptions {
        augment: false,
        dequantize: true,
        bits: 8,
    };
    let x = make_batch(&digits, &indices, options, &mut stream(0, 0, 0), &device);
    let [_, c, h, w] = x.dims();
    let dims = c * h * w;

    let config = MultiScaleFlowConfig::new([c, h, w], 3, 4, 64);
    println!(
        "backend {}, flow L={} K={} hidden 64 (affine couplings, standard-normal prior), {batch} MNIST digits {c}x{h}x{w}",
        marscf::device::selected_backend_name(),
        config.levels,
        config.steps
    );
    let flow = config.init(&device)?.initialize(x.clone())?;

    let start = Instant::now();
    let encoded = flow.forward(
        x.clone(),
        objective_start(batch, dims, 8, &device),
        &StandardNormal,
    )?;
    let bpd = bits_per_dim(encoded.objective, dims)
        .mean()
        .into_scalar::<f32>();
    let forward_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let x_back = flow.decode(encoded.latents)?;
    let error = (x_back - x).abs().max().into_scalar::<f32>();
    let inverse_s = start.elapsed().as_secs_f64();

    println!("bits/dim after data-dependent initialisation (untrained): {bpd:.4}");
    println!("max |decode(encode(x)) - x| = {error:.3e}");
    println!("forward {forward_s:.3} s, inverse {inverse_s:.3} s");
    let latent_shapes: Vec<_> = flow.latent_shapes();
    println!("latent shapes per level: {latent_shapes:?}");
    Ok(())
}

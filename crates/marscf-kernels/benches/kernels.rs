//! Our Flex kernels against their portable defaults, forward and forward + backward, with
//! the rate in GFLOP/s (forward + backward counts three passes):
//! - the convolution (`2 N Co Ci k² H W` per pass) at the prior's shapes: the ConvLSTM
//!   input-to-gates convolutions of the affine L3 K8 C128 model at batch 16 (levels 1 to 3)
//!   and one hidden-to-gates step; and the 3x3 convolution of the MixLogCDF coupling's
//!   gated blocks at levels 1 to 3 (`2h = 192 -> h = 96`) and its network's last at level 3
//!   (`96 -> 24 (2 + 3 · 32)`); on those 4x4 maps at batch 16 a kernel made for one call
//!   takes im2col (the forward + backward, and the last convolution's forward, its kernel
//!   too large to keep), the gated forward Winograd with its kernel kept from the second
//!   call on; and the affine coupling's first and last 3x3 convolutions at level 1 of the
//!   affine L3 K8 C128 model (`6 -> 128` by im2col, `128 -> 12` by Winograd's F(4x4, 3x3)
//!   on Flex);
//! - the multi-head attention (`4 B L² c` per pass, the two products) of the MixLogCDF
//!   coupling's blocks at level 1 (batch 16, 16x16 positions, 96 channels, 4 heads), with
//!   the training's dropout of 0.2 in the forward + backward;
//! - weight normalisation of the MixLogCDF gated convolution's weight (`96 x 192 x 3 x 3`),
//!   forward without autodiff, as evaluation and sampling run it.

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use marscf_kernels::{
    ConvSpec, conv2d, conv2d_portable, multi_head_attention, multi_head_attention_portable,
    weight_norm, weight_norm_portable,
};

type Conv = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvSpec) -> Tensor<4>;

fn convolutions(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
    group.sample_size(10);
    // (name, N, Ci, Co, H = W, k, dilation)
    let shapes = [
        ("l1_input_gates", 96, 32, 128, 16, 5, 2),
        ("l2_input_gates", 192, 32, 128, 8, 5, 1),
        ("l3_input_gates", 768, 32, 128, 4, 3, 1),
        ("l1_hidden_step", 16, 32, 128, 16, 5, 2),
        ("mixlogcdf_gated_l1", 16, 192, 96, 16, 3, 1),
        ("mixlogcdf_gated_l2", 16, 192, 96, 8, 3, 1),
        ("mixlogcdf_gated_l3", 16, 192, 96, 4, 3, 1),
        ("mixlogcdf_out_l3", 16, 96, 1176, 4, 3, 1),
        ("affine_in_l1", 16, 6, 128, 16, 3, 1),
        ("affine_out_l1", 16, 128, 12, 16, 3, 1),
    ];
    for (name, n, ci, co, size, k, d) in shapes {
        let flops = 2 * n * co * ci * k * k * size * size;
        let spec = ConvSpec::same([k, k], [d, d]);
        for (path, conv) in [
            ("ours", conv2d as Conv),
            ("portable", conv2d_portable as Conv),
        ] {
            for backward in [false, true] {
                let device = match backward {
                    false => Device::flex(),
                    true => Device::flex().autodiff(),
                };
                let normal = Distribution::Normal(0.0, 1.0);
                let tracked = |t: Tensor<4>| if backward { t.require_grad() } else { t };
                let x = tracked(Tensor::random([n, ci, size, size], normal, &device));
                let w = tracked(Tensor::random([co, ci, k, k], normal, &device));
                let b = Tensor::<1>::random([co], normal, &device);
                let b = if backward { b.require_grad() } else { b };
                let passes = if backward { 3 } else { 1 };
                group.throughput(Throughput::Elements((passes * flops) as u64));
                let label = if backward { "fwd_bwd" } else { "fwd" };
                group.bench_function(format!("{name}/{path}/{label}"), |bench| {
                    bench.iter(|| {
                        let y = conv(x.clone(), w.clone(), Some(b.clone()), spec);
                        if backward {
                            let _ = y.sum().backward();
                        } else {
                            let _ = y.into_data();
                        }
                    })
                });
            }
        }
    }
    group.finish();
}

type Attention = fn(Tensor<3>, usize, f64) -> Tensor<3>;

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group.sample_size(10);
    let (batch, len, channels, heads) = (16, 256, 96, 4);
    let flops = 4 * batch * len * len * channels;
    for (path, attend) in [
        ("ours", multi_head_attention as Attention),
        ("portable", multi_head_attention_portable as Attention),
    ] {
        for backward in [false, true] {
            let device = match backward {
                false => Device::flex(),
                true => Device::flex().autodiff(),
            };
            let packed = Tensor::random(
                [batch, len, 3 * channels],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let (packed, dropout, passes, label) = match backward {
                false => (packed, 0.0, 1, "fwd"),
                true => (packed.require_grad(), 0.2, 3, "fwd_bwd"),
            };
            group.throughput(Throughput::Elements((passes * flops) as u64));
            group.bench_function(format!("l1_b16/{path}/{label}"), |bench| {
                bench.iter(|| {
                    let y = attend(packed.clone(), heads, dropout);
                    if backward {
                        let _ = y.sum().backward();
                    } else {
                        let _ = y.into_data();
                    }
                })
            });
        }
    }
    group.finish();
}

type WeightNorm = fn(Tensor<4>, Tensor<4>) -> Tensor<4>;

fn weight_normalisation(c: &mut Criterion) {
    let mut group = c.benchmark_group("weight_norm");
    group.sample_size(10);
    let device = Device::flex();
    let v = Tensor::random([96, 192, 3, 3], Distribution::Normal(0.0, 1.0), &device);
    let g = Tensor::random([96, 1, 1, 1], Distribution::Normal(1.0, 0.1), &device);
    for (path, normalise) in [
        ("ours", weight_norm as WeightNorm),
        ("portable", weight_norm_portable as WeightNorm),
    ] {
        group.bench_function(format!("gated_3x3/{path}/fwd"), |bench| {
            bench.iter(|| normalise(v.clone(), g.clone()).into_data())
        });
    }
    group.finish();
}

criterion_group!(benches, convolutions, attention, weight_normalisation);
criterion_main!(benches);

//! pytorch-fid's FID Inception-v3 up to its pool3 features, in Burn: torchvision's Inception-v3
//! with the blocks pytorch-fid patches to match the TensorFlow graph that FID was defined
//! with (`FIDInceptionA`, `C`, `E_1`: average pooling that does not count the padding;
//! `E_2`: max pooling), loaded from the published `pt_inception-2015-12-05` weights.
//!
//! Input `(N, 3, H, W)` in `[0, 1]` is resized to 299x299 (bilinear, half-pixel centres, no
//! antialiasing: `F.interpolate(..., align_corners=False)`), scaled to `[-1, 1]`, and run
//! through the stem and the eleven mixed blocks; the average over the last 8x8 map gives
//! `(N, 2048)`. Each convolution is torchvision's `BasicConv2d` (no bias, batch norm with
//! `eps = 0.001`, ReLU), its batch norm folded into the convolution when loaded:
//! `w' = w γ / sqrt(var + eps)`, `b' = β - mean γ / sqrt(var + eps)`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::{ModuleStore, PytorchStore, bridge};
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::ModelError;

/// The folder where pytorch-fid publishes its FID Inception weights.
pub const INCEPTION_BASE_URL: &str =
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/";

/// The published weights' file name (it ends in the start of their SHA-256, which
/// PyTorch's hub checks).
pub const INCEPTION_FILE: &str = "pt_inception-2015-12-05-6726825d.pth";

/// The published weights' size in bytes.
pub const INCEPTION_SIZE: u64 = 95_628_359;

/// The published weights' SHA-256, lower-case hex.
pub const INCEPTION_SHA256: &str =
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";

/// The length of a pool3 feature vector.
pub const FEATURES: usize = 2048;

/// The side the network's input is resized to.
const INPUT_SIDE: usize = 299;

/// torchvision's batch-norm epsilon for Inception-v3.
const BN_EPS: f64 = 1e-3;

/// The FID Inception network, inference only.
#[derive(Debug)]
pub struct FidInception {
    stem: [BasicConv; 5],
    mixed_5: [InceptionA; 3],
    mixed_6a: InceptionB,
    mixed_6: [InceptionC; 4],
    mixed_7a: InceptionD,
    mixed_7: [InceptionE; 2],
}

impl FidInception {
    /// The network with pytorch-fid's published weights ([`INCEPTION_FILE`]) read from
    /// `path`: a file whose SHA-256 is not [`INCEPTION_SHA256`] is refused (other weights
    /// give another network's distance, not FID).
    pub fn from_pth(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let digest = marscf_data::digest::sha256_files(&[path])
            .map_err(ModelError::format(path, "cannot read the weights"))?;
        if digest != INCEPTION_SHA256 {
            return Err(ModelError::invalid(
                path,
                format!(
                    "its SHA-256 is {digest}, not that of pytorch-fid's FID Inception weights \
                     ({INCEPTION_SHA256}, published as {INCEPTION_BASE_URL}{INCEPTION_FILE})"
                ),
            ));
        }
        Self::from_tensors(read_state_dict(path)?, path, device)
    }

    /// The network from its state dict's tensors by key (`Conv2d_1a_3x3.conv.weight`,
    /// `Mixed_5b.branch1x1.bn.running_var`, ...); `path` names the source in errors. Every
    /// convolution and batch norm must be there with its shape; other keys are ignored.
    pub fn from_tensors(
        tensors: BTreeMap<String, TensorData>,
        path: &Path,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let mut w = Weights {
            tensors,
            path,
            device,
        };
        let stem = [
            BasicConv::load(&mut w, "Conv2d_1a_3x3", [32, 3, 3, 3], 2, [0, 0])?,
            BasicConv::load(&mut w, "Conv2d_2a_3x3", [32, 32, 3, 3], 1, [0, 0])?,
            BasicConv::load(&mut w, "Conv2d_2b_3x3", [64, 32, 3, 3], 1, [1, 1])?,
            BasicConv::load(&mut w, "Conv2d_3b_1x1", [80, 64, 1, 1], 1, [0, 0])?,
            BasicConv::load(&mut w, "Conv2d_4a_3x3", [192, 80, 3, 3], 1, [0, 0])?,
        ];
        Ok(Self {
            stem,
            mixed_5: [
                InceptionA::load(&mut w, "Mixed_5b", 192, 32)?,
                InceptionA::load(&mut w, "Mixed_5c", 256, 64)?,
                InceptionA::load(&mut w, "Mixed_5d", 288, 64)?,
            ],
            mixed_6a: InceptionB::load(&mut w, "Mixed_6a", 288)?,
            mixed_6: [
                InceptionC::load(&mut w, "Mixed_6b", 128)?,
                InceptionC::load(&mut w, "Mixed_6c", 160)?,
                InceptionC::load(&mut w, "Mixed_6d", 160)?,
                InceptionC::load(&mut w, "Mixed_6e", 192)?,
            ],
            mixed_7a: InceptionD::load(&mut w, "Mixed_7a")?,
            mixed_7: [
                InceptionE::load(&mut w, "Mixed_7b", 1280, Pool::Average)?,
                InceptionE::load(&mut w, "Mixed_7c", 2048, Pool::Max)?,
            ],
        })
    }

    /// Pool3 features: `(N, 3, H, W)` in `[0, 1]` -> `(N, 2048)`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let x = resize(images, INPUT_SIDE).mul_scalar(2.0).sub_scalar(1.0);
        let [c1a, c2a, c2b, c3b, c4a] = &self.stem;
        let x = c2b.forward(c2a.forward(c1a.forward(x)));
        let x = max_pool(x, 3, 2, 0);
        let x = c4a.forward(c3b.forward(x));
        let mut x = max_pool(x, 3, 2, 0);
        for block in &self.mixed_5 {
            x = block.forward(x);
        }
        x = self.mixed_6a.forward(x);
        for block in &self.mixed_6 {
            x = block.forward(x);
        }
        x = self.mixed_7a.forward(x);
        for block in &self.mixed_7 {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }
}

/// The convolution and batch-norm tensors of the PyTorch state dict at `path`, by key.
pub fn read_state_dict(path: &Path) -> Result<BTreeMap<String, TensorData>, ModelError> {
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    store
        .get_all_tensors()
        .map_err(ModelError::format(
            path,
            "not a readable PyTorch state dict",
        ))?
        .iter()
        .filter(|(key, _)| key.contains(".conv.") || key.contains(".bn."))
        .map(|(key, tensor)| {
            bridge::to_data(tensor)
                .map(|data| (key.clone(), data))
                .map_err(ModelError::format(path, "cannot read a tensor"))
        })
        .collect()
}

/// The state dict being read: each tensor taken once, its shape checked.
struct Weights<'a> {
    tensors: BTreeMap<String, TensorData>,
    path: &'a Path,
    device: &'a Device,
}

impl Weights<'_> {
    /// The tensor `key` as f64 values, which must have `shape`.
    fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f64>, ModelError> {
        let data = self
            .tensors
            .remove(key)
            .ok_or_else(|| ModelError::invalid(self.path, format!("no tensor {key}")))?;
        if data.shape().as_slice() != shape {
            return Err(ModelError::invalid(
                self.path,
                format!("{key} has shape {:?}, not {shape:?}", data.shape()),
            ));
        }
        data.convert::<f64>()
            .try_into_vec::<f64>()
            .map_err(|e| ModelError::invalid(self.path, format!("{key}: {e:?}")))
    }
}

/// A convolution (its batch norm folded in) and ReLU: torchvision's `BasicConv2d`.
#[derive(Debug)]
struct BasicConv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    options: ConvOptions<2>,
}

impl BasicConv {
    /// The layer `name` (`name.conv.weight` of `shape` `[out, in, kh, kw]`, `name.bn.*`),
    /// with `stride` and `padding` `[ph, pw]`.
    fn load(
        w: &mut Weights,
        name: &str,
        shape: [usize; 4],
        stride: usize,
        padding: [usize; 2],
    ) -> Result<Self, ModelError> {
        let out = shape[0];
        let mut weight = w.take(&format!("{name}.conv.weight"), &shape)?;
        let gamma = w.take(&format!("{name}.bn.weight"), &[out])?;
        let beta = w.take(&format!("{name}.bn.bias"), &[out])?;
        let mean = w.take(&format!("{name}.bn.running_mean"), &[out])?;
        let var = w.take(&format!("{name}.bn.running_var"), &[out])?;
        let per_output = weight.len() / out;
        let mut bias = vec![0f32; out];
        for o in 0..out {
            let scale = gamma[o] / (var[o] + BN_EPS).sqrt();
            weight[o * per_output..(o + 1) * per_output]
                .iter_mut()
                .for_each(|v| *v *= scale);
            bias[o] = (beta[o] - mean[o] * scale) as f32;
        }
        let weight: Vec<f32> = weight.into_iter().map(|v| v as f32).collect();
        Ok(Self {
            weight: Tensor::from_data(TensorData::new(weight, shape), w.device),
            bias: Tensor::from_data(TensorData::new(bias, [out]), w.device),
            options: ConvOptions::new([stride, stride], padding, [1, 1], 1),
        })
    }

    /// `(N, in, H, W) -> (N, out, H', W')`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (weight, bias) = (self.weight.clone(), Some(self.bias.clone()));
        relu(match self.options.stride {
            [1, 1] => {
                let spec = marscf_kernels::ConvSpec {
                    padding: self.options.padding,
                    dilation: [1, 1],
                };
                marscf_kernels::conv2d(x, weight, bias, spec)
            }
            _ => conv2d(x, weight, bias, self.options.clone()),
        })
    }
}

/// The pooling before a mixed block's pool branch.
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// 3x3, stride 1, padding 1, the padding not counted (pytorch-fid's patch).
    Average,
    /// 3x3, stride 1, padding 1 (pytorch-fid's `FIDInceptionE_2`).
    Max,
}

impl Pool {
    fn forward(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Average => avg_pool2d(
                x,
                AvgPoolOptions {
                    kernel_size: [3, 3],
                    stride: [1, 1],
                    padding: [(1, 1), (1, 1)],
                    count_include_pad: false,
                    ceil_mode: false,
                },
            ),
            Self::Max => max_pool(x, 3, 1, 1),
        }
    }
}

/// Max pooling, `kernel` square, the padding never chosen.
fn max_pool(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions {
            kernel_size: [kernel, kernel],
            stride: [stride, stride],
            padding: [(padding, padding), (padding, padding)],
            dilation: [1, 1],
            ceil_mode: false,
        },
    )
}

/// `name.part` as a layer name.
fn at(name: &str, part: &str) -> String {
    format!("{name}.{part}")
}

/// Mixed 5b-5d: 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | pool, 1x1 -> 64 + 64 + 96 + `pool`.
#[derive(Debug)]
struct InceptionA {
    branch1x1: BasicConv,
    branch5x5: [BasicConv; 2],
    branch3x3dbl: [BasicConv; 3],
    branch_pool: BasicConv,
}

impl InceptionA {
    fn load(w: &mut Weights, name: &str, input: usize, pool: usize) -> Result<Self, ModelError> {
        let conv = |w: &mut Weights, part, shape, padding| {
            BasicConv::load(w, &at(name, part), shape, 1, padding)
        };
        Ok(Self {
            branch1x1: conv(w, "branch1x1", [64, input, 1, 1], [0, 0])?,
            branch5x5: [
                conv(w, "branch5x5_1", [48, input, 1, 1], [0, 0])?,
                conv(w, "branch5x5_2", [64, 48, 5, 5], [2, 2])?,
            ],
            branch3x3dbl: [
                conv(w, "branch3x3dbl_1", [64, input, 1, 1], [0, 0])?,
                conv(w, "branch3x3dbl_2", [96, 64, 3, 3], [1, 1])?,
                conv(w, "branch3x3dbl_3", [96, 96, 3, 3], [1, 1])?,
            ],
            branch_pool: conv(w, "branch_pool", [pool, input, 1, 1], [0, 0])?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(
            vec![
                self.branch1x1.forward(x.clone()),
                chain(&self.branch5x5, x.clone()),
                chain(&self.branch3x3dbl, x.clone()),
                self.branch_pool.forward(Pool::Average.forward(x)),
            ],
            1,
        )
    }
}

/// Mixed 6a, 35 -> 17: 3x3/2 | 1x1, 3x3, 3x3/2 | max pool 3x3/2 -> 384 + 96 + 288.
#[derive(Debug)]
struct InceptionB {
    branch3x3: BasicConv,
    branch3x3dbl: [BasicConv; 3],
}

impl InceptionB {
    fn load(w: &mut Weights, name: &str, input: usize) -> Result<Self, ModelError> {
        Ok(Self {
            branch3x3: BasicConv::load(w, &at(name, "branch3x3"), [384, input, 3, 3], 2, [0, 0])?,
            branch3x3dbl: [
                BasicConv::load(w, &at(name, "branch3x3dbl_1"), [64, input, 1, 1], 1, [0, 0])?,
                BasicConv::load(w, &at(name, "branch3x3dbl_2"), [96, 64, 3, 3], 1, [1, 1])?,
                BasicConv::load(w, &at(name, "branch3x3dbl_3"), [96, 96, 3, 3], 2, [0, 0])?,
            ],
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(
            vec![
                self.branch3x3.forward(x.clone()),
                chain(&self.branch3x3dbl, x.clone()),
                max_pool(x, 3, 2, 0),
            ],
            1,
        )
    }
}

/// Mixed 6b-6e on 768 channels, factorised 7x7s of width `c7`: 1x1 | 1x1, 1x7, 7x1 |
/// 1x1, 7x1, 1x7, 7x1, 1x7 | pool, 1x1 -> 4 x 192.
#[derive(Debug)]
struct InceptionC {
    branch1x1: BasicConv,
    branch7x7: [BasicConv; 3],
    branch7x7dbl: [BasicConv; 5],
    branch_pool: BasicConv,
}

impl InceptionC {
    fn load(w: &mut Weights, name: &str, c7: usize) -> Result<Self, ModelError> {
        let conv = |w: &mut Weights, part, shape: [usize; 4]| {
            // A 1x7 kernel pads 3 columns, a 7x1 one 3 rows.
            let padding = [(shape[2] - 1) / 2, (shape[3] - 1) / 2];
            BasicConv::load(w, &at(name, part), shape, 1, padding)
        };
        Ok(Self {
            branch1x1: conv(w, "branch1x1", [192, 768, 1, 1])?,
            branch7x7: [
                conv(w, "branch7x7_1", [c7, 768, 1, 1])?,
                conv(w, "branch7x7_2", [c7, c7, 1, 7])?,
                conv(w, "branch7x7_3", [192, c7, 7, 1])?,
            ],
            branch7x7dbl: [
                conv(w, "branch7x7dbl_1", [c7, 768, 1, 1])?,
                conv(w, "branch7x7dbl_2", [c7, c7, 7, 1])?,
                conv(w, "branch7x7dbl_3", [c7, c7, 1, 7])?,
                conv(w, "branch7x7dbl_4", [c7, c7, 7, 1])?,
                conv(w, "branch7x7dbl_5", [192, c7, 1, 7])?,
            ],
            branch_pool: conv(w, "branch_pool", [192, 768, 1, 1])?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(
            vec![
                self.branch1x1.forward(x.clone()),
                chain(&self.branch7x7, x.clone()),
                chain(&self.branch7x7dbl, x.clone()),
                self.branch_pool.forward(Pool::Average.forward(x)),
            ],
            1,
        )
    }
}

/// Mixed 7a, 17 -> 8: 1x1, 3x3/2 | 1x1, 1x7, 7x1, 3x3/2 | max pool 3x3/2 -> 320 + 192 + 768.
#[derive(Debug)]
struct InceptionD {
    branch3x3: [BasicConv; 2],
    branch7x7x3: [BasicConv; 4],
}

impl InceptionD {
    fn load(w: &mut Weights, name: &str) -> Result<Self, ModelError> {
        let conv = |w: &mut Weights, part, shape, stride, padding| {
            BasicConv::load(w, &at(name, part), shape, stride, padding)
        };
        Ok(Self {
            branch3x3: [
                conv(w, "branch3x3_1", [192, 768, 1, 1], 1, [0, 0])?,
                conv(w, "branch3x3_2", [320, 192, 3, 3], 2, [0, 0])?,
            ],
            branch7x7x3: [
                conv(w, "branch7x7x3_1", [192, 768, 1, 1], 1, [0, 0])?,
                conv(w, "branch7x7x3_2", [192, 192, 1, 7], 1, [0, 3])?,
                conv(w, "branch7x7x3_3", [192, 192, 7, 1], 1, [3, 0])?,
                conv(w, "branch7x7x3_4", [192, 192, 3, 3], 2, [0, 0])?,
            ],
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(
            vec![
                chain(&self.branch3x3, x.clone()),
                chain(&self.branch7x7x3, x.clone()),
                max_pool(x, 3, 2, 0),
            ],
            1,
        )
    }
}

/// Mixed 7b-7c on 8x8: 1x1 | 1x1, (1x3 | 3x1) | 1x1, 3x3, (1x3 | 3x1) | pool, 1x1 ->
/// 320 + 768 + 768 + 192.
#[derive(Debug)]
struct InceptionE {
    branch1x1: BasicConv,
    branch3x3: [BasicConv; 3],
    branch3x3dbl: [BasicConv; 4],
    branch_pool: BasicConv,
    pool: Pool,
}

impl InceptionE {
    fn load(w: &mut Weights, name: &str, input: usize, pool: Pool) -> Result<Self, ModelError> {
        let conv = |w: &mut Weights, part, shape: [usize; 4]| {
            let padding = [(shape[2] - 1) / 2, (shape[3] - 1) / 2];
            BasicConv::load(w, &at(name, part), shape, 1, padding)
        };
        Ok(Self {
            branch1x1: conv(w, "branch1x1", [320, input, 1, 1])?,
            branch3x3: [
                conv(w, "branch3x3_1", [384, input, 1, 1])?,
                conv(w, "branch3x3_2a", [384, 384, 1, 3])?,
                conv(w, "branch3x3_2b", [384, 384, 3, 1])?,
            ],
            branch3x3dbl: [
                conv(w, "branch3x3dbl_1", [448, input, 1, 1])?,
                conv(w, "branch3x3dbl_2", [384, 448, 3, 3])?,
                conv(w, "branch3x3dbl_3a", [384, 384, 1, 3])?,
                conv(w, "branch3x3dbl_3b", [384, 384, 3, 1])?,
            ],
            branch_pool: conv(w, "branch_pool", [192, input, 1, 1])?,
            pool,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let split = |convs: &[BasicConv], x: Tensor<4>| {
            let [first @ .., a, b] = convs else {
                unreachable!("a split branch ends in two convolutions")
            };
            let x = chain(first, x);
            Tensor::cat(vec![a.forward(x.clone()), b.forward(x)], 1)
        };
        Tensor::cat(
            vec![
                self.branch1x1.forward(x.clone()),
                split(&self.branch3x3, x.clone()),
                split(&self.branch3x3dbl, x.clone()),
                self.branch_pool.forward(self.pool.forward(x)),
            ],
            1,
        )
    }
}

/// `convs` one after the other.
fn chain(convs: &[BasicConv], x: Tensor<4>) -> Tensor<4> {
    convs.iter().fold(x, |x, conv| conv.forward(x))
}

/// `(N, C, H, W) -> (N, C, side, side)`, bilinear with half-pixel centres and no
/// antialiasing (`F.interpolate(mode='bilinear', align_corners=False)`), as two products
/// with [`interpolation`] matrices.
fn resize(x: Tensor<4>, side: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let rows = Tensor::<2>::from_data(TensorData::new(interpolation(h, side), [side, h]), &device);
    let columns =
        Tensor::<2>::from_data(TensorData::new(interpolation(w, side), [side, w]), &device);
    let x = x.reshape([n * c, h, w]);
    let x = rows.unsqueeze::<3>().expand([n * c, side, h]).matmul(x);
    let x = x.matmul(
        columns
            .transpose()
            .unsqueeze::<3>()
            .expand([n * c, w, side]),
    );
    x.reshape([n, c, side, side])
}

/// The `out x len` matrix of linear interpolation from `len` samples to `out`, half-pixel
/// centres: output `i` reads source position `s = max((i + 0.5) len / out - 0.5, 0)`,
/// weight `1 - (s - floor s)` at `floor s` and `s - floor s` at the next sample (the last
/// sample where there is none), as PyTorch's `upsample_bilinear2d` computes them.
fn interpolation(len: usize, out: usize) -> Vec<f32> {
    let scale = len as f32 / out as f32;
    let mut matrix = vec![0f32; out * len];
    for i in 0..out {
        let source = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
        let low = (source as usize).min(len - 1);
        let high = (low + 1).min(len - 1);
        let lambda = source - low as f32;
        matrix[i * len + low] += 1.0 - lambda;
        matrix[i * len + high] += lambda;
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_matches_pytorch_by_hand() {
        // 2 -> 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (the last sample only).
        let m = interpolation(2, 4);
        assert_eq!(m, [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]);
        // Each row sums to 1 at any ratio; 1 -> n repeats the sample.
        for (len, out) in [(32, 299), (28, 299), (299, 299), (64, 299), (1, 5)] {
            let m = interpolation(len, out);
            for row in m.chunks(len) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
        assert_eq!(interpolation(3, 3), [1., 0., 0., 0., 1., 0., 0., 0., 1.]);
    }
}

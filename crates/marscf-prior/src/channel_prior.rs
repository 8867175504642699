//! The prior of one level: a ConvLSTM over the channels of the level's latent, one
//! channel (a full `h x w` map) per time step.

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use marscf_core::{gaussian_log_density, sum_per_sample};
use marscf_kernels::conv2d_module;

use crate::conv_lstm::{ConvLstm, ConvLstmConfig};

/// Configuration of [`ChannelPrior`].
#[derive(Config, Debug)]
pub struct ChannelPriorConfig {
    /// Channels `N` of the modelled latent (= time steps).
    pub channels: usize,
    /// Whether the level is conditioned on the kept half `z1` (every level but the top).
    pub conditioned: bool,
    /// Kernel size `k` of the embedding and LSTM convolutions.
    pub kernel: usize,
    /// Dilation `d` of the LSTM convolutions.
    pub dilation: usize,
    /// Width of the embedding and of the LSTM states.
    #[config(default = 32)]
    pub hidden: usize,
    /// Stacked LSTM layers.
    #[config(default = 3)]
    pub lstm_layers: usize,
    /// Channels of the conditioning embedding `e`.
    #[config(default = 4)]
    pub condition_channels: usize,
}

impl ChannelPriorConfig {
    /// Step input channels: the previous latent channel, plus `e` when conditioned.
    fn step_channels(&self) -> usize {
        1 + if self.conditioned {
            self.condition_channels
        } else {
            0
        }
    }

    /// A new prior; convolutions take Burn's default (PyTorch's) initialisation.
    pub fn init(&self, device: &Device) -> ChannelPrior {
        let conv = |c_in, c_out, k: usize| {
            let pad = k / 2;
            Conv2dConfig::new([c_in, c_out], [k, k])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device)
        };
        ChannelPrior {
            condition: self.conditioned.then(|| ConditionNet {
                conv1: conv(self.channels, self.hidden, 5),
                conv2: conv(self.hidden, self.condition_channels, 5),
            }),
            embed: conv(self.step_channels(), self.hidden, self.kernel),
            lstm: ConvLstmConfig::new(self.hidden, self.hidden)
                .with_layers(self.lstm_layers)
                .with_kernel(self.kernel)
                .with_dilation(self.dilation)
                .init(device),
            out: conv(self.hidden, 2, 3),
        }
    }
}

/// `z1 -> e`: conv 5x5 -> ReLU -> conv 5x5, `(B, N, h, w) -> (B, 4, h, w)`.
#[derive(Module, Debug)]
pub struct ConditionNet {
    /// `N -> hidden`.
    pub conv1: Conv2d,
    /// `hidden -> 4`.
    pub conv2: Conv2d,
}

impl ConditionNet {
    /// `(B, N, h, w) -> (B, 4, h, w)`.
    pub fn forward(&self, z1: Tensor<4>) -> Tensor<4> {
        conv2d_module(&self.conv2, relu(conv2d_module(&self.conv1, z1)))
    }
}

/// `p(z | z1) = Π_t N(z_t; mean_t, exp(logs_t)²)` over the channels `t` of `z`, where
/// `(mean_t, logs_t) = out(LSTM_t(embed(cat(z_{t-1}, e))))`, `z_{-1} = 0`, `e = cond(z1)`.
#[derive(Module, Debug)]
pub struct ChannelPrior {
    /// The conditioning network (absent at the top level).
    pub condition: Option<ConditionNet>,
    /// Step embedding, `k x k`, `(1 [+ 4]) -> hidden`.
    pub embed: Conv2d,
    /// The recurrence.
    pub lstm: ConvLstm,
    /// Output head, 3x3, `hidden -> 2` = (mean, logs).
    pub out: Conv2d,
}

impl ChannelPrior {
    /// Mean and log-scale of every channel of `z` given its predecessors (teacher
    /// forcing), each `(B, N, h, w)`. Everything but the recurrence runs once over all
    /// `N` steps.
    pub fn predict(&self, z: Tensor<4>, condition: Option<Tensor<4>>) -> (Tensor<4>, Tensor<4>) {
        let [b, n, h, w] = z.dims();
        // Step t sees channel t-1: shift the channels by one, zeros first; (N, B, 1, h, w).
        let first = z.zeros_like().narrow(1, 0, 1);
        let previous = match n {
            1 => first,
            _ => Tensor::cat(vec![first, z.narrow(1, 0, n - 1)], 1),
        };
        let mut inputs = previous.swap_dims(0, 1).reshape([n, b, 1, h, w]);
        if let Some(e) = self.embedding(condition) {
            let e = e.unsqueeze_dim::<5>(0).expand([n as i32, -1, -1, -1, -1]);
            inputs = Tensor::cat(vec![inputs, e], 2);
        }
        let step_channels = inputs.dims()[2];
        let embedded = conv2d_module(&self.embed, inputs.reshape([n * b, step_channels, h, w]));
        let hidden = embedded.dims()[1];
        let states = self
            .lstm
            .forward_sequence(embedded.reshape([n, b, hidden, h, w]));
        let out = conv2d_module(&self.out, states.reshape([n * b, hidden, h, w]))
            .reshape([n, b, 2, h, w]);
        let mean = out
            .clone()
            .narrow(2, 0, 1)
            .reshape([n, b, h, w])
            .swap_dims(0, 1);
        let logs = out.narrow(2, 1, 1).reshape([n, b, h, w]).swap_dims(0, 1);
        (mean, logs)
    }

    /// `ln p(z | condition)` per sample, `(B, N, h, w) -> (B)`.
    pub fn log_prob(&self, z: Tensor<4>, condition: Option<Tensor<4>>) -> Tensor<1> {
        let (mean, logs) = self.predict(z.clone(), condition);
        sum_per_sample(gaussian_log_density(z, mean, logs))
    }

    fn embedding(&self, condition: Option<Tensor<4>>) -> Option<Tensor<4>> {
        match (&self.condition, condition) {
            (Some(net), Some(z1)) => Some(net.forward(z1)),
            (None, _) => None,
            (Some(_), None) => panic!("a conditioned channel prior needs the kept half z1"),
        }
    }

    /// A sample `(B, N, h, w)`, channel by channel: `z_t = mean_t + T exp(logs_t) eps`,
    /// each step fed the previous sample, the LSTM state carried across steps.
    pub fn sample(
        &self,
        shape: [usize; 4],
        condition: Option<Tensor<4>>,
        temperature: f64,
        device: &Device,
    ) -> Tensor<4> {
        let [b, n, h, w] = shape;
        let e = self.embedding(condition);
        let mut previous = Tensor::<4>::zeros([b, 1, h, w], device);
        let mut state = None;
        let mut channels = Vec::with_capacity(n);
        let lstm = self.lstm.steps();
        for _ in 0..n {
            let input = match &e {
                Some(e) => Tensor::cat(vec![previous, e.clone()], 1),
                None => previous,
            };
            let (hidden, next) = lstm.step(conv2d_module(&self.embed, input), state);
            state = Some(next);
            let out = conv2d_module(&self.out, hidden);
            let mean = out.clone().narrow(1, 0, 1);
            let logs = out.narrow(1, 1, 1);
            let eps = Tensor::random([b, 1, h, w], Distribution::Normal(0.0, 1.0), device);
            previous = mean + logs.exp() * eps.mul_scalar(temperature);
            channels.push(previous.clone());
        }
        Tensor::cat(channels, 1)
    }
}

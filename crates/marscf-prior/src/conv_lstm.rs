//! A stacked convolutional LSTM (Shi et al. 2015) with PyTorch's gate layout, so that
//! reference weights load as they are.

use std::cell::OnceCell;

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Tensor};
use marscf_kernels::{ConvSpec, LstmCellState, conv_lstm_layer, conv2d, lstm_cell};

/// Configuration of [`ConvLstm`].
#[derive(Config, Debug)]
pub struct ConvLstmConfig {
    /// Channels of the input at each step.
    pub input_channels: usize,
    /// Channels of the hidden and cell states.
    pub hidden: usize,
    /// Number of stacked layers.
    #[config(default = 1)]
    pub layers: usize,
    /// Square kernel size `k` of the gate convolutions.
    #[config(default = 3)]
    pub kernel: usize,
    /// Dilation `d` of the gate convolutions.
    #[config(default = 1)]
    pub dilation: usize,
}

impl ConvLstmConfig {
    /// Weights and biases drawn from `U(-1/sqrt(hidden), 1/sqrt(hidden))`, as PyTorch's
    /// recurrent layers do.
    pub fn init(&self, device: &Device) -> ConvLstm {
        let (h, k) = (self.hidden, self.kernel);
        let bound = 1.0 / (h as f64).sqrt();
        let uniform = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        let layers = (0..self.layers)
            .map(|layer| {
                let c_in = if layer == 0 { self.input_channels } else { h };
                ConvLstmCell {
                    weight_ih: uniform.init([4 * h, c_in, k, k], device),
                    weight_hh: uniform.init([4 * h, h, k, k], device),
                    bias_ih: uniform.init([4 * h], device),
                    bias_hh: uniform.init([4 * h], device),
                    dilation: self.dilation,
                }
            })
            .collect();
        ConvLstm { layers }
    }
}

/// One layer: gates `[i, f, g, o] = conv(x, W_ih) + b_ih + conv(h, W_hh) + b_hh`,
/// `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`, with "same" zero padding
/// (left `d(k-1)/2`, right `(d(k-1)+1)/2`).
#[derive(Module, Debug)]
pub struct ConvLstmCell {
    /// Input-to-gates kernel, `[4 hidden, C_in, k, k]`.
    pub weight_ih: Param<Tensor<4>>,
    /// Hidden-to-gates kernel, `[4 hidden, hidden, k, k]`.
    pub weight_hh: Param<Tensor<4>>,
    /// Input bias, `[4 hidden]`.
    pub bias_ih: Param<Tensor<1>>,
    /// Hidden bias, `[4 hidden]`.
    pub bias_hh: Param<Tensor<1>>,
    /// Dilation of both convolutions.
    #[module(skip)]
    pub dilation: usize,
}

/// The state of every layer: hidden `h` and cell `c`, each `(B, hidden, H, W)`.
#[derive(Debug, Clone)]
pub struct ConvLstmState {
    /// Hidden state per layer.
    pub h: Vec<Tensor<4>>,
    /// Cell state per layer.
    pub c: Vec<Tensor<4>>,
}

impl ConvLstmCell {
    fn spec(&self) -> ConvSpec {
        let [_, _, kh, kw] = self.weight_hh.dims();
        ConvSpec::same([kh, kw], [self.dilation, self.dilation])
    }

    /// `conv(x, W_ih) + b_ih + b_hh`: the part of the gates that does not depend on the
    /// state, `(N, C_in, H, W) -> (N, 4 hidden, H, W)` (any number `N` of steps × batch).
    pub fn input_gates(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(x, self.weight_ih.val(), Some(self.gate_bias()), self.spec())
    }

    /// `b_ih + b_hh`, `(4 hidden)`.
    fn gate_bias(&self) -> Tensor<1> {
        self.bias_ih.val() + self.bias_hh.val()
    }

    /// One step from the input itself, `x` `(B, C_in, H, W)`: with a state, both
    /// convolutions run as one over `cat(x, h)` with `cat(W_ih, W_hh)` (one convolution
    /// instead of two, and no sum of the two gate tensors).
    pub fn step_from_input(
        &self,
        x: Tensor<4>,
        state: Option<(Tensor<4>, Tensor<4>)>,
    ) -> (Tensor<4>, Tensor<4>) {
        self.step_with(&OnceCell::new(), x, state)
    }

    /// `cat(W_ih, W_hh)`, `(4 hidden, C_in + hidden, k, k)`: the kernel of a step with a
    /// state.
    fn step_weight(&self) -> Tensor<4> {
        Tensor::cat(vec![self.weight_ih.val(), self.weight_hh.val()], 1)
    }

    /// [`Self::step_from_input`], its [`Self::step_weight`] made in `weight` if it is not
    /// there yet and a state needs it.
    fn step_with(
        &self,
        weight: &OnceCell<Tensor<4>>,
        x: Tensor<4>,
        state: Option<(Tensor<4>, Tensor<4>)>,
    ) -> (Tensor<4>, Tensor<4>) {
        match state {
            Some((h, c)) => {
                let weight = weight.get_or_init(|| self.step_weight()).clone();
                let gates = conv2d(
                    Tensor::cat(vec![x, h], 1),
                    weight,
                    Some(self.gate_bias()),
                    self.spec(),
                );
                let LstmCellState { h, c } = lstm_cell(gates, None, Some(c));
                (h, c)
            }
            None => {
                let LstmCellState { h, c } = lstm_cell(self.input_gates(x), None, None);
                (h, c)
            }
        }
    }
}

/// A stack of [`ConvLstmCell`]s; each layer's hidden state is the next layer's input.
#[derive(Module, Debug)]
pub struct ConvLstm {
    /// The layers, bottom first.
    pub layers: Vec<ConvLstmCell>,
}

impl ConvLstm {
    /// Runs a whole sequence `(T, B, C_in, H, W) -> (T, B, hidden, H, W)` (the top layer's
    /// hidden states) from zero states. Layer by layer: each layer's input convolution
    /// runs once over all `T` steps, then [`conv_lstm_layer`] the sequential part.
    pub fn forward_sequence(&self, x: Tensor<5>) -> Tensor<5> {
        let [t, b, c, h, w] = x.dims();
        let mut input = x.reshape([t * b, c, h, w]);
        for layer in &self.layers {
            let gates = layer.input_gates(input);
            input = conv_lstm_layer(gates, layer.weight_hh.val(), t, layer.spec());
        }
        let [_, hidden, _, _] = input.dims();
        input.reshape([t, b, hidden, h, w])
    }

    /// One step `(B, C_in, H, W) -> (B, hidden, H, W)` for every layer, carrying `state`
    /// (`None` = zeros). A loop of steps runs faster through [`Self::steps`].
    pub fn step(&self, x: Tensor<4>, state: Option<ConvLstmState>) -> (Tensor<4>, ConvLstmState) {
        self.steps().step(x, state)
    }

    /// The stack made ready to run step by step: each layer's `cat(W_ih, W_hh)` made once,
    /// at the first step with a state, for all the steps after it. The kernel tensors then
    /// stay the same from step to step, so that our Flex convolution keeps their Winograd
    /// transforms (docs/performance.md, sixth session).
    pub fn steps(&self) -> ConvLstmSteps<'_> {
        ConvLstmSteps {
            layers: &self.layers,
            weights: self.layers.iter().map(|_| OnceCell::new()).collect(),
        }
    }
}

/// A [`ConvLstm`] run step by step, keeping each layer's step kernel
/// ([`ConvLstm::steps`]).
#[derive(Debug)]
pub struct ConvLstmSteps<'a> {
    layers: &'a [ConvLstmCell],
    weights: Vec<OnceCell<Tensor<4>>>,
}

impl ConvLstmSteps<'_> {
    /// One step `(B, C_in, H, W) -> (B, hidden, H, W)` for every layer, carrying `state`
    /// (`None` = zeros), as [`ConvLstm::step`], with the kept step kernels.
    pub fn step(&self, x: Tensor<4>, state: Option<ConvLstmState>) -> (Tensor<4>, ConvLstmState) {
        let mut input = x;
        let mut next = ConvLstmState {
            h: Vec::with_capacity(self.layers.len()),
            c: Vec::with_capacity(self.layers.len()),
        };
        for (index, (layer, weight)) in self.layers.iter().zip(&self.weights).enumerate() {
            let previous = state
                .as_ref()
                .map(|s| (s.h[index].clone(), s.c[index].clone()));
            let (h, c) = layer.step_with(weight, input, previous);
            next.h.push(h.clone());
            next.c.push(c);
            input = h;
        }
        (input, next)
    }
}

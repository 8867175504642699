//! Between Burn's tensors and the slice kernels, shared by every op: shapes, contiguous
//! slices, results as tensors, and an op's recording and gradients under autodiff.

use std::borrow::Cow;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::tensor::{DType, Shape, TensorData};

/// A float tensor on `Autodiff<Flex, C>`.
pub type AutodiffTensor<C> = FloatTensor<Autodiff<Flex, C>>;

/// The shape of a rank-4 tensor.
pub fn dims4(t: &FlexTensor) -> [usize; 4] {
    let shape = t.shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The shape of a rank-5 tensor.
pub fn dims5(t: &FlexTensor) -> [usize; 5] {
    let shape = t.shape();
    [shape[0], shape[1], shape[2], shape[3], shape[4]]
}

/// `t` with a contiguous layout (copied only if it is a strided view).
pub fn contiguous(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "marscf kernels take float32 tensors");
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of `t` in row-major order (borrowed where `t` is contiguous).
pub fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
    }
}

/// A contiguous float32 tensor of `shape` holding `data`.
pub fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// An op of `N` inputs under autodiff: `forward` runs on the contiguous inputs and returns
/// the output with, when the op is tracked (its second argument), the state `backward`
/// keeps; untracked, it may return `None`.
pub fn record<C: CheckpointStrategy, B: Backward<Flex, N>, const N: usize>(
    backward: B,
    inputs: [AutodiffTensor<C>; N],
    forward: impl FnOnce([FlexTensor; N], bool) -> (FlexTensor, Option<B::State>),
) -> AutodiffTensor<C> {
    let mut tensors = Vec::with_capacity(N);
    let nodes = inputs.map(|t| {
        let (t, node) = t.into_parts();
        tensors.push(contiguous(t));
        node
    });
    let tensors: [FlexTensor; N] = tensors.try_into().expect("one tensor per input");
    let prep = backward.prepare::<C>(nodes).compute_bound().stateful();
    let tracked = matches!(prep, OpsKind::Tracked(_));
    let (y, state) = forward(tensors, tracked);
    match prep {
        OpsKind::Tracked(prep) => prep.finish(state.expect("a tracked op keeps its state"), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The start of a backward: the state, the gradient of the output (contiguous) and the
/// ids of the parents that want a gradient.
pub fn unpack<S, const N: usize>(
    ops: Ops<S, N>,
    grads: &mut Gradients,
) -> (S, FlexTensor, [Option<NodeId>; N]) {
    let dy = contiguous(grads.consume::<Flex>(&ops.node));
    (ops.state, dy, ops.parents.map(|p| p.map(|node| node.id)))
}

/// Registers each parent's gradient (those of parents that want none are dropped).
pub fn register<const N: usize>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; N],
    gradients: [FlexTensor; N],
) {
    for (parent, gradient) in parents.into_iter().zip(gradients) {
        if let Some(id) = parent {
            grads.register::<Flex>(id, gradient);
        }
    }
}

/// What every op's glue names: Burn's autodiff and Flex types, the extension trait and the
/// helpers above.
pub mod prelude {
    pub use super::super::FlexKernels;
    pub use super::{AutodiffTensor, dims4, dims5, record, register, tensor, unpack, values};
    pub use burn::backend::autodiff::checkpoint::base::Checkpointer;
    pub use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    pub use burn::backend::autodiff::grads::Gradients;
    pub use burn::backend::autodiff::ops::{Backward, Ops};
    pub use burn::backend::flex::FlexTensor;
    pub use burn::backend::{Dispatch, Flex, TensorMetadata};
    pub use burn::tensor::{Shape, Tensor};
}

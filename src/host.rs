//! Tensors read back to the host and host values made tensors.

use burn::tensor::{Device, Tensor, TensorData};

/// The values of a float tensor on the host, as f64, row-major.
pub(crate) fn host_f64<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("a float tensor converts to f64")
}

/// The values of a float tensor on the host, as f32, row-major.
pub(crate) fn host_f32<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converts to f32")
}

/// `values` (host) as a tensor `(len)` on `device`.
pub(crate) fn device_f32(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

//! The one device selection used by every binary, example, bench and test.
//!
//! Cargo features decide which backends are compiled in (`flex`, the default, `ndarray`,
//! `wgpu`, `vulkan`, `cuda`); [`select_device`] picks the most capable of them, or the one
//! named by the `BURN_DEVICE` environment variable.

use burn::tensor::Device;

/// The environment variable that overrides the choice (Burn's own name for it).
pub const DEVICE_ENV: &str = "BURN_DEVICE";

/// A device that cannot be selected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    /// `BURN_DEVICE` names a backend that this build does not include.
    #[error(
        "{DEVICE_ENV}={requested} names a backend not compiled into this build; compiled: {compiled:?} (enable it with --features {requested})"
    )]
    NotCompiled {
        /// The requested backend.
        requested: String,
        /// The backends this build has.
        compiled: Vec<&'static str>,
    },
    /// More devices were asked for than the backend has.
    #[error("{requested} devices asked for, but {backend} has {available}")]
    TooFew {
        /// The backend.
        backend: String,
        /// Devices asked for.
        requested: usize,
        /// Devices it has.
        available: usize,
    },
    /// The build has no backend at all.
    #[error(
        "no backend compiled in: build with one of the features flex, ndarray, wgpu, vulkan, cuda"
    )]
    NoBackend,
}

/// The backends compiled into this build, most capable first.
pub fn compiled_backends() -> Vec<&'static str> {
    [
        ("cuda", cfg!(feature = "cuda")),
        ("vulkan", cfg!(feature = "vulkan")),
        ("wgpu", cfg!(feature = "wgpu")),
        ("flex", cfg!(feature = "flex")),
        ("ndarray", cfg!(feature = "ndarray")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// The device named `name` (one of [`compiled_backends`]).
#[allow(unreachable_code, unused_variables)]
pub fn device_named(name: &str) -> Result<Device, DeviceError> {
    match name.to_ascii_lowercase().as_str() {
        #[cfg(feature = "cuda")]
        "cuda" => return Ok(Device::cuda(burn::tensor::DeviceIndex::Default)),
        #[cfg(feature = "vulkan")]
        "vulkan" => return Ok(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "wgpu")]
        "wgpu" => return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "flex")]
        "flex" => return Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => return Ok(Device::ndarray()),
        _ => {}
    }
    Err(DeviceError::NotCompiled {
        requested: name.to_string(),
        compiled: compiled_backends(),
    })
}

/// The device to run on: the backend named by `BURN_DEVICE` if set, else the first of
/// CUDA, Vulkan, wgpu, Flex, NdArray that is compiled in. Without autodiff; call
/// `.autodiff()` on it to train.
pub fn select_device() -> Result<Device, DeviceError> {
    match std::env::var(DEVICE_ENV) {
        Ok(name) if !name.is_empty() => device_named(&name),
        _ => device_named(compiled_backends().first().ok_or(DeviceError::NoBackend)?),
    }
}

/// The name of the backend [`select_device`] picks.
pub fn selected_backend_name() -> String {
    std::env::var(DEVICE_ENV)
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| compiled_backends().first().map(|n| n.to_string()))
        .unwrap_or_default()
}

/// `count` devices of the backend [`select_device`] picks, for data-parallel training: the
/// first `count` GPUs that CUDA, Vulkan or wgpu finds (in their order; `CUDA_VISIBLE_DEVICES`
/// and the like choose which), or the one CPU device `count` times over for Flex and
/// NdArray (a shard each on the same device: the same training, no faster).
pub fn select_devices(count: usize) -> Result<Vec<Device>, DeviceError> {
    select_process_devices(0, count)
}

/// [`select_devices`] for the process of local rank `local_rank` among those of its
/// machine: GPUs `local_rank * count .. (local_rank + 1) * count`, so that the machine's
/// processes take distinct GPUs; the CPU device on a CPU backend.
pub fn select_process_devices(local_rank: usize, count: usize) -> Result<Vec<Device>, DeviceError> {
    let first = select_device()?;
    let count = count.max(1);
    if local_rank == 0 && count == 1 {
        return Ok(vec![first]);
    }
    let name = selected_backend_name();
    let found = gpus(&name);
    if found.is_empty() {
        return Ok(vec![first; count]);
    }
    let needed = (local_rank + 1) * count;
    if found.len() < needed {
        return Err(DeviceError::TooFew {
            backend: name,
            requested: needed,
            available: found.len(),
        });
    }
    Ok(found
        .into_iter()
        .skip(local_rank * count)
        .take(count)
        .collect())
}

/// The GPUs of the backend named `name`; none for a CPU backend.
#[allow(unused_variables)]
fn gpus(name: &str) -> Vec<Device> {
    #[allow(unused_imports)]
    use burn::tensor::DeviceType;
    match name.to_ascii_lowercase().as_str() {
        #[cfg(feature = "cuda")]
        "cuda" => Device::enumerate(DeviceType::Cuda).to_vec(),
        #[cfg(feature = "vulkan")]
        "vulkan" => Device::enumerate(DeviceType::Vulkan).to_vec(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::enumerate(DeviceType::Wgpu).to_vec(),
        _ => Vec::new(),
    }
}

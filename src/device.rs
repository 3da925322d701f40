//! Compute device selection: the CPU (`flex`) by default, GPUs behind cargo features.
//!
//! `select_device(DeviceKind::Cpu)` always works. Always construct the device explicitly:
//! enabling a GPU feature changes what `Device::default()` returns.

use burn::tensor::{Device, Tensor};

/// Which backend runs the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceKind {
    /// burn's pure-Rust `flex` CPU backend (the default).
    Cpu,
    /// burn's wgpu backend (Vulkan/Metal/DX12); needs `--features wgpu`.
    Wgpu,
    /// burn's CUDA backend; needs `--features cuda`.
    Cuda,
}

impl std::str::FromStr for DeviceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(format!(
                "unknown device `{other}` (expected cpu, wgpu or cuda)"
            )),
        }
    }
}

/// Errors from selecting a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The binary was built without the backend's cargo feature.
    #[error(
        "this unitmatch was built without GPU backend `{0}`: rebuild with `cargo build --release --features {0}`"
    )]
    NotCompiled(&'static str),
    /// The backend is compiled in but no usable adapter answered.
    #[error(
        "no usable {backend} adapter on this machine ({detail}); install the GPU driver (Vulkan loader for wgpu, CUDA driver for cuda) or use --device cpu"
    )]
    NoAdapter {
        /// Backend name.
        backend: &'static str,
        /// What the backend said.
        detail: String,
    },
}

/// Builds the device and checks that it can run one tensor operation.
///
/// burn's wgpu device panics on its first operation when no adapter exists (an unhelpful
/// `RecvError`); that panic is caught here and turned into [`DeviceError::NoAdapter`].
pub fn select_device(kind: DeviceKind) -> Result<Device, DeviceError> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Wgpu => wgpu_device(),
        DeviceKind::Cuda => cuda_device(),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, DeviceError> {
    probe(
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        "wgpu",
    )
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, DeviceError> {
    probe(Device::cuda(0), "cuda")
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled("cuda"))
}

/// Runs one tiny operation on `device`, turning a backend panic into a clear error.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
fn probe(device: Device, backend: &'static str) -> Result<Device, DeviceError> {
    let d = device.clone();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(move || {
        let t = Tensor::<1>::from_floats([1.0, 2.0], &d);
        t.sum().into_scalar::<f32>()
    });
    std::panic::set_hook(prev);
    match result {
        Ok(v) if (v - 3.0).abs() < 1e-6 => Ok(device),
        Ok(v) => Err(DeviceError::NoAdapter {
            backend,
            detail: format!("self-test returned {v} instead of 3"),
        }),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the backend panicked".into());
            Err(DeviceError::NoAdapter { backend, detail })
        }
    }
}

/// Sets the number of CPU threads (rayon's global pool, which burn-flex and our statistics
/// use). Call once, before any tensor work; `None` keeps rayon's default (all cores, or
/// `RAYON_NUM_THREADS`).
pub fn set_threads(threads: Option<usize>) -> Result<(), String> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| format!("could not set {n} threads: {e}"))?;
    }
    Ok(())
}

//! Unrolling: the same z batches through networks in eval mode, as plain per-layer arrays.
//!
//! `let z = ZSource::seeded(10_000, 100)` (or `ZSource::from_npy(path)`); then for each batch
//! `z.batch(i)` -> `unroll_generator(&g, &z_batch, &layers, &device)` gives one `[n, C, h, w]`
//! array per selected layer, ready for `stats::MomentAccumulator::add_batch`.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array2, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::model::{GEN_LAYERS, Generator, LATENT_DIM};

/// The seed of batch 0 when z is drawn (the reference's convention; batch i uses `5555 + i`).
pub const Z_BASE_SEED: u64 = 5555;

/// Errors from reading z or selecting layers.
#[derive(Debug, thiserror::Error)]
pub enum UnrollError {
    /// The `.npy` file could not be read as float32 `[N, 100]`.
    #[error("{path}: {message}")]
    ZFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (dtype, shape, or I/O).
        message: String,
    },
    /// A requested layer does not exist.
    #[error(
        "unknown layer `{0}`; the generator's layers are block1, block2, out (or gen.block1, ...)"
    )]
    UnknownLayer(String),
}

/// Where latent codes come from.
#[derive(Debug, Clone)]
pub enum ZSource {
    /// Standard normal draws: batch `i` uses `ChaCha8Rng::seed_from_u64(base_seed + i)` and
    /// `rand_distr::StandardNormal`, row by row.
    Seeded {
        /// Seed of batch 0.
        base_seed: u64,
        /// Total number of codes.
        samples: usize,
        /// Codes per batch.
        batch: usize,
    },
    /// Codes read from a float32 `[N, 100]` `.npy` file, cut into batches.
    File {
        /// The codes.
        z: Array2<f32>,
        /// Codes per batch.
        batch: usize,
        /// The file they came from.
        path: PathBuf,
    },
}

impl ZSource {
    /// Seeded codes with the reference's base seed 5555.
    pub fn seeded(samples: usize, batch: usize) -> Self {
        Self::Seeded {
            base_seed: Z_BASE_SEED,
            samples,
            batch: batch.max(1),
        }
    }

    /// Reads `[N, 100]` float32 codes from a `.npy` file; anything else is a clear error.
    pub fn from_npy(path: &Path, batch: usize) -> Result<Self, UnrollError> {
        let err = |message: String| UnrollError::ZFile {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let z: Array2<f32> = ndarray_npy::ReadNpyExt::read_npy(file).map_err(|e| {
            err(format!(
                "expected a float32 array of shape [N, {LATENT_DIM}] (C order): {e}"
            ))
        })?;
        if z.ncols() != LATENT_DIM || z.nrows() == 0 {
            return Err(err(format!(
                "expected shape [N, {LATENT_DIM}] with N > 0, found [{}, {}]",
                z.nrows(),
                z.ncols()
            )));
        }
        if z.iter().any(|v| !v.is_finite()) {
            return Err(err("contains NaN or infinite values".into()));
        }
        Ok(Self::File {
            z,
            batch: batch.max(1),
            path: path.to_path_buf(),
        })
    }

    /// Total number of codes.
    pub fn samples(&self) -> usize {
        match self {
            Self::Seeded { samples, .. } => *samples,
            Self::File { z, .. } => z.nrows(),
        }
    }

    /// Codes per batch.
    pub fn batch_size(&self) -> usize {
        match self {
            Self::Seeded { batch, .. } | Self::File { batch, .. } => *batch,
        }
    }

    /// Number of batches (the last may be smaller).
    pub fn batches(&self) -> usize {
        self.samples().div_ceil(self.batch_size())
    }

    /// Batch `i` as `[n, 100]` row-major f32.
    pub fn batch(&self, i: usize) -> Vec<f32> {
        let b = self.batch_size();
        let start = i * b;
        let n = b.min(self.samples().saturating_sub(start));
        match self {
            Self::Seeded { base_seed, .. } => {
                let mut rng = ChaCha8Rng::seed_from_u64(base_seed + i as u64);
                (0..n * LATENT_DIM)
                    .map(|_| StandardNormal.sample(&mut rng))
                    .collect()
            }
            Self::File { z, .. } => z
                .slice(ndarray::s![start..start + n, ..])
                .iter()
                .copied()
                .collect(),
        }
    }

    /// A description for run.json.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Self::Seeded {
                base_seed,
                samples,
                batch,
            } => serde_json::json!({
                "kind": "seeded",
                "generator": "ChaCha8Rng::seed_from_u64(base_seed + batch_index), rand_distr::StandardNormal, row-major",
                "base_seed": base_seed, "samples": samples, "batch": batch,
            }),
            Self::File { z, batch, path } => serde_json::json!({
                "kind": "npy", "path": path, "samples": z.nrows(), "batch": batch,
            }),
        }
    }
}

/// Canonical layer names from user input: `block1` -> `gen.block1`; full names pass through.
pub fn parse_layers(spec: &str) -> Result<Vec<String>, UnrollError> {
    let mut out = Vec::new();
    for raw in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = if raw.contains('.') {
            raw.to_string()
        } else {
            format!("gen.{raw}")
        };
        if !GEN_LAYERS.contains(&name.as_str()) {
            return Err(UnrollError::UnknownLayer(raw.to_string()));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    // Keep unit order: layer by layer in network order.
    out.sort_by_key(|n| GEN_LAYERS.iter().position(|g| g == n));
    Ok(out)
}

/// Runs `g` in eval mode on `z` (`[n, 100]` flattened) and returns the selected layers'
/// activations, `[n, C, h, w]` each, in the order of `layers`.
pub fn unroll_generator(
    g: &Generator,
    z: &[f32],
    layers: &[String],
    device: &Device,
) -> Vec<Array4<f32>> {
    let n = z.len() / LATENT_DIM;
    let z = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [n, LATENT_DIM]), device);
    let out = g.forward_with_activations(z, false);
    layers
        .iter()
        .filter_map(|name| out.activations.iter().find(|(l, _)| l == name))
        .map(|(_, t)| tensor_to_array4(t.clone()))
        .collect()
}

/// Copies a `[n, c, h, w]` tensor into an ndarray.
pub fn tensor_to_array4(t: Tensor<4>) -> Array4<f32> {
    let dims = t.dims();
    let v = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data");
    Array4::from_shape_vec(dims, v).expect("tensor data matches its shape")
}

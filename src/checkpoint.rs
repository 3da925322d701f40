//! Generator checkpoints: our safetensors files, the seed's PyTorch `state_dict` files, and an
//! export under PyTorch's key names.
//!
//! `load_generator(path, &device)` accepts all three and infers the width from the shapes;
//! `save_generator` writes our format atomically; `export_torch_names` writes a file that
//! PyTorch users load with `load_state_dict(safetensors.torch.load_file(path))`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Param, RunningState};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

use crate::fsutil::{atomic_write, temp_path_for};
use crate::model::{Generator, LATENT_DIM, ModelConfig};

/// Value of the `format` metadata key in our generator checkpoints.
pub const FORMAT: &str = "unitmatch.generator.v1";

/// Errors from reading or writing a checkpoint; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is neither a safetensors file nor a PyTorch zip archive, or is corrupt.
    #[error("{path}: not a valid checkpoint: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor the generator needs is absent.
    #[error("{path}: missing tensor `{key}` (is this a generator checkpoint of the seed's DCGAN?)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: String,
    },
    /// A tensor has the wrong shape for the width inferred from the file.
    #[error(
        "{path}: tensor `{key}` has shape {found:?}, expected {expected:?} (width {width} inferred from l1's output)"
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// Shape the generator needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
        /// Width inferred from the file.
        width: f64,
    },
    /// Writing through burn's store failed.
    #[error("{path}: could not write checkpoint: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

/// One tensor in PyTorch layout: shape and row-major f32 values.
type Entry = (Vec<usize>, Vec<f32>);

/// PyTorch module prefix of each generator field (`nn.Sequential` indices of the seed).
const TORCH_PREFIX: [(&str, &str); 7] = [
    ("l1", "l1.0"),
    ("bn0", "conv_blocks.0"),
    ("conv1", "conv_blocks.2"),
    ("bn1", "conv_blocks.3"),
    ("conv2", "conv_blocks.6"),
    ("bn2", "conv_blocks.7"),
    ("conv_out", "conv_blocks.9"),
];

/// Saves `g` in our format: burn's safetensors layout (`l1.weight` is `[in, out]`,
/// BatchNorm as `gamma`/`beta`), with `format`, `width` and `bn_eps` in the metadata.
/// Written to a temporary file and renamed, so a crash never leaves a partial checkpoint.
pub fn save_generator(
    g: &Generator,
    cfg: &ModelConfig,
    path: &Path,
) -> Result<(), CheckpointError> {
    let tmp = temp_path_for(path);
    let mut store = SafetensorsStore::from_file(&tmp)
        .metadata("format", FORMAT)
        .metadata("width", cfg.width.to_string())
        .metadata("bn_eps", cfg.bn_eps.to_string())
        .metadata("channels", {
            let [c0, c1, c2] = g.channels();
            format!("{c0},{c1},{c2}")
        })
        .overwrite(true);
    g.save_into(&mut store)
        .map_err(|e| CheckpointError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    std::fs::rename(&tmp, path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `g` as safetensors under the seed's PyTorch key names (`l1.0.weight` as `[out, in]`,
/// BatchNorm `weight`/`bias`/`running_mean`/`running_var`/`num_batches_tracked`), so that
/// `Generator().load_state_dict(safetensors.torch.load_file(path))` works in PyTorch.
pub fn export_torch_names(
    g: &Generator,
    cfg: &ModelConfig,
    path: &Path,
) -> Result<(), CheckpointError> {
    let tensors = torch_state_dict(g);
    let mut views = Vec::new();
    for (name, (shape, data)) in &tensors {
        views.push((
            name.clone(),
            shape.clone(),
            bytes_of_f32(data),
            safetensors::Dtype::F32,
        ));
    }
    // PyTorch's strict load_state_dict wants num_batches_tracked (an int64 scalar) for each BN.
    for (field, prefix) in TORCH_PREFIX {
        if field.starts_with("bn") {
            let name = format!("{prefix}.num_batches_tracked");
            views.push((
                name,
                vec![],
                0i64.to_le_bytes().to_vec(),
                safetensors::Dtype::I64,
            ));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = views
        .iter()
        .map(|(n, s, b, d)| {
            let v =
                safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("consistent view");
            (n.clone(), v)
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pytorch_state_dict".to_string());
    meta.insert("width".to_string(), cfg.width.to_string());
    meta.insert("bn_eps".to_string(), cfg.bn_eps.to_string());
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| CheckpointError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    atomic_write(path, &bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a generator from our safetensors checkpoint, a torch-named safetensors export, or a
/// PyTorch `.pt`/`.pth` zip archive (read by burn's pure-Rust pickle reader: no Python code
/// runs). The width is inferred from `l1`'s output size; every other shape is checked against
/// it. `bn_eps` comes from the file's metadata, else `default_bn_eps`.
pub fn load_generator(
    path: &Path,
    default_bn_eps: f64,
    device: &Device,
) -> Result<(Generator, ModelConfig), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |message: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let (tensors, meta) = if bytes.starts_with(b"PK\x03\x04") {
        (read_torch_zip(path).map_err(corrupt)?, HashMap::new())
    } else {
        read_safetensors(&bytes).map_err(corrupt)?
    };
    let bn_eps = meta
        .get("bn_eps")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(default_bn_eps);
    let tensors = if tensors.contains_key("l1.weight") {
        burn_to_torch_names(tensors)
    } else {
        tensors
    };
    // Our checkpoints state their per-layer channels (a pruned generator is narrower than its
    // width says); anything else must be the reference architecture at some width.
    let channels = match meta.get("channels") {
        Some(c) => {
            let v: Vec<usize> = c.split(',').filter_map(|x| x.parse().ok()).collect();
            match v[..] {
                [c0, c1, c2] if c0 > 0 && c1 > 0 && c2 > 0 => Some([c0, c1, c2]),
                _ => {
                    return Err(corrupt(format!(
                        "metadata channels = {c:?} is not c0,c1,c2"
                    )));
                }
            }
        }
        None => None,
    };
    from_torch_state_dict(&tensors, bn_eps, channels, path, device)
}

fn read_torch_zip(path: &Path) -> Result<BTreeMap<String, Entry>, String> {
    use burn::store::pytorch_reader::{DType, PytorchReader};
    let reader = PytorchReader::new(path).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (name, t) in reader.tensors() {
        let raw = t.read().map_err(|e| format!("tensor `{name}`: {e}"))?;
        let kind = match t.dtype() {
            DType::F32 => RawKind::F32,
            DType::F64 => RawKind::F64,
            DType::I64 => RawKind::I64,
            other => return Err(format!("tensor `{name}` has unsupported dtype {other:?}")),
        };
        let data = decode_le(&raw, kind);
        out.insert(name.clone(), (t.shape().to_vec(), data));
    }
    Ok(out)
}

type Meta = HashMap<String, String>;

/// Element types a checkpoint tensor may be stored in.
#[derive(Clone, Copy)]
enum RawKind {
    F32,
    F64,
    I64,
}

/// Little-endian bytes to f32 values (f64 rounded, i64 converted; a trailing partial element,
/// which the readers never produce, is ignored).
fn decode_le(raw: &[u8], kind: RawKind) -> Vec<f32> {
    let width = if matches!(kind, RawKind::F32) { 4 } else { 8 };
    raw.chunks_exact(width)
        .map(|c| match kind {
            RawKind::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            RawKind::F64 => f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32,
            RawKind::I64 => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32,
        })
        .collect()
}

fn read_safetensors(bytes: &[u8]) -> Result<(BTreeMap<String, Entry>, Meta), String> {
    use safetensors::{Dtype, SafeTensors};
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("safetensors: {e}"))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("safetensors: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let kind = match view.dtype() {
            Dtype::F32 => RawKind::F32,
            Dtype::F64 => RawKind::F64,
            Dtype::I64 => RawKind::I64,
            other => return Err(format!("tensor `{name}` has unsupported dtype {other:?}")),
        };
        let data = decode_le(raw, kind);
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok((out, meta))
}

/// Renames burn's keys to PyTorch's and transposes the linear weight to `[out, in]`.
fn burn_to_torch_names(tensors: BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    for (name, (shape, data)) in tensors {
        let Some((field, param)) = name.split_once('.') else {
            continue;
        };
        let Some((_, prefix)) = TORCH_PREFIX.iter().find(|(f, _)| *f == field) else {
            continue;
        };
        let param = match param {
            "gamma" => "weight",
            "beta" => "bias",
            p => p,
        };
        let entry = if field == "l1" && param == "weight" && shape.len() == 2 {
            (
                vec![shape[1], shape[0]],
                transpose(&data, shape[0], shape[1]),
            )
        } else {
            (shape, data)
        };
        out.insert(format!("{prefix}.{param}"), entry);
    }
    out
}

/// Row-major `[rows, cols]` -> `[cols, rows]`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// The generator's tensors under PyTorch names and layouts (no `num_batches_tracked`).
pub fn torch_state_dict(g: &Generator) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut put = |name: String, t: Tensor<1>, shape: Vec<usize>| {
        let data = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 tensor");
        out.insert(name, (shape, data));
    };
    let w = g.l1.weight.val(); // [in, out]
    let [d_in, d_out] = w.dims();
    put(
        "l1.0.weight".into(),
        w.transpose().reshape([d_in * d_out]),
        vec![d_out, d_in],
    );
    let b = g.l1.bias.as_ref().expect("l1 has a bias").val();
    put("l1.0.bias".into(), b, vec![d_out]);
    let convs = [
        (&g.conv1, "conv_blocks.2"),
        (&g.conv2, "conv_blocks.6"),
        (&g.conv_out, "conv_blocks.9"),
    ];
    for (conv, prefix) in convs {
        let w = conv.weight.val();
        let dims = w.dims();
        put(
            format!("{prefix}.weight"),
            w.reshape([dims.iter().product::<usize>()]),
            dims.to_vec(),
        );
        let b = conv.bias.as_ref().expect("conv has a bias").val();
        put(format!("{prefix}.bias"), b, vec![dims[0]]);
    }
    let bns = [
        (&g.bn0, "conv_blocks.0"),
        (&g.bn1, "conv_blocks.3"),
        (&g.bn2, "conv_blocks.7"),
    ];
    for (bn, prefix) in bns {
        let c = bn.gamma.dims()[0];
        put(format!("{prefix}.weight"), bn.gamma.val(), vec![c]);
        put(format!("{prefix}.bias"), bn.beta.val(), vec![c]);
        put(
            format!("{prefix}.running_mean"),
            bn.running_mean.value(),
            vec![c],
        );
        put(
            format!("{prefix}.running_var"),
            bn.running_var.value(),
            vec![c],
        );
    }
    out
}

/// Expected PyTorch shapes for a generator whose linear layer outputs `c0 * 64` features.
fn expected_shapes(c0: usize, c1: usize, c2: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = vec![
        ("l1.0.weight".to_string(), vec![c0 * 64, LATENT_DIM]),
        ("l1.0.bias".to_string(), vec![c0 * 64]),
        ("conv_blocks.2.weight".to_string(), vec![c1, c0, 3, 3]),
        ("conv_blocks.2.bias".to_string(), vec![c1]),
        ("conv_blocks.6.weight".to_string(), vec![c2, c1, 3, 3]),
        ("conv_blocks.6.bias".to_string(), vec![c2]),
        ("conv_blocks.9.weight".to_string(), vec![1, c2, 3, 3]),
        ("conv_blocks.9.bias".to_string(), vec![1]),
    ];
    for (prefix, c) in [
        ("conv_blocks.0", c0),
        ("conv_blocks.3", c1),
        ("conv_blocks.7", c2),
    ] {
        for p in ["weight", "bias", "running_mean", "running_var"] {
            v.push((format!("{prefix}.{p}"), vec![c]));
        }
    }
    v
}

/// Builds a generator from PyTorch-named tensors, checking every shape against the reference
/// architecture at the width the tensors imply, or against `channels` (`[c0, c1, c2]`: l1's
/// maps, block1, block2) when the checkpoint states them.
fn from_torch_state_dict(
    t: &BTreeMap<String, Entry>,
    bn_eps: f64,
    channels: Option<[usize; 3]>,
    path: &Path,
    device: &Device,
) -> Result<(Generator, ModelConfig), CheckpointError> {
    let get = |key: &str| {
        t.get(key).ok_or_else(|| CheckpointError::Missing {
            path: path.to_path_buf(),
            key: key.to_string(),
        })
    };
    let (l1_shape, _) = get("l1.0.bias")?;
    let c0 = l1_shape.first().copied().unwrap_or(0) / 64;
    let width = c0 as f64 / 128.0;
    let c2 = get("conv_blocks.6.bias")?.0.first().copied().unwrap_or(0);
    let cfg = ModelConfig { width, bn_eps };
    // block2 has round(64 * width) channels; anything else is a different architecture.
    let c2_expected = cfg.channels(64);
    let shape_err = |key: String, expected: Vec<usize>, found: Vec<usize>| CheckpointError::Shape {
        path: path.to_path_buf(),
        key,
        expected,
        found,
        width,
    };
    let [c0, c1, c2] = match channels {
        Some([m0, m1, m2]) if m0 == c0 => [m0, m1, m2],
        Some([m0, _, _]) => {
            return Err(shape_err("l1.0.bias".into(), vec![m0 * 64], vec![c0 * 64]));
        }
        None if c0 == 0 || c2 != c2_expected => {
            return Err(shape_err(
                "conv_blocks.6.bias".into(),
                vec![c2_expected],
                vec![c2],
            ));
        }
        None => [c0, c0, c2],
    };
    for (key, expected) in expected_shapes(c0, c1, c2) {
        let (found, _) = get(&key)?;
        if *found != expected {
            return Err(shape_err(key, expected, found.clone()));
        }
    }
    let mut g = Generator::new(&cfg, 0, device);
    let param = |key: &str| -> Param<Tensor<1>> {
        let (_, d) = &t[key];
        Param::from_data(TensorData::new(d.clone(), [d.len()]), device)
    };
    let p4 = |key: &str| -> Param<Tensor<4>> {
        let (s, d) = &t[key];
        Param::from_data(TensorData::new(d.clone(), [s[0], s[1], s[2], s[3]]), device)
    };
    let (ws, wd) = &t["l1.0.weight"];
    let w = transpose(wd, ws[0], ws[1]);
    g.l1.weight = Param::from_data(TensorData::new(w, [ws[1], ws[0]]), device);
    g.l1.bias = Some(param("l1.0.bias"));
    for (conv, prefix) in [
        (&mut g.conv1, "conv_blocks.2"),
        (&mut g.conv2, "conv_blocks.6"),
        (&mut g.conv_out, "conv_blocks.9"),
    ] {
        conv.weight = p4(&format!("{prefix}.weight"));
        conv.bias = Some(param(&format!("{prefix}.bias")));
    }
    for (bn, prefix) in [
        (&mut g.bn0, "conv_blocks.0"),
        (&mut g.bn1, "conv_blocks.3"),
        (&mut g.bn2, "conv_blocks.7"),
    ] {
        bn.gamma = param(&format!("{prefix}.weight"));
        bn.beta = param(&format!("{prefix}.bias"));
        let rs = |k: &str| {
            let (_, d) = &t[&format!("{prefix}.{k}")];
            RunningState::new(Tensor::<1>::from_data(
                TensorData::new(d.clone(), [d.len()]),
                device,
            ))
        };
        bn.running_mean = rs("running_mean");
        bn.running_var = rs("running_var");
    }
    Ok((g, cfg))
}

fn bytes_of_f32(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Lists the `generator-epoch-NNNN.safetensors` checkpoints of a run folder, by epoch.
pub fn run_checkpoints(run: &Path) -> std::io::Result<Vec<(usize, PathBuf)>> {
    let dir = run.join("checkpoints");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(num) = name
            .strip_prefix("generator-epoch-")
            .and_then(|s| s.strip_suffix(".safetensors"))
            && let Ok(epoch) = num.parse::<usize>()
        {
            out.push((epoch, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Checkpoint file name for an epoch (1-based).
pub fn checkpoint_name(epoch: usize) -> String {
    format!("generator-epoch-{epoch:04}.safetensors")
}

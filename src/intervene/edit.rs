//! The `unitmatch edit` command: a grid of samples before and after a set of interventions,
//! the per-pixel change as a heatmap grid, and `edit.json`; plus the folder-writing helpers the
//! causal test shares.

use super::*;

/// What `unitmatch edit` does to each selected unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EditAction {
    /// Set to 0.
    Zero,
    /// Set to the unit's mean over [`MEAN_SAMPLES`] seeded z (base seed 5555).
    Mean,
    /// Set to a constant.
    Set(f32),
    /// Multiply by a factor.
    Scale(f32),
}

/// Inputs of `unitmatch edit`.
#[derive(Debug, Clone)]
pub struct EditConfig {
    /// Generator checkpoint (ours or PyTorch).
    pub checkpoint: PathBuf,
    /// Units to edit (all get the same action and region).
    pub units: Vec<UnitRef>,
    /// The action.
    pub action: EditAction,
    /// Rectangle in each unit's layer coordinates; `None` is the whole map.
    pub region: Option<Region>,
    /// Number of sample images.
    pub samples: usize,
    /// z seed: the samples are `ZSource::Seeded { base_seed: seed, samples, batch: samples }`.
    pub seed: u64,
    /// BatchNorm eps for checkpoints that do not record it (PyTorch files).
    pub default_bn_eps: f64,
    /// How upsample + conv is computed.
    pub ops: UpConvOps,
    /// Replace an existing output folder.
    pub force: bool,
}

/// What `edit` measured.
#[derive(Debug, Clone, Serialize)]
pub struct EditSummary {
    /// The interventions as applied (mean ablations carry the computed mean).
    pub interventions: Vec<Intervention>,
    /// Mean |after - before| over the pixels of each image.
    pub per_image_mean_abs_delta: Vec<f64>,
    /// Mean |after - before| over all images and pixels.
    pub mean_abs_delta: f64,
    /// Largest |after - before| (the top of diff.png's colour scale).
    pub max_abs_delta: f64,
}

/// Side of the grids' square layout: `ceil(sqrt(n))` columns.
fn grid_cols(n: usize) -> usize {
    (n as f64).sqrt().ceil().max(1.0) as usize
}

/// Pixels of white between images in the grids (as the training sample grids).
const GRID_PAD: usize = 2;

/// `|after - before|` of `n` square images as an RGB PNG grid laid out like
/// [`sample_grid_png`] with the same `cols` and `pad`: colour map `jet` with `t = d / max`
/// (dark blue = no change, dark red = the largest change of the whole grid).
pub fn diff_grid_png(deltas: &[f32], side: usize, cols: usize, pad: usize, max: f32) -> Vec<u8> {
    let per = side * side;
    let n = deltas.len() / per;
    let cols = cols.max(1).min(n.max(1));
    let rows = n.div_ceil(cols).max(1);
    let (w, h) = (cols * (side + pad) + pad, rows * (side + pad) + pad);
    let mut buf = vec![255u8; w * h * 3];
    for k in 0..n {
        let (y0, x0) = (
            pad + (k / cols) * (side + pad),
            pad + (k % cols) * (side + pad),
        );
        for y in 0..side {
            for x in 0..side {
                let d = deltas[k * per + y * side + x];
                let t = if max > 0.0 { d / max } else { 0.0 };
                let at = ((y0 + y) * w + x0 + x) * 3;
                buf[at..at + 3].copy_from_slice(&jet(f64::from(t)));
            }
        }
    }
    encode_rgb(&buf, w, h)
}

/// An 8-bit RGB buffer as PNG.
pub(crate) fn encode_rgb(buf: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(buf, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .expect("in-memory PNG encoding of a consistent buffer cannot fail");
    out
}

/// Writes a folder atomically: `fill` writes into a temporary sibling, which then replaces
/// `out` (an existing `out` only with `force`). On error the temporary folder is removed.
pub(crate) fn write_folder<E: From<InterveneError>>(
    out: &Path,
    force: bool,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    if out.exists() && !force {
        return Err(InterveneError::OutputExists(out.to_path_buf()).into());
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| E::from(io_err(parent)(e)))?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| E::from(io_err(&tmp)(e)))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| E::from(io_err(&tmp)(e)))?;
    let result = fill(&tmp).and_then(|()| {
        if out.exists() {
            std::fs::remove_dir_all(out).map_err(|e| E::from(io_err(out)(e)))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| E::from(io_err(out)(e)))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes `bytes` to `dir/name`.
pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), InterveneError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(io_err(&path))
}

/// `unitmatch edit`: generates `cfg.samples` images with and without the edit on the same z and
/// writes `out/`: `before.png`, `after.png` (sample grids), `diff.png` (|after - before| per
/// image, colour map jet on a shared scale from 0 to the largest change) and `edit.json`
/// (interventions, checkpoint and its SHA-256, z, per-image and overall mean |delta|). The
/// folder is written under a temporary name and renamed; nothing is written on error.
pub fn edit(cfg: &EditConfig, out: &Path, device: &Device) -> Result<EditSummary, InterveneError> {
    if out.exists() && !cfg.force {
        return Err(InterveneError::OutputExists(out.to_path_buf()));
    }
    if cfg.units.is_empty() {
        return Err(InterveneError::Config("no unit to edit (--unit)".into()));
    }
    if cfg.samples == 0 {
        return Err(InterveneError::Config("--samples must be positive".into()));
    }
    let (g, model) = load_generator(&cfg.checkpoint, cfg.default_bn_eps, device)?;
    let sha = sha256_file(&cfg.checkpoint).map_err(io_err(&cfg.checkpoint))?;
    let mut interventions: Vec<Intervention> = cfg
        .units
        .iter()
        .map(|u| Intervention {
            layer: u.layer,
            channel: u.channel,
            action: Action::Zero,
            region: cfg.region,
        })
        .collect();
    validate(&g, &interventions, &cfg.checkpoint)?;
    let mean_z = ZSource::seeded(MEAN_SAMPLES, 100);
    let means =
        matches!(cfg.action, EditAction::Mean).then(|| unit_means(&g, &mean_z, cfg.ops, device));
    for iv in &mut interventions {
        iv.action = match cfg.action {
            EditAction::Zero => Action::Zero,
            EditAction::Set(value) => Action::Set { value },
            EditAction::Scale(factor) => Action::Scale { factor },
            EditAction::Mean => {
                let (m1, m2) = means.as_ref().expect("means computed for --mean");
                let m = match iv.layer {
                    EditLayer::Block1 => m1,
                    EditLayer::Block2 => m2,
                };
                Action::Mean {
                    value: m[iv.channel] as f32,
                }
            }
        };
    }
    validate(&g, &interventions, &cfg.checkpoint)?;
    let z = ZSource::Seeded {
        base_seed: cfg.seed,
        samples: cfg.samples,
        batch: cfg.samples,
    };
    let zt = z_tensor(&z.batch(0), device);
    let before = to_vec(generate_with(&g, zt.clone(), &[], cfg.ops).image);
    let after = to_vec(generate_with(&g, zt, &interventions, cfg.ops).image);
    let delta: Vec<f32> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b).abs())
        .collect();
    let per = IMG_SIZE * IMG_SIZE;
    let per_image: Vec<f64> = delta
        .chunks(per)
        .map(|c| c.iter().map(|&d| f64::from(d)).sum::<f64>() / per as f64)
        .collect();
    let overall = per_image.iter().sum::<f64>() / per_image.len() as f64;
    let max = delta.iter().copied().fold(0.0f32, f32::max);
    let summary = EditSummary {
        interventions,
        per_image_mean_abs_delta: per_image,
        mean_abs_delta: overall,
        max_abs_delta: f64::from(max),
    };
    let cols = grid_cols(cfg.samples);
    let json = serde_json::json!({
        "kind": "unitmatch.edit",
        "checkpoint": {"path": cfg.checkpoint, "sha256": sha},
        "model": model,
        "interventions": summary.interventions,
        "where": "each unit's map right after its block's LeakyReLU (eval mode); a region is x0,y0,x1,y1 in the layer's own pixels, half-open",
        "mean": means.as_ref().map(|_| serde_json::json!({
            "over": "all samples and positions of the unedited map",
            "z": mean_z.describe(),
        })),
        "z": z.describe(),
        "ops": cfg.ops,
        "per_image_mean_abs_delta": summary.per_image_mean_abs_delta,
        "mean_abs_delta": summary.mean_abs_delta,
        "max_abs_delta": summary.max_abs_delta,
        "files": {
            "before.png": format!("{} samples without the edit, {cols} per row, grey [-1, 1] -> [0, 255]", cfg.samples),
            "after.png": "the same z with the edit",
            "diff.png": format!("|after - before| per pixel, colour map {JET_NAME}: 0 dark blue, {max} (the largest change) dark red"),
        },
        "versions": versions(),
    });
    write_folder(out, cfg.force, |dir| {
        write_file(
            dir,
            "before.png",
            &sample_grid_png(&before, IMG_SIZE, cols, GRID_PAD),
        )?;
        write_file(
            dir,
            "after.png",
            &sample_grid_png(&after, IMG_SIZE, cols, GRID_PAD),
        )?;
        let diff = diff_grid_png(&delta, IMG_SIZE, cols, GRID_PAD, max);
        write_file(dir, "diff.png", &diff)?;
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        write_file(dir, "edit.json", text.as_bytes())
    })?;
    Ok(summary)
}

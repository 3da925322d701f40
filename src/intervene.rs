//! Interventions on a generator's units during generation (the burn counterpart of nethook's
//! `edit_layer`): ablate a unit (zero, or its mean), set it to a constant or scale it, over the
//! whole map or inside a rectangle, several at once.
//!
//! `let e = [Intervention { layer: EditLayer::Block2, channel: 17, action: Action::Zero, region: None }];`
//! `let out = generate_with(&g, z, &e, UpConvOps::default());` returns the image and the (edited)
//! unit maps; [`edit`] is the `unitmatch edit` command (before/after/diff grids and edit.json).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};
use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointError, load_generator};
use crate::fsutil::{sha256_file, versions};
use crate::model::{GEN_LAYERS, Generator, GeneratorOutput, IMG_SIZE, LATENT_DIM, UpConvOps};
use crate::render::{JET_NAME, jet, sample_grid_png};
use crate::unroll::ZSource;

mod edit;
pub use edit::{EditAction, EditConfig, EditSummary, diff_grid_png, edit};
pub(crate) use edit::{write_file, write_folder};

/// Number of seeded z (the reference stream, base seed 5555) over which `--mean` averages a unit.
pub const MEAN_SAMPLES: usize = 500;

/// A layer whose units can be edited: the maps the matching compares, after their LeakyReLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EditLayer {
    /// `gen.block1`, `[batch, 128w, 16, 16]`.
    #[serde(rename = "gen.block1")]
    Block1,
    /// `gen.block2`, `[batch, 64w, 32, 32]`.
    #[serde(rename = "gen.block2")]
    Block2,
}

impl EditLayer {
    /// The layer's stable name (`gen.block1`, `gen.block2`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Block1 => GEN_LAYERS[0],
            Self::Block2 => GEN_LAYERS[1],
        }
    }

    /// Side of the layer's square map, in pixels.
    pub fn side(self) -> usize {
        match self {
            Self::Block1 => IMG_SIZE / 2,
            Self::Block2 => IMG_SIZE,
        }
    }

    /// Number of units (channels) of the layer in `g`.
    pub fn channels(self, g: &Generator) -> usize {
        match self {
            Self::Block1 => g.bn1.gamma.dims()[0],
            Self::Block2 => g.bn2.gamma.dims()[0],
        }
    }

    /// `block1`, `gen.block1`, `block2` or `gen.block2`; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.strip_prefix("gen.").unwrap_or(name) {
            "block1" => Some(Self::Block1),
            "block2" => Some(Self::Block2),
            _ => None,
        }
    }
}

/// One unit: a layer and a channel, written `block2:17` or `gen.block2:17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitRef {
    /// The layer.
    pub layer: EditLayer,
    /// Channel within the layer (0-based).
    pub channel: usize,
}

impl std::fmt::Display for UnitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.layer.name(), self.channel)
    }
}

impl FromStr for UnitRef {
    type Err = InterveneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |message: &str| InterveneError::BadUnit {
            spec: s.to_string(),
            message: message.to_string(),
        };
        let (layer, channel) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| bad("expected LAYER:CHANNEL, e.g. block2:17"))?;
        let layer = EditLayer::from_name(layer.trim()).ok_or_else(|| {
            bad("the editable layers are block1 and block2 (or gen.block1, gen.block2)")
        })?;
        let channel = channel
            .trim()
            .parse()
            .map_err(|_| bad("the channel must be a non-negative integer"))?;
        Ok(Self { layer, channel })
    }
}

/// A rectangle of a layer's map in that layer's own pixel coordinates, half-open:
/// columns `x0..x1`, rows `y0..y1` (written `x0,y0,x1,y1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// First column.
    pub x0: usize,
    /// First row.
    pub y0: usize,
    /// One past the last column.
    pub x1: usize,
    /// One past the last row.
    pub y1: usize,
}

impl Region {
    /// Whether pixel (row `y`, column `x`) lies inside.
    pub fn contains(&self, y: usize, x: usize) -> bool {
        (self.y0..self.y1).contains(&y) && (self.x0..self.x1).contains(&x)
    }

    /// Checks that the rectangle is non-empty and lies within a `side` x `side` map.
    pub fn check(&self, side: usize) -> Result<(), String> {
        if self.x0 >= self.x1 || self.y0 >= self.y1 {
            return Err(format!(
                "empty rectangle {self}: need x0 < x1 and y0 < y1 (half-open)"
            ));
        }
        if self.x1 > side || self.y1 > side {
            return Err(format!(
                "rectangle {self} leaves the layer's {side} x {side} map"
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.x0, self.y0, self.x1, self.y1)
    }
}

impl FromStr for Region {
    type Err = InterveneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: Vec<usize> = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| InterveneError::BadRegion {
                spec: s.to_string(),
                message: "expected four non-negative integers x0,y0,x1,y1".into(),
            })?;
        match v[..] {
            [x0, y0, x1, y1] => Ok(Self { x0, y0, x1, y1 }),
            _ => Err(InterveneError::BadRegion {
                spec: s.to_string(),
                message: format!("expected four numbers x0,y0,x1,y1, found {}", v.len()),
            }),
        }
    }
}

/// What an intervention does to a unit's activation `a` at each affected position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// `a <- 0` (ablation).
    Zero,
    /// `a <- value`, the unit's mean over samples and positions (mean ablation).
    Mean {
        /// The mean.
        value: f32,
    },
    /// `a <- value`.
    Set {
        /// The constant.
        value: f32,
    },
    /// `a <- factor * a`.
    Scale {
        /// The factor.
        factor: f32,
    },
}

impl Action {
    /// The action as the affine map `a <- keep * a + value`: `(keep, value)`.
    pub fn affine(self) -> (f32, f32) {
        match self {
            Self::Zero => (0.0, 0.0),
            Self::Mean { value } | Self::Set { value } => (0.0, value),
            Self::Scale { factor } => (factor, 0.0),
        }
    }
}

/// One edit of one unit during generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// The unit's layer.
    pub layer: EditLayer,
    /// The unit's channel.
    pub channel: usize,
    /// What is done to the unit.
    pub action: Action,
    /// Where (in the layer's own pixel coordinates); `None` is the whole map.
    pub region: Option<Region>,
}

impl Intervention {
    /// An ablation (set to 0) of `unit` over its whole map.
    pub fn ablate(unit: UnitRef) -> Self {
        Self {
            layer: unit.layer,
            channel: unit.channel,
            action: Action::Zero,
            region: None,
        }
    }
}

/// Errors from parsing, checking and running interventions; each names the input or file.
#[derive(Debug, thiserror::Error)]
pub enum InterveneError {
    /// A unit could not be parsed.
    #[error("unit `{spec}`: {message}")]
    BadUnit {
        /// As written.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A region could not be parsed or does not fit the layer.
    #[error("region `{spec}`: {message}")]
    BadRegion {
        /// As written.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A unit does not exist in the generator.
    #[error("unit {unit}: {layer} has only {channels} channels (0..{channels}) in {path}")]
    NoSuchUnit {
        /// The unit.
        unit: UnitRef,
        /// Its layer's name.
        layer: &'static str,
        /// Channels of that layer.
        channels: usize,
        /// The checkpoint (or `<generator>`).
        path: PathBuf,
    },
    /// A value or option is unusable.
    #[error("{0}")]
    Config(String),
    /// The checkpoint could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Output folder exists.
    #[error("{0} already exists: pass --force to replace it")]
    OutputExists(PathBuf),
    /// File I/O or encoding.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> InterveneError + '_ {
    move |e| InterveneError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Checks every intervention against `g` (`path` names the checkpoint in errors): the channel
/// exists, the region fits the layer's map, the values are finite.
pub fn validate(
    g: &Generator,
    interventions: &[Intervention],
    path: &Path,
) -> Result<(), InterveneError> {
    for iv in interventions {
        let unit = UnitRef {
            layer: iv.layer,
            channel: iv.channel,
        };
        let channels = iv.layer.channels(g);
        if iv.channel >= channels {
            return Err(InterveneError::NoSuchUnit {
                unit,
                layer: iv.layer.name(),
                channels,
                path: path.to_path_buf(),
            });
        }
        if let Some(r) = &iv.region {
            r.check(iv.layer.side())
                .map_err(|message| InterveneError::BadRegion {
                    spec: r.to_string(),
                    message: format!("{message} (layer {})", iv.layer.name()),
                })?;
        }
        let (k, v) = iv.action.affine();
        if !(k.is_finite() && v.is_finite()) {
            return Err(InterveneError::Config(format!(
                "unit {unit}: the value of {:?} is not finite",
                iv.action
            )));
        }
    }
    Ok(())
}

/// Applies the interventions on `layer` to its map `x` as `x * keep + value`, with `keep` and
/// `value` `[1, c, h, w]` tensors built from the interventions in order (later ones act on the
/// result of earlier ones). Untouched positions get `keep = 1, value = 0`, so they stay bit for
/// bit equal. Returns `x` itself when no intervention targets `layer`.
///
/// # Shapes
/// - x, output: `[batch, c, h, w]`
///
/// Panics if an intervention's channel or region does not fit `x` (see [`validate`]).
pub fn edit_map(x: Tensor<4>, layer: EditLayer, interventions: &[Intervention]) -> Tensor<4> {
    let mine: Vec<&Intervention> = interventions.iter().filter(|i| i.layer == layer).collect();
    if mine.is_empty() {
        return x;
    }
    let [_, c, h, w] = x.dims();
    let mut keep = vec![1.0f32; c * h * w];
    let mut value = vec![0.0f32; c * h * w];
    for iv in mine {
        assert!(
            iv.channel < c,
            "intervention on channel {} of {c}",
            iv.channel
        );
        let (k, v) = iv.action.affine();
        let full = Region {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        };
        let r = iv.region.unwrap_or(full);
        assert!(r.x1 <= w && r.y1 <= h, "region {r} outside {h} x {w}");
        for y in r.y0..r.y1 {
            let row = (iv.channel * h + y) * w;
            for i in row + r.x0..row + r.x1 {
                // (k, v) after (keep, value): k (keep a + value) + v.
                keep[i] *= k;
                value[i] = k * value[i] + v;
            }
        }
    }
    let dev = x.device();
    let keep = Tensor::<4>::from_data(TensorData::new(keep, [1, c, h, w]), &dev);
    let value = Tensor::<4>::from_data(TensorData::new(value, [1, c, h, w]), &dev);
    x * keep + value
}

/// Runs `g` in eval mode on `z`, applying `interventions` to the block1 and block2 maps right
/// after their LeakyReLU (the maps the matching compares), and returns the image with the
/// edited activations (`gen.block1`, `gen.block2`, `gen.out`). With no interventions this is
/// `g.forward_with_activations_ops(z, false, ops)` exactly.
///
/// # Shapes
/// - z: `[batch, 100]`; image: `[batch, 1, 32, 32]`
///
/// Panics if an intervention does not fit `g` (check with [`validate`]).
pub fn generate_with(
    g: &Generator,
    z: Tensor<2>,
    interventions: &[Intervention],
    ops: UpConvOps,
) -> GeneratorOutput {
    let block1 = edit_map(g.eval_block1(z, ops), EditLayer::Block1, interventions);
    let block2 = edit_map(
        g.eval_block2(block1.clone(), ops),
        EditLayer::Block2,
        interventions,
    );
    let out = g.eval_image(block2.clone());
    GeneratorOutput::from_maps(block1, block2, out)
}

/// Mean of every unit of block1 and of block2 over all samples and positions of `z`
/// (unedited, eval mode): `(block1 means, block2 means)`, summed in f64 across batches.
pub fn unit_means(
    g: &Generator,
    z: &ZSource,
    ops: UpConvOps,
    device: &Device,
) -> (Vec<f64>, Vec<f64>) {
    let (c1, c2) = (EditLayer::Block1.channels(g), EditLayer::Block2.channels(g));
    let (mut s1, mut s2) = (vec![0.0f64; c1], vec![0.0f64; c2]);
    let channel_sums = |t: Tensor<4>, acc: &mut [f64]| {
        let c = t.dims()[1];
        let v = to_vec(t.sum_dims(&[0, 2, 3]).reshape([c]));
        for (a, x) in acc.iter_mut().zip(v) {
            *a += f64::from(x);
        }
    };
    for i in 0..z.batches() {
        let zb = z_tensor(&z.batch(i), device);
        let b1 = g.eval_block1(zb, ops);
        let b2 = g.eval_block2(b1.clone(), ops);
        channel_sums(b1, &mut s1);
        channel_sums(b2, &mut s2);
    }
    let n = z.samples() as f64;
    let per = |s: Vec<f64>, side: usize| {
        s.into_iter()
            .map(|v| v / (n * (side * side) as f64))
            .collect()
    };
    (
        per(s1, EditLayer::Block1.side()),
        per(s2, EditLayer::Block2.side()),
    )
}

/// `[n, 100]` codes (row-major) as a tensor.
pub(crate) fn z_tensor(z: &[f32], device: &Device) -> Tensor<2> {
    let n = z.len() / LATENT_DIM;
    Tensor::from_data(TensorData::new(z.to_vec(), [n, LATENT_DIM]), device)
}

/// A tensor's values as f32, row-major.
pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use burn::module::Param;

    fn dev() -> Device {
        Device::flex()
    }

    fn small(seed: u64) -> Generator {
        let cfg = ModelConfig {
            width: 0.125,
            bn_eps: 0.8,
        };
        Generator::new(&cfg, seed, &dev())
    }

    fn z(n: usize) -> Tensor<2> {
        z_tensor(&ZSource::seeded(n, n).batch(0), &dev())
    }

    fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        to_vec(a)
            .iter()
            .zip(to_vec(b))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn parses_units_and_regions() {
        let u: UnitRef = "block2:17".parse().unwrap();
        assert_eq!((u.layer, u.channel), (EditLayer::Block2, 17));
        let u: UnitRef = " gen.block1 : 3 ".parse().unwrap();
        assert_eq!((u.layer, u.channel), (EditLayer::Block1, 3));
        assert_eq!(u.to_string(), "gen.block1:3");
        for bad in ["block3:1", "out:0", "block2", "block2:-1", "block2:x", ":4"] {
            let e = bad.parse::<UnitRef>().unwrap_err().to_string();
            assert!(e.contains(bad.trim()), "{e}");
        }
        let r: Region = "1,2,5,6".parse().unwrap();
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (1, 2, 5, 6));
        assert!(r.contains(2, 1) && !r.contains(6, 1) && !r.contains(2, 5));
        assert!("1,2,3".parse::<Region>().is_err());
        assert!("a,2,3,4".parse::<Region>().is_err());
        assert!(r.check(16).is_ok());
        assert!(r.check(5).is_err(), "x1 = 5 fits, y1 = 6 does not");
        assert!("3,0,3,4".parse::<Region>().unwrap().check(16).is_err());
    }

    #[test]
    fn validate_names_the_problem() {
        let g = small(0);
        let iv = |layer, channel, region| Intervention {
            layer,
            channel,
            action: Action::Zero,
            region,
        };
        let p = Path::new("g.safetensors");
        assert!(validate(&g, &[iv(EditLayer::Block2, 7, None)], p).is_ok());
        let e = validate(&g, &[iv(EditLayer::Block2, 8, None)], p).unwrap_err();
        assert!(e.to_string().contains("8 channels"), "{e}");
        let r = Some("0,0,17,4".parse().unwrap());
        assert!(validate(&g, &[iv(EditLayer::Block1, 0, r)], p).is_err());
        assert!(validate(&g, &[iv(EditLayer::Block2, 0, r)], p).is_ok());
    }

    #[test]
    fn no_edit_is_the_plain_forward() {
        let g = small(3);
        let zt = z(5);
        let plain = g.forward_with_activations(zt.clone(), false);
        let ours = generate_with(&g, zt, &[], UpConvOps::default());
        for ((n1, a), (n2, b)) in plain.activations.into_iter().zip(ours.activations) {
            assert_eq!(n1, n2);
            let d = max_abs_diff(a, b);
            assert!(d <= 1e-6, "{n1}: {d}");
        }
        assert!(max_abs_diff(plain.image, ours.image) <= 1e-6);
    }

    #[test]
    fn set_and_scale_hit_only_their_unit_and_region() {
        let g = small(4);
        let zt = z(3);
        let plain = generate_with(&g, zt.clone(), &[], UpConvOps::default());
        let region = Region {
            x0: 2,
            y0: 3,
            x1: 6,
            y1: 5,
        };
        let edits = [
            Intervention {
                layer: EditLayer::Block1,
                channel: 5,
                action: Action::Set { value: 7.5 },
                region: Some(region),
            },
            Intervention {
                layer: EditLayer::Block1,
                channel: 5,
                action: Action::Scale { factor: 2.0 },
                region: None,
            },
        ];
        let out = generate_with(&g, zt, &edits, UpConvOps::default());
        let before = to_vec(plain.activations[0].1.clone());
        let after = to_vec(out.activations[0].1.clone());
        let (c, s) = (16, 16);
        for n in 0..3 {
            for ch in 0..c {
                for y in 0..s {
                    for x in 0..s {
                        let i = ((n * c + ch) * s + y) * s + x;
                        let want = match (ch, region.contains(y, x)) {
                            (5, true) => 15.0, // set 7.5, then scaled by 2
                            (5, false) => 2.0 * before[i],
                            _ => before[i],
                        };
                        assert_eq!(after[i], want, "n {n} ch {ch} y {y} x {x}");
                    }
                }
            }
        }
    }

    #[test]
    fn unit_means_average_the_maps() {
        let g = small(5);
        let zs = ZSource::seeded(6, 4); // two batches: 4 + 2
        let (m1, m2) = unit_means(&g, &zs, UpConvOps::default(), &dev());
        let all = generate_with(
            &g,
            z_tensor(&[zs.batch(0), zs.batch(1)].concat(), &dev()),
            &[],
            UpConvOps::default(),
        );
        let b2 = to_vec(all.activations[1].1.clone());
        let per = 32 * 32;
        for ch in [0, 7] {
            let want: f64 = (0..6)
                .flat_map(|n| b2[(n * 8 + ch) * per..(n * 8 + ch + 1) * per].iter())
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / (6 * per) as f64;
            assert!((m2[ch] - want).abs() < 1e-5, "{} vs {want}", m2[ch]);
        }
        assert_eq!(m1.len(), 16);
        // Mean ablation with that mean leaves the unit's average unchanged (constant map).
        let iv = [Intervention {
            layer: EditLayer::Block2,
            channel: 3,
            action: Action::Mean {
                value: m2[3] as f32,
            },
            region: None,
        }];
        let e = to_vec(
            generate_with(&g, z(2), &iv, UpConvOps::default()).activations[1]
                .1
                .clone(),
        );
        assert!(e[3 * per..4 * per].iter().all(|&v| v == m2[3] as f32));
    }

    #[test]
    fn zeroed_outgoing_weights_make_ablation_a_no_op() {
        let mut g = small(6);
        // conv2 weight [c_out, c_in, 3, 3]: zero input channel 4 (block1 unit 4's weights).
        let w = g.conv2.weight.val();
        let [co, ci, kh, kw] = w.dims();
        let mut v = to_vec(w);
        for o in 0..co {
            let start = (o * ci + 4) * kh * kw;
            v[start..start + kh * kw].fill(0.0);
        }
        g.conv2.weight = Param::from_data(TensorData::new(v, [co, ci, kh, kw]), &dev());
        let zt = z(4);
        let plain = generate_with(&g, zt.clone(), &[], UpConvOps::default()).image;
        let ablated = generate_with(
            &g,
            zt,
            &[Intervention::ablate(UnitRef {
                layer: EditLayer::Block1,
                channel: 4,
            })],
            UpConvOps::default(),
        )
        .image;
        assert_eq!(to_vec(plain), to_vec(ablated));
    }

    #[test]
    fn diff_grid_colours() {
        let d = [0.0f32, 0.5, 1.0, 0.25];
        let png = diff_grid_png(&d, 2, 1, 1, 1.0);
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (4, 4));
        assert_eq!(img.get_pixel(1, 1).0, jet(0.0));
        assert_eq!(img.get_pixel(1, 2).0, jet(1.0));
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
    }
}

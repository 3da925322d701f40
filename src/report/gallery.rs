//! Best-match galleries (the seed's Figure 3): for a matched unit pair, the z on which the two
//! units agree most, both generated images, both maps over their image, and both raw maps.
//!
//! Agreement on one sample `n` is the seed's score restricted to that sample:
//! `s_n(i, j) = mean_{x,y} x'_i[n, x, y] y'_j[n, x, y]`, with `x' = (x - mean_i) / std_i` from
//! the comparison's unit statistics and both maps at the larger resolution (bilinear,
//! `align_corners = true`, as the engine). The gallery searches the first `search` codes of the
//! comparison's z.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ndarray::{Array4, ArrayView2, s};

use crate::checkpoint::load_generator;
use crate::classifier::CLS_LAYERS;
use crate::compare::NetworkB;
use crate::fsutil::sha256_file;
use crate::model::Generator;
use crate::render::{GalleryRow, Panel, gallery_png, overlay_panel};
use crate::similarity::{SimilarityTable, UnitInfo};
use crate::stats::upsample_bilinear_align_corners;
use crate::unroll::{ZSource, unroll_generator};

/// Weight of the jet colour in the overlay panels (0: image only, 1: map only).
pub const OVERLAY_ALPHA: f32 = 0.5;
/// Upscaling of the 32 x 32 panels in a gallery figure (nearest neighbour).
pub const PANEL_SCALE: usize = 4;
/// Captions of the six panel columns.
pub const CAPTIONS: [&str; 6] = [
    "A image",
    "A map over image",
    "A map",
    "B image",
    "B map over image",
    "B map",
];

/// One drawn pair: which units, on which sample, with what scores.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GalleryPair {
    /// Flat index of the unit of A.
    pub flat_a: usize,
    /// Flat index of the unit of B.
    pub flat_b: usize,
    /// `layer:channel` of the unit of A.
    pub unit_a: String,
    /// `layer:channel` of the unit of B.
    pub unit_b: String,
    /// The table score of the pair (over all samples).
    pub score: f64,
    /// Index of the chosen z in the comparison's z.
    pub sample: usize,
    /// The per-sample agreement `s_n` on that z.
    pub sample_score: f64,
    /// Figure file, relative to the report folder.
    pub figure: String,
}

/// Loads the generators of a comparison and can draw galleries of its pairs.
pub struct GalleryMaker {
    ga: Generator,
    gb: NetworkB,
    layers: Vec<String>,
    layers_b: Vec<String>,
    z: Vec<f32>,
    n: usize,
    device: Device,
}

/// The checkpoint of one side of a compare folder's `run.json`, found as written or relative
/// to the folder's parent folders, and checked against its recorded SHA-256.
fn find_checkpoint(dir: &Path, recorded: &Path, sha: &str) -> Result<PathBuf, String> {
    let mut candidates = vec![recorded.to_path_buf()];
    let mut up = Some(dir);
    while let Some(d) = up {
        candidates.push(d.join(recorded));
        up = d.parent();
    }
    for c in candidates.iter().filter(|c| c.exists()) {
        if sha256_file(c).is_ok_and(|h| h == sha) {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "checkpoint {} (SHA-256 {}) is not found as recorded in {}/run.json, or it changed",
        recorded.display(),
        &sha[..sha.len().min(12)],
        dir.display()
    ))
}

impl GalleryMaker {
    /// Reads `dir/run.json`, loads both generators and draws the first `search` codes of its z.
    pub fn new(dir: &Path, search: usize, device: &Device) -> Result<Self, String> {
        let path = dir.join("run.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let run: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let inputs = &run["inputs"];
        let side = |k: &str| -> Result<(PathBuf, String), String> {
            let p = inputs[k][0]
                .as_str()
                .ok_or(format!("{}: no inputs.{k}", path.display()))?;
            let h = inputs[k][1]
                .as_str()
                .ok_or(format!("{}: no inputs.{k} hash", path.display()))?;
            Ok((PathBuf::from(p), h.to_string()))
        };
        let bn_eps = |k: &str| inputs[k]["bn_eps"].as_f64().unwrap_or(0.8);
        let (pa, ha) = side("a")?;
        let (pb, hb) = side("b")?;
        let pa = find_checkpoint(dir, &pa, &ha)?;
        let pb = find_checkpoint(dir, &pb, &hb)?;
        let ga = load_generator(&pa, bn_eps("model_a"), device)
            .map(|g| g.0)
            .map_err(|e| e.to_string())?;
        let gb = NetworkB::load(&pb, bn_eps("model_b"), device)
            .map(|g| g.0)
            .map_err(|e| e.to_string())?;
        let zd = &inputs["z"];
        let source = match zd["kind"].as_str() {
            Some("seeded") => ZSource::Seeded {
                base_seed: zd["base_seed"]
                    .as_u64()
                    .unwrap_or(crate::unroll::Z_BASE_SEED),
                samples: zd["samples"].as_u64().unwrap_or(0) as usize,
                batch: zd["batch"].as_u64().unwrap_or(100).max(1) as usize,
            },
            Some("npy") => {
                let p = PathBuf::from(zd["path"].as_str().unwrap_or(""));
                ZSource::from_npy(&p, 100).map_err(|e| e.to_string())?
            }
            _ => return Err(format!("{}: unknown z source {zd}", path.display())),
        };
        let mut z = Vec::new();
        for b in 0..source.batches() {
            if z.len() / crate::model::LATENT_DIM >= search {
                break;
            }
            z.extend(source.batch(b));
        }
        z.truncate(search * crate::model::LATENT_DIM);
        let n = z.len() / crate::model::LATENT_DIM;
        if n == 0 {
            return Err(format!("{}: the comparison has no z", path.display()));
        }
        let layers: Vec<String> = inputs["layers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let layers_b = match &gb {
            NetworkB::Generator(_) => layers.clone(),
            NetworkB::Classifier(_) => CLS_LAYERS.iter().map(|l| l.to_string()).collect(),
        };
        Ok(Self {
            ga,
            gb,
            layers,
            layers_b,
            z,
            n,
            device: device.clone(),
        })
    }

    /// Number of codes searched.
    pub fn samples(&self) -> usize {
        self.n
    }

    /// Activations of all layers plus the image, for codes `lo..hi`.
    fn unroll(&self, g: &Generator, lo: usize, hi: usize) -> (Vec<Array4<f32>>, Array4<f32>) {
        let z = &self.z[lo * crate::model::LATENT_DIM..hi * crate::model::LATENT_DIM];
        let mut layers = self.layers.clone();
        layers.push("gen.out".into());
        let mut acts = unroll_generator(g, z, &layers, &self.device);
        let image = acts.pop().expect("gen.out is always unrolled");
        (acts, image)
    }

    /// Draws one figure per pair into `out_dir` as `{prefix}-NN.png`; returns what was drawn.
    pub fn draw(
        &self,
        table: &SimilarityTable,
        pairs: &[(usize, usize)],
        out_dir: &Path,
        prefix: &str,
    ) -> Result<Vec<GalleryPair>, String> {
        let (acts_a, img_a) = self.unroll(&self.ga, 0, self.n);
        // A classifier B sees A's images; its panels show them with the classifier's maps.
        let (acts_b, img_b) = match &self.gb {
            NetworkB::Generator(g) => self.unroll(g, 0, self.n),
            NetworkB::Classifier(_) => {
                let z = &self.z[..self.n * crate::model::LATENT_DIM];
                let acts = self.gb.activations(z, &img_a, &self.layers_b, &self.device);
                (acts, img_a.clone())
            }
        };
        let layer_of = |units: &[UnitInfo], layers: &[String], flat: usize| {
            let u = units
                .get(flat)
                .ok_or(format!("unit {flat} is not in the table"))?;
            let l = layers
                .iter()
                .position(|l| *l == u.layer)
                .ok_or(format!("layer {} was not unrolled", u.layer))?;
            Ok::<_, String>((l, u.channel, u.clone()))
        };
        let mut out = Vec::new();
        for (k, &(fa, fb)) in pairs.iter().enumerate() {
            let (la, ca, ua) = layer_of(&table.rows, &self.layers, fa)?;
            let (lb, cb, ub) = layer_of(&table.cols, &self.layers_b, fb)?;
            let (ma, mb) = (
                acts_a[la].slice(s![.., ca, .., ..]),
                acts_b[lb].slice(s![.., cb, .., ..]),
            );
            let scores = per_sample_agreement(ma, mb, (ua.mean, ua.std), (ub.mean, ub.std))?;
            let (best, &best_score) = scores
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))
                .ok_or("no samples")?;
            let panels = |img: &Array4<f32>, map: ndarray::ArrayView3<f32>| {
                let image: Vec<f32> = img.slice(s![best, 0, .., ..]).iter().copied().collect();
                let side = img.shape()[2];
                let m = map.slice(s![best, .., ..]);
                let (mh, mw) = m.dim();
                let mv: Vec<f32> = m.iter().copied().collect();
                let (overlay, raw) = overlay_panel(&image, side, &mv, mh, mw, OVERLAY_ALPHA);
                (
                    side,
                    [
                        Panel::from_image(&image),
                        Panel::Rgb(overlay),
                        Panel::Gray(raw),
                    ],
                )
            };
            let (side, pa) = panels(&img_a, ma);
            let (_, pb) = panels(&img_b, mb);
            let unit =
                |u: &UnitInfo| format!("{}:{}", u.layer.trim_start_matches("gen."), u.channel);
            let score = table.values[[fa, fb]];
            let row = GalleryRow {
                title: format!(
                    "A {} <-> B {}: r = {score:.3} (on this z: {best_score:.3})",
                    unit(&ua),
                    unit(&ub)
                ),
                panels: pa.into_iter().chain(pb).collect(),
            };
            let png = gallery_png(&[row], side, PANEL_SCALE, &CAPTIONS)?;
            let name = format!("{prefix}-{:02}.png", k + 1);
            crate::fsutil::atomic_write(&out_dir.join(&name), &png)
                .map_err(|e| format!("{}: {e}", out_dir.join(&name).display()))?;
            out.push(GalleryPair {
                flat_a: fa,
                flat_b: fb,
                unit_a: unit(&ua),
                unit_b: unit(&ub),
                score,
                sample: best,
                sample_score: best_score,
                figure: name,
            });
        }
        Ok(out)
    }
}

/// `s_n = mean_{x,y} ((a_n - mu_a) / sd_a) ((b_n - mu_b) / sd_b)` for every sample `n`, with
/// the smaller map upsampled to the larger (bilinear, `align_corners = true`). A unit with
/// `sd = 0` agrees 0 everywhere. `a`, `b`: `[n, h, w]`.
pub fn per_sample_agreement(
    a: ndarray::ArrayView3<f32>,
    b: ndarray::ArrayView3<f32>,
    (mu_a, sd_a): (f64, f64),
    (mu_b, sd_b): (f64, f64),
) -> Result<Vec<f64>, String> {
    let (n, ha, wa) = a.dim();
    let (nb, hb, wb) = b.dim();
    if n != nb {
        return Err(format!("{n} vs {nb} samples"));
    }
    let (h, w) = (ha.max(hb), wa.max(wb));
    let up = |x: ndarray::ArrayView3<f32>| {
        upsample_bilinear_align_corners(x.insert_axis(ndarray::Axis(1)), h, w)
            .map_err(|e| e.to_string())
    };
    let (ua, ub) = (up(a)?, up(b)?);
    let standard = |sd: f64| if sd > 0.0 { 1.0 / sd } else { 0.0 };
    let (ia, ib) = (standard(sd_a), standard(sd_b));
    Ok((0..n)
        .map(|k| {
            let (pa, pb): (ArrayView2<f64>, ArrayView2<f64>) =
                (ua.slice(s![k, 0, .., ..]), ub.slice(s![k, 0, .., ..]));
            let sum: f64 = pa
                .iter()
                .zip(pb.iter())
                .map(|(x, y)| (x - mu_a) * ia * (y - mu_b) * ib)
                .sum();
            sum / (h * w) as f64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn agreement_is_the_per_sample_standardised_product_mean() {
        // Two samples of 2 x 2 maps; b is a at sample 0 and -a at sample 1.
        let a = Array3::from_shape_vec((2, 2, 2), vec![1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 0.0, 1.0])
            .unwrap();
        let mut b = a.clone();
        b.slice_mut(s![1, .., ..]).mapv_inplace(|v| -v);
        let s = per_sample_agreement(a.view(), b.view(), (1.0, 2.0), (0.0, 1.0)).unwrap();
        // Sample 0: mean((a - 1) / 2 * a) = (0 + 1 + 3 + 6) / 4 = 2.5.
        assert!((s[0] - 2.5).abs() < 1e-12, "{s:?}");
        // Sample 1: mean((a - 1) / 2 * -a) = (0 + 0 + 0 + 0) / 4 = 0.
        assert!(s[1].abs() < 1e-12, "{s:?}");
        // Dead units agree 0.
        let d = per_sample_agreement(a.view(), b.view(), (1.0, 0.0), (0.0, 1.0)).unwrap();
        assert!(d.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn smaller_maps_are_upsampled_before_the_product() {
        // A constant 1 x 1 map against a 2 x 2 one: the product mean is the mean of the other.
        let a = Array3::from_shape_vec((1, 1, 1), vec![3.0f32]).unwrap();
        let b = Array3::from_shape_vec((1, 2, 2), vec![1.0f32, 2.0, 3.0, 6.0]).unwrap();
        let s = per_sample_agreement(a.view(), b.view(), (1.0, 1.0), (0.0, 1.0)).unwrap();
        assert!((s[0] - 2.0 * 3.0).abs() < 1e-12, "{s:?}");
    }
}

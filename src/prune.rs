//! Removing duplicate units from a generator, with the removed unit folded into its kept twin.
//!
//! A unit j of block1 (or block2) whose map is nearly a linear function of a kept unit k's map,
//! `x_j ≈ a x_k + b`, can be removed: the next layer (conv2 after the upsample, or conv_out)
//! reads `x_j` only through its weights `W[:, j]`, so adding `a W[:, j]` to `W[:, k]` and
//! `b * sum(W[o, j, :, :])` to bias `o` reproduces it. That is exact where the 3x3 window lies
//! inside the map; at the zero-padded border the constant `b` is not padded, so the border pixels
//! differ (measured, not assumed: [`CurvePoint::mean_abs_delta`]). Slope and intercept are the
//! least-squares regression of `x_j` on `x_k` over (z, position) rows:
//! `a = cov(j, k) / var(k)`, `b = mean(j) - a mean(k)`.
//!
//! Clusters: units are visited in index order; each unit not yet removed keeps itself and
//! removes every later, not yet removed unit with `|r| >= tau` to it (a star around the first
//! unit). The statistics come from the generator itself, unrolled (eval mode) on the reference z.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array2, Array4, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::model::{GEN_LAYERS, Generator};
use crate::unroll::{ZSource, unroll_generator};

/// Means and covariance of the units of one layer over all (z, position) rows, in f64.
#[derive(Debug, Clone)]
pub struct UnitMoments {
    /// Rows accumulated.
    pub rows: f64,
    /// Mean of each unit.
    pub mean: Vec<f64>,
    /// Covariance (biased, divided by the row count).
    pub cov: Array2<f64>,
}

impl UnitMoments {
    /// Pearson correlation of units `i` and `j` (0 when either is constant).
    pub fn corr(&self, i: usize, j: usize) -> f64 {
        let d = (self.cov[[i, i]] * self.cov[[j, j]]).sqrt();
        if d > 0.0 { self.cov[[i, j]] / d } else { 0.0 }
    }
}

/// The moments of block1 and block2 of `g` (eval mode) over the codes of `z`.
pub fn unit_moments(g: &Generator, z: &ZSource, device: &Device) -> [UnitMoments; 2] {
    let layers: Vec<String> = GEN_LAYERS[..2].iter().map(|s| s.to_string()).collect();
    let [_, c1, c2] = g.channels();
    let mut sums = [c1, c2].map(|c| (0.0f64, vec![0.0f64; c], Array2::<f64>::zeros((c, c))));
    for i in 0..z.batches() {
        let acts = unroll_generator(g, &z.batch(i), &layers, device);
        for (a, (n, s, ss)) in acts.iter().zip(sums.iter_mut()) {
            let (b, c, h, w) = a.dim();
            // Rows are (sample, position); columns are the units.
            let rows: Vec<f64> = a
                .view()
                .permuted_axes([0, 2, 3, 1])
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let x = Array2::from_shape_vec((b * h * w, c), rows).expect("rows x units");
            *n += (b * h * w) as f64;
            for (k, v) in x.sum_axis(Axis(0)).iter().enumerate() {
                s[k] += v;
            }
            *ss += &x.t().dot(&x);
        }
    }
    sums.map(|(n, s, ss)| {
        let mean: Vec<f64> = s.iter().map(|v| v / n).collect();
        let cov = Array2::from_shape_fn(ss.dim(), |(i, j)| ss[[i, j]] / n - mean[i] * mean[j]);
        UnitMoments { rows: n, mean, cov }
    })
}

/// One removed unit: which, folded into which kept unit (if any), and how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Removal {
    /// The removed unit (channel of its layer).
    pub unit: usize,
    /// The kept unit it is folded into (`None`: removed without folding).
    pub into: Option<usize>,
    /// Regression slope `a` of the removed map on the kept one.
    pub slope: f64,
    /// Regression intercept `b`.
    pub intercept: f64,
    /// Correlation of the two maps.
    pub r: f64,
}

/// Units to remove from block1 (`[0]`) and block2 (`[1]`).
pub type PrunePlan = [Vec<Removal>; 2];

/// Near-duplicate clusters at `|r| >= tau` (see the module doc), each removed unit folded into
/// its cluster's first unit.
pub fn duplicate_plan(moments: &[UnitMoments; 2], tau: f64) -> PrunePlan {
    moments.clone().map(|m| {
        let c = m.mean.len();
        let mut removed = vec![false; c];
        let mut out = Vec::new();
        for k in 0..c {
            if removed[k] || m.cov[[k, k]] <= 0.0 {
                continue;
            }
            for (j, gone) in removed.iter_mut().enumerate().skip(k + 1) {
                let r = m.corr(j, k);
                if !*gone && r.abs() >= tau {
                    *gone = true;
                    let slope = m.cov[[j, k]] / m.cov[[k, k]];
                    out.push(Removal {
                        unit: j,
                        into: Some(k),
                        slope,
                        intercept: m.mean[j] - slope * m.mean[k],
                        r,
                    });
                }
            }
        }
        out
    })
}

fn plain(unit: usize) -> Removal {
    Removal {
        unit,
        into: None,
        slope: 0.0,
        intercept: 0.0,
        r: 0.0,
    }
}

/// Baseline: as many units per layer as `like` removes, chosen at random (seeded), no folding.
pub fn random_plan(g: &Generator, like: &PrunePlan, seed: u64) -> PrunePlan {
    let [_, c1, c2] = g.channels();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |c: usize, n: usize| {
        let mut units: Vec<usize> = (0..c).collect();
        units.shuffle(&mut rng);
        units.truncate(n);
        units.sort_unstable();
        units.into_iter().map(plain).collect::<Vec<_>>()
    };
    [pick(c1, like[0].len()), pick(c2, like[1].len())]
}

/// Baseline: as many units per layer as `like` removes, those whose producing 3x3 filter has
/// the smallest L1 norm (ties by index), no folding.
pub fn l1_plan(g: &Generator, like: &PrunePlan) -> PrunePlan {
    let pick = |conv: &Conv2d, n: usize| {
        let [c, cin, kh, kw] = conv.weight.dims();
        let w = to_vec(conv.weight.val());
        let per = cin * kh * kw;
        let mut norms: Vec<(f64, usize)> = (0..c)
            .map(|o| {
                let l1 = w[o * per..(o + 1) * per]
                    .iter()
                    .map(|v| v.abs() as f64)
                    .sum();
                (l1, o)
            })
            .collect();
        norms.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut units: Vec<usize> = norms.into_iter().take(n).map(|(_, o)| o).collect();
        units.sort_unstable();
        units.into_iter().map(plain).collect::<Vec<_>>()
    };
    [pick(&g.conv1, like[0].len()), pick(&g.conv2, like[1].len())]
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

/// A conv layer's weights `[out, in, 3, 3]` and bias on the host.
struct HostConv {
    w: Vec<f32>,
    b: Vec<f32>,
    out: usize,
    inp: usize,
}

impl HostConv {
    fn of(conv: &Conv2d) -> Self {
        let [out, inp, _, _] = conv.weight.dims();
        let b = conv
            .bias
            .as_ref()
            .map_or(vec![0.0; out], |b| to_vec(b.val()));
        Self {
            w: to_vec(conv.weight.val()),
            b,
            out,
            inp,
        }
    }

    fn tap(&self, o: usize, i: usize) -> std::ops::Range<usize> {
        let k = (o * self.inp + i) * 9;
        k..k + 9
    }

    /// Folds input channel `r` into `k` (`W[:, k] += a W[:, r]`, `bias += b sum W[:, r]`).
    fn fold(&mut self, r: usize, k: usize, a: f64, b: f64) {
        for o in 0..self.out {
            let taps: Vec<f32> = self.w[self.tap(o, r)].to_vec();
            let sum: f64 = taps.iter().map(|&v| v as f64).sum();
            let dst_range = self.tap(o, k);
            for (dst, src) in self.w[dst_range].iter_mut().zip(&taps) {
                *dst = (*dst as f64 + a * *src as f64) as f32;
            }
            self.b[o] = (self.b[o] as f64 + b * sum) as f32;
        }
    }

    /// Keeps only the output channels `keep_out` and input channels `keep_in`.
    fn select(&self, keep_out: &[usize], keep_in: &[usize]) -> Self {
        let mut w = Vec::with_capacity(keep_out.len() * keep_in.len() * 9);
        for &o in keep_out {
            for &i in keep_in {
                w.extend_from_slice(&self.w[self.tap(o, i)]);
            }
        }
        Self {
            w,
            b: keep_out.iter().map(|&o| self.b[o]).collect(),
            out: keep_out.len(),
            inp: keep_in.len(),
        }
    }

    fn write(self, conv: &mut Conv2d, device: &Device) {
        conv.weight = Param::from_data(TensorData::new(self.w, [self.out, self.inp, 3, 3]), device);
        conv.bias = Some(Param::from_data(
            TensorData::new(self.b, [self.out]),
            device,
        ));
    }
}

/// Keeps only channels `keep` of a BatchNorm.
fn select_bn(bn: &mut BatchNorm, keep: &[usize], device: &Device) {
    let pick = |t: Tensor<1>| -> Tensor<1> {
        let v = to_vec(t);
        let kept: Vec<f32> = keep.iter().map(|&i| v[i]).collect();
        Tensor::from_data(TensorData::new(kept, [keep.len()]), device)
    };
    bn.gamma = Param::from_tensor(pick(bn.gamma.val()));
    bn.beta = Param::from_tensor(pick(bn.beta.val()));
    bn.running_mean = burn::module::RunningState::new(pick(bn.running_mean.value()));
    bn.running_var = burn::module::RunningState::new(pick(bn.running_var.value()));
}

/// The generator with the units of `plan` removed; with `fold`, each removal that names a kept
/// unit is folded into the next layer first.
pub fn prune(g: &Generator, plan: &PrunePlan, fold: bool, device: &Device) -> Generator {
    let [_, c1, c2] = g.channels();
    let kept = |c: usize, rem: &[Removal]| -> Vec<usize> {
        (0..c)
            .filter(|u| !rem.iter().any(|r| r.unit == *u))
            .collect()
    };
    let (keep1, keep2) = (kept(c1, &plan[0]), kept(c2, &plan[1]));
    let mut conv2 = HostConv::of(&g.conv2);
    let mut conv_out = HostConv::of(&g.conv_out);
    if fold {
        for (next, removals) in [(&mut conv2, &plan[0]), (&mut conv_out, &plan[1])] {
            for r in removals {
                if let Some(k) = r.into {
                    next.fold(r.unit, k, r.slope, r.intercept);
                }
            }
        }
    }
    let mut p = g.clone();
    let conv1 = HostConv::of(&g.conv1);
    let all_in: Vec<usize> = (0..conv1.inp).collect();
    conv1.select(&keep1, &all_in).write(&mut p.conv1, device);
    select_bn(&mut p.bn1, &keep1, device);
    conv2.select(&keep2, &keep1).write(&mut p.conv2, device);
    select_bn(&mut p.bn2, &keep2, device);
    conv_out.select(&[0], &keep2).write(&mut p.conv_out, device);
    p
}

/// Trainable parameters of a generator (weights, biases, BatchNorm affine; not running stats).
pub fn generator_params(g: &Generator) -> usize {
    let [c0, c1, c2] = g.channels();
    let l1 = 100 * c0 * 64 + c0 * 64;
    let conv = |o: usize, i: usize| o * i * 9 + o;
    l1 + 2 * c0 + conv(c1, c0) + 2 * c1 + conv(c2, c1) + 2 * c2 + conv(1, c2)
}

/// The images of `g` (eval mode) for every batch of `z`: the reference the pruned generators
/// are measured against, computed once per curve.
pub fn reference_images(g: &Generator, z: &ZSource, device: &Device) -> Vec<Array4<f32>> {
    let layer = vec![GEN_LAYERS[2].to_string()];
    (0..z.batches())
        .map(|i| unroll_generator(g, &z.batch(i), &layer, device).remove(0))
        .collect()
}

/// Mean |reference - image(h)| over the codes of `z` (`reference` from [`reference_images`]
/// on the same `z`), and the same over the one-pixel border of the 32 x 32 image only.
pub fn image_change(
    reference: &[Array4<f32>],
    h: &Generator,
    z: &ZSource,
    device: &Device,
) -> (f64, f64) {
    let layer = vec![GEN_LAYERS[2].to_string()];
    let (mut all, mut border, mut n_all, mut n_border) = (0.0, 0.0, 0usize, 0usize);
    for (i, a) in reference.iter().enumerate() {
        let b = unroll_generator(h, &z.batch(i), &layer, device).remove(0);
        for ((idx, x), y) in a.indexed_iter().zip(b.iter()) {
            let d = (x - y).abs() as f64;
            all += d;
            n_all += 1;
            let (_, _, r, c) = idx;
            if r == 0 || c == 0 || r == 31 || c == 31 {
                border += d;
                n_border += 1;
            }
        }
    }
    (all / n_all.max(1) as f64, border / n_border.max(1) as f64)
}

/// One point of the pruning curve.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// `"duplicates"` (folded), `"random"` or `"l1"`.
    pub method: String,
    /// The threshold whose duplicate count this point matches.
    pub tau: f64,
    /// Units removed from block1 and block2.
    pub removed: [usize; 2],
    /// Trainable parameters left, and the fraction removed.
    pub params: usize,
    /// Fraction of the original parameters removed.
    pub params_removed: f64,
    /// Mean |delta image| on the fixed z against the unpruned generator.
    pub mean_abs_delta: f64,
    /// The same on the image's one-pixel border.
    pub border_abs_delta: f64,
    /// The pruned checkpoint.
    pub checkpoint: PathBuf,
}

/// The three plans (duplicates folded, random, smallest L1) at one threshold.
pub fn plans_at(
    g: &Generator,
    moments: &[UnitMoments; 2],
    tau: f64,
    seed: u64,
) -> Vec<(&'static str, PrunePlan, bool)> {
    let dup = duplicate_plan(moments, tau);
    let random = random_plan(g, &dup, seed);
    let l1 = l1_plan(g, &dup);
    vec![
        ("duplicates", dup, true),
        ("random", random, false),
        ("l1", l1, false),
    ]
}

/// `method,tau,removed_block1,removed_block2,params,params_removed,mean_abs_delta,
/// border_abs_delta,fd` rows; `fd` empty when not measured.
pub fn curve_csv(points: &[CurvePoint], fd: &[Option<f64>]) -> String {
    let mut s = String::from(
        "method,tau,removed_block1,removed_block2,params,params_removed,mean_abs_delta,\
         border_abs_delta,fd\n",
    );
    for (p, f) in points.iter().zip(fd.iter().chain(std::iter::repeat(&None))) {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            p.method,
            p.tau,
            p.removed[0],
            p.removed[1],
            p.params,
            p.params_removed,
            p.mean_abs_delta,
            p.border_abs_delta,
            f.map_or(String::new(), |v| v.to_string())
        ));
    }
    s
}

/// Where a pruned checkpoint of a curve goes: `DIR/checkpoints/{method}-tau{tau}.safetensors`.
pub fn curve_checkpoint(dir: &Path, method: &str, tau: f64) -> PathBuf {
    dir.join("checkpoints")
        .join(format!("{method}-tau{tau}.safetensors"))
}

/// Errors of pruning; each names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The quality evaluation failed.
    #[error(transparent)]
    Evaluate(#[from] crate::evaluate::EvaluateError),
    /// A file or option is wrong.
    #[error("{path}: {message}")]
    Input {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> PruneError + '_ {
    move |e| PruneError::Input {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// What `prune_curve` runs.
#[derive(Debug, Clone)]
pub struct CurveConfig {
    /// The generator to prune.
    pub checkpoint: PathBuf,
    /// Thresholds, each giving one duplicate plan and its two baselines.
    pub taus: Vec<f64>,
    /// Codes for the unit statistics and the image change (the reference z stream).
    pub samples: usize,
    /// A classifier checkpoint for FD-FMNIST of every pruned generator (optional).
    pub classifier: Option<PathBuf>,
    /// Generated images per generator for FD-FMNIST.
    pub quality_samples: usize,
    /// Fashion-MNIST folder (for FD-FMNIST).
    pub data_dir: PathBuf,
    /// BatchNorm eps for PyTorch checkpoints.
    pub default_bn_eps: f64,
    /// Seed of the random baseline.
    pub seed: u64,
    /// Replace an existing output folder.
    pub force: bool,
}

/// What `prune_curve` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct CurveReport {
    /// The unpruned generator's parameters.
    pub params: usize,
    /// FD-FMNIST of the unpruned generator (with a classifier).
    pub fd_unpruned: Option<f64>,
    /// Every pruned generator.
    pub points: Vec<CurvePoint>,
    /// FD-FMNIST of each point (with a classifier).
    pub fd: Vec<Option<f64>>,
}

/// Prunes `cfg.checkpoint` at every threshold by duplicates (folded), at random and by smallest
/// L1 norm (the same counts per layer), and writes into `out`: the pruned checkpoints
/// (`checkpoints/`), `prune_curve.csv`, `prune_curve.json`, `prune_curve.png` (mean |delta
/// image| and, with a classifier, FD-FMNIST against parameters removed), and `quality/` (the
/// evaluation). Nothing is left at `out` on error.
pub fn prune_curve(
    cfg: &CurveConfig,
    out: &Path,
    device: &Device,
) -> Result<CurveReport, PruneError> {
    if out.exists() && !cfg.force {
        return Err(PruneError::Input {
            path: out.to_path_buf(),
            message: "already exists: pass --force to replace it".into(),
        });
    }
    if cfg.samples == 0 || cfg.taus.iter().any(|t| !(0.0..=1.0).contains(t)) {
        return Err(PruneError::Input {
            path: cfg.checkpoint.clone(),
            message: format!(
                "need samples > 0 and every tau in [0, 1] (got {} samples, taus {:?})",
                cfg.samples, cfg.taus
            ),
        });
    }
    let (g, model) =
        crate::checkpoint::load_generator(&cfg.checkpoint, cfg.default_bn_eps, device)?;
    let tmp = crate::fsutil::temp_path_for(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(tmp.join("checkpoints")).map_err(io_err(&tmp))?;
    let z = ZSource::seeded(cfg.samples, 100.min(cfg.samples));
    let moments = unit_moments(&g, &z, device);
    let params = generator_params(&g);
    let reference = reference_images(&g, &z, device);
    let mut points = Vec::new();
    for &tau in &cfg.taus {
        for (method, plan, fold) in plans_at(&g, &moments, tau, cfg.seed) {
            let pruned = prune(&g, &plan, fold, device);
            let path = curve_checkpoint(&tmp, method, tau);
            crate::checkpoint::save_generator(&pruned, &model, &path)?;
            let (mean_abs_delta, border_abs_delta) = image_change(&reference, &pruned, &z, device);
            let left = generator_params(&pruned);
            points.push(CurvePoint {
                method: method.to_string(),
                tau,
                removed: [plan[0].len(), plan[1].len()],
                params: left,
                params_removed: 1.0 - left as f64 / params as f64,
                mean_abs_delta,
                border_abs_delta,
                checkpoint: curve_checkpoint(out, method, tau),
            });
        }
    }
    let (mut fd_unpruned, mut fd) = (None, vec![None; points.len()]);
    if let Some(cls) = &cfg.classifier {
        let mut generators = vec![cfg.checkpoint.clone()];
        generators.extend(
            points
                .iter()
                .map(|p| curve_checkpoint(&tmp, &p.method, p.tau)),
        );
        let ecfg = crate::evaluate::EvaluateConfig {
            generators,
            every_epoch: Vec::new(),
            classifier: cls.clone(),
            samples: cfg.quality_samples,
            data_dir: cfg.data_dir.clone(),
            default_bn_eps: cfg.default_bn_eps,
            force: true,
        };
        let q = crate::evaluate::evaluate(&ecfg, &tmp.join("quality"), device, &mut |_| {})?;
        let fds: Vec<f64> = q.generators.iter().map(|g| g.quality.fd).collect();
        fd_unpruned = fds.first().copied();
        fd = fds.iter().skip(1).map(|&v| Some(v)).collect();
    }
    let report = CurveReport {
        params,
        fd_unpruned,
        points,
        fd,
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = tmp.join(name);
        std::fs::write(&p, bytes).map_err(io_err(&p))
    };
    write(
        "prune_curve.csv",
        curve_csv(&report.points, &report.fd).as_bytes(),
    )?;
    let json = serde_json::json!({
        "kind": "unitmatch.prune_curve",
        "checkpoint": cfg.checkpoint,
        "samples": cfg.samples,
        "z": z.describe(),
        "seed": cfg.seed,
        "clusters": "units in index order; each kept unit removes every later unit with |r| >= tau (star clusters)",
        "folding": "W[:, keep] += a W[:, removed], bias += b sum(W[:, removed]); a, b: least squares of the removed map on the kept one",
        "report": report,
        "versions": crate::fsutil::versions(),
    });
    write(
        "prune_curve.json",
        serde_json::to_string_pretty(&json)
            .expect("serialisable")
            .as_bytes(),
    )?;
    let png = curve_png(&report).map_err(|m| PruneError::Input {
        path: tmp.join("prune_curve.png"),
        message: m,
    })?;
    write("prune_curve.png", &png)?;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io_err(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok(report)
}

/// Prunes one checkpoint by duplicates at `tau` (folded) and writes the narrower generator to
/// `out` (safetensors, written to a temporary name and renamed). Returns the plan and the
/// parameters before and after.
pub fn prune_checkpoint(
    checkpoint: &Path,
    tau: f64,
    samples: usize,
    default_bn_eps: f64,
    out: &Path,
    device: &Device,
) -> Result<(PrunePlan, [usize; 2]), PruneError> {
    if samples == 0 || !(0.0..=1.0).contains(&tau) {
        return Err(PruneError::Input {
            path: checkpoint.to_path_buf(),
            message: format!("need samples > 0 and tau in [0, 1] (got {samples}, {tau})"),
        });
    }
    let (g, model) = crate::checkpoint::load_generator(checkpoint, default_bn_eps, device)?;
    let z = ZSource::seeded(samples, 100.min(samples));
    let plan = duplicate_plan(&unit_moments(&g, &z, device), tau);
    let pruned = prune(&g, &plan, true, device);
    crate::checkpoint::save_generator(&pruned, &model, out)?;
    Ok((plan, [generator_params(&g), generator_params(&pruned)]))
}

/// Mean |delta image| (and FD-FMNIST, when measured) against the fraction of parameters
/// removed, one line per method.
pub fn curve_png(r: &CurveReport) -> Result<Vec<u8>, String> {
    let series = |value: &dyn Fn(usize) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        ["duplicates", "random", "l1"]
            .iter()
            .map(|m| {
                let mut pts: Vec<(f64, f64)> = r
                    .points
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.method == *m)
                    .filter_map(|(i, p)| value(i).map(|v| (p.params_removed, v)))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let name = if *m == "duplicates" {
                    "duplicates (folded)"
                } else {
                    m
                };
                (name.to_string(), pts)
            })
            .collect()
    };
    let delta = crate::render::LineChart {
        title: "Pruning: mean |delta image| on fixed z",
        x_label: "fraction of parameters removed",
        y_label: "mean |delta image|",
        series: series(&|i| Some(r.points[i].mean_abs_delta)),
        bands: Vec::new(),
    };
    if r.fd.iter().all(Option::is_none) {
        return delta.png(900, 500);
    }
    let fd = crate::render::LineChart {
        title: "Pruning: FD-FMNIST (lower is better)",
        x_label: "fraction of parameters removed",
        y_label: "FD-FMNIST",
        series: series(&|i| r.fd[i]),
        bands: Vec::new(),
    };
    // Two charts one above the other.
    let (a, b) = (delta.png(900, 450)?, fd.png(900, 450)?);
    let (a, b) = (
        image::load_from_memory(&a)
            .map_err(|e| e.to_string())?
            .to_rgb8(),
        image::load_from_memory(&b)
            .map_err(|e| e.to_string())?
            .to_rgb8(),
    );
    let mut both = image::RgbImage::new(900, 900);
    image::imageops::replace(&mut both, &a, 0, 0);
    image::imageops::replace(&mut both, &b, 0, 450);
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(both)
        .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LATENT_DIM, ModelConfig};

    fn tiny() -> Generator {
        Generator::new(
            &ModelConfig {
                width: 0.125,
                bn_eps: 0.8,
            },
            3,
            &Device::default(),
        )
    }

    /// Makes block1 unit `dst` an exact copy of unit `src` (its filter, bias and BatchNorm).
    fn duplicate_block1_unit(g: &mut Generator, src: usize, dst: usize) {
        let dev = Device::default();
        let mut conv = HostConv::of(&g.conv1);
        for i in 0..conv.inp {
            let (a, b) = (conv.tap(src, i), conv.tap(dst, i));
            let taps = conv.w[a].to_vec();
            conv.w[b].copy_from_slice(&taps);
        }
        conv.b[dst] = conv.b[src];
        conv.write(&mut g.conv1, &dev);
        let copy = |t: Tensor<1>| -> Tensor<1> {
            let mut v = to_vec(t);
            v[dst] = v[src];
            let n = v.len();
            Tensor::from_data(TensorData::new(v, [n]), &dev)
        };
        let bn = &mut g.bn1;
        bn.gamma = Param::from_tensor(copy(bn.gamma.val()));
        bn.beta = Param::from_tensor(copy(bn.beta.val()));
        bn.running_mean = burn::module::RunningState::new(copy(bn.running_mean.value()));
        bn.running_var = burn::module::RunningState::new(copy(bn.running_var.value()));
    }

    fn images(g: &Generator) -> Vec<f32> {
        let z = ZSource::seeded(8, 8).batch(0);
        assert_eq!(z.len(), 8 * LATENT_DIM);
        let dev = Device::default();
        unroll_generator(g, &z, &[GEN_LAYERS[2].to_string()], &dev)
            .remove(0)
            .into_raw_vec_and_offset()
            .0
    }

    #[test]
    fn folding_an_exact_duplicate_leaves_the_output_unchanged() {
        let dev = Device::default();
        let mut g = tiny();
        duplicate_block1_unit(&mut g, 2, 5);
        let m = unit_moments(&g, &ZSource::seeded(16, 8), &dev);
        assert!((m[0].corr(2, 5) - 1.0).abs() < 1e-9);
        let plan = duplicate_plan(&m, 0.999);
        assert_eq!(plan[0].len(), 1, "{plan:?}");
        assert_eq!((plan[0][0].unit, plan[0][0].into), (5, Some(2)));
        assert!((plan[0][0].slope - 1.0).abs() < 1e-6 && plan[0][0].intercept.abs() < 1e-6);
        let before = images(&g);
        let folded = prune(&g, &plan, true, &dev);
        assert_eq!(folded.channels()[1], g.channels()[1] - 1);
        let after = images(&folded);
        let worst = before
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "folded: largest change {worst}");
        // Without folding the duplicate's contribution is lost.
        let cut = images(&prune(&g, &plan, false, &dev));
        let worst = before
            .iter()
            .zip(&cut)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst > 1e-3, "unfolded removal changes the image: {worst}");
    }

    #[test]
    fn moments_equal_a_direct_computation() {
        let dev = Device::default();
        let g = tiny();
        let z = ZSource::seeded(10, 4);
        let m = unit_moments(&g, &z, &dev);
        // Direct two-pass mean and covariance of block2 units 0 and 3.
        let mut xs: Vec<(f64, f64)> = Vec::new();
        for i in 0..z.batches() {
            let a = unroll_generator(&g, &z.batch(i), &[GEN_LAYERS[1].to_string()], &dev).remove(0);
            let (b, _, h, w) = a.dim();
            for n in 0..b {
                for y in 0..h {
                    for x in 0..w {
                        xs.push((a[[n, 0, y, x]] as f64, a[[n, 3, y, x]] as f64));
                    }
                }
            }
        }
        let n = xs.len() as f64;
        let (m0, m3) = (
            xs.iter().map(|p| p.0).sum::<f64>() / n,
            xs.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let cov = xs.iter().map(|p| (p.0 - m0) * (p.1 - m3)).sum::<f64>() / n;
        assert_eq!(m[1].rows, n);
        assert!((m[1].mean[0] - m0).abs() < 1e-9);
        assert!((m[1].cov[[0, 3]] - cov).abs() < 1e-9 * cov.abs().max(1.0));
    }

    #[test]
    fn baselines_remove_as_many_units_and_params_count_shrinks() {
        let g = tiny();
        let like: PrunePlan = [vec![plain(1), plain(4)], vec![plain(0)]];
        let r = random_plan(&g, &like, 7);
        let l = l1_plan(&g, &like);
        for p in [&r, &l] {
            assert_eq!((p[0].len(), p[1].len()), (2, 1));
            assert!(p.iter().flatten().all(|x| x.into.is_none()));
        }
        let dev = Device::default();
        let pruned = prune(&g, &l, false, &dev);
        let [c0, c1, c2] = g.channels();
        assert_eq!(pruned.channels(), [c0, c1 - 2, c2 - 1]);
        assert!(generator_params(&pruned) < generator_params(&g));
        // The parameter count matches burn's own count of the trainable tensors.
        use burn::module::Module;
        let running = 2 * (c0 + c1 + c2);
        assert_eq!(generator_params(&g), g.num_params() - running);
    }
}

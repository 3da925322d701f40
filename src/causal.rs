//! Causal test of a match: ablate unit i of GAN A and unit j of GAN B on the same z and measure
//! how well the two pixel-change maps |delta image| agree, against control ablations.
//!
//! `causal(&CausalConfig { dir, .. }, out, &device, &mut |_| {})` reads a compare folder (the
//! top pairs of `table.npy`, the checkpoints named in `run.json`) and writes `causal.json` and
//! a figure per pair. The pieces: [`Unrolled::abs_change`] gives one ablation's |delta image|,
//! [`agreements`] streams the agreement of many unit pairs over z batches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::checkpoint::{CheckpointError, load_generator};
use crate::compare::{CompareError, read_inputs};
use crate::fsutil::{sha256_file, versions};
use crate::intervene::{
    EditLayer, InterveneError, Intervention, UnitRef, edit_map, to_vec, write_file, write_folder,
    z_tensor,
};
use crate::matching::{MatchError, MatchOptions, load_table, top_pairs};
use crate::model::{Generator, IMG_SIZE, LATENT_DIM, UpConvOps};
use crate::render::{GalleryRow, JET_NAME, Panel, gallery_png, jet};
use crate::similarity::SimilarityTable;
use crate::unroll::ZSource;

/// Pairs drawn as figures (`pair-01.png`, ...).
pub const FIGURE_PAIRS: usize = 4;
/// Latent codes (the first of the sample z) shown in each pair's figure.
pub const FIGURE_Z: usize = 4;

/// Errors of the causal test; each names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum CausalError {
    /// run.json could not be read.
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// The table could not be read.
    #[error(transparent)]
    Match(#[from] MatchError),
    /// A checkpoint could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Output or interventions failed.
    #[error(transparent)]
    Intervene(#[from] InterveneError),
    /// The comparison is not generator against generator.
    #[error(
        "{path}: network B is a {kind}; the causal test ablates units of two generators on the same z, so it needs a generator-vs-generator comparison"
    )]
    NotGenerators {
        /// run.json.
        path: PathBuf,
        /// What B is.
        kind: String,
    },
    /// The folder, a checkpoint or an option does not fit.
    #[error("{path}: {message}")]
    Input {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn input(path: &Path, message: impl Into<String>) -> CausalError {
    CausalError::Input {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A generator unrolled on one z batch (eval mode), ready to ablate any unit: only the layers
/// after the ablated one are recomputed.
pub struct Unrolled {
    block1: Tensor<4>,
    block2: Tensor<4>,
    image: Tensor<4>,
}

impl Unrolled {
    /// Runs `g` on `z` (`[n, 100]`).
    pub fn new(g: &Generator, z: Tensor<2>, ops: UpConvOps) -> Self {
        let block1 = g.eval_block1(z, ops);
        let block2 = g.eval_block2(block1.clone(), ops);
        let image = g.eval_image(block2.clone());
        Self {
            block1,
            block2,
            image,
        }
    }

    /// The unedited images, `[n, 1, 32, 32]` flattened.
    pub fn image(&self) -> Vec<f32> {
        to_vec(self.image.clone())
    }

    /// The images with `unit` set to 0 over its whole map, `[n, 1, 32, 32]`.
    pub fn ablated(&self, g: &Generator, unit: UnitRef, ops: UpConvOps) -> Tensor<4> {
        let iv = [Intervention::ablate(unit)];
        let block2 = match unit.layer {
            EditLayer::Block1 => {
                let b1 = edit_map(self.block1.clone(), EditLayer::Block1, &iv);
                g.eval_block2(b1, ops)
            }
            EditLayer::Block2 => edit_map(self.block2.clone(), EditLayer::Block2, &iv),
        };
        g.eval_image(block2)
    }

    /// `|ablated - unedited|` per pixel, `[n, 32 * 32]` flattened (row-major).
    pub fn abs_change(&self, g: &Generator, unit: UnitRef, ops: UpConvOps) -> Vec<f32> {
        to_vec((self.ablated(g, unit, ops) - self.image.clone()).abs())
    }
}

/// Streaming sums of one unit's change map over samples: per-pixel sums, the total and the
/// total of squares, in f64.
#[derive(Debug, Clone)]
pub struct ChangeSums {
    /// Samples added.
    pub n: usize,
    /// Per-pixel sums over samples.
    pub per_pixel: Vec<f64>,
    /// Sum of squares over samples and pixels.
    pub sum_sq: f64,
}

impl ChangeSums {
    /// Empty sums for maps of `pixels` pixels.
    pub fn new(pixels: usize) -> Self {
        Self {
            n: 0,
            per_pixel: vec![0.0; pixels],
            sum_sq: 0.0,
        }
    }

    /// Adds a batch `[n, pixels]` (row-major).
    pub fn add(&mut self, x: &[f32]) {
        let p = self.per_pixel.len();
        for row in x.chunks(p) {
            for (s, &v) in self.per_pixel.iter_mut().zip(row) {
                *s += f64::from(v);
            }
            self.sum_sq += row
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>();
            self.n += 1;
        }
    }

    fn sum(&self) -> f64 {
        self.per_pixel.iter().sum()
    }
}

/// `sum x * y` in f64.
pub fn dot(x: &[f32], y: &[f32]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

/// Agreement of two change maps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agreement {
    /// Pearson correlation over all (sample, pixel) rows; `None` when a map is constant (for
    /// example an ablation that changes nothing).
    pub pooled: Option<f64>,
    /// The same after removing each pixel's mean over samples: the part of the agreement that
    /// is specific to each z rather than to where on the canvas changes happen.
    pub within_pixel: Option<f64>,
}

/// Pearson correlation from centred co-moments; `None` when either variance vanishes (at or
/// below 1e-9 of the raw sum of squares: rounding).
fn corr(cxy: f64, cxx: f64, cyy: f64, sxx: f64, syy: f64) -> Option<f64> {
    if cxx <= 1e-9 * sxx || cyy <= 1e-9 * syy || cxx <= 0.0 || cyy <= 0.0 {
        return None;
    }
    Some((cxy / (cxx * cyy).sqrt()).clamp(-1.0, 1.0))
}

/// The agreement of maps `x` and `y` from their sums and `sxy = sum x * y`.
///
/// pooled: `r = Cxy / sqrt(Cxx Cyy)` with `Cxy = sxy - Sx Sy / (n P)`; within-pixel:
/// `Cxy = sxy - sum_p Sx_p Sy_p / n` (and likewise `Cxx`, `Cyy`).
pub fn agreement(x: &ChangeSums, y: &ChangeSums, sxy: f64) -> Agreement {
    let n = x.n as f64;
    let np = n * x.per_pixel.len() as f64;
    let (sx, sy) = (x.sum(), y.sum());
    let pooled = corr(
        sxy - sx * sy / np,
        x.sum_sq - sx * sx / np,
        y.sum_sq - sy * sy / np,
        x.sum_sq,
        y.sum_sq,
    );
    let between = |a: &ChangeSums, b: &ChangeSums| dot_f64(&a.per_pixel, &b.per_pixel) / n;
    let within_pixel = corr(
        sxy - between(x, y),
        x.sum_sq - between(x, x),
        y.sum_sq - between(y, y),
        x.sum_sq,
        y.sum_sq,
    );
    Agreement {
        pooled,
        within_pixel,
    }
}

fn dot_f64(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Agreement of each `(unit of A, unit of B)` pair: A ablated on `z_a`, B on `z_b` (the causal
/// test passes the same z; the tests pass independent z). Streams over the z batches; each
/// needed unit is ablated once per batch, whatever the number of pairs it is in. `on_batch(done,
/// total)` reports progress.
///
/// Panics if `z_a` and `z_b` differ in size or batching, or a unit does not exist.
#[allow(clippy::too_many_arguments)]
pub fn agreements(
    ga: &Generator,
    gb: &Generator,
    z_a: &ZSource,
    z_b: &ZSource,
    pairs: &[UnitPair],
    ops: UpConvOps,
    device: &Device,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Vec<Agreement> {
    assert_eq!(
        (z_a.samples(), z_a.batch_size()),
        (z_b.samples(), z_b.batch_size()),
        "z_a and z_b must have the same size and batching"
    );
    let pixels = IMG_SIZE * IMG_SIZE;
    let units_a: BTreeSet<UnitRef> = pairs.iter().map(|p| p.0).collect();
    let units_b: BTreeSet<UnitRef> = pairs.iter().map(|p| p.1).collect();
    let mut sums_a: BTreeMap<UnitRef, ChangeSums> = units_a
        .iter()
        .map(|&u| (u, ChangeSums::new(pixels)))
        .collect();
    let mut sums_b: BTreeMap<UnitRef, ChangeSums> = units_b
        .iter()
        .map(|&u| (u, ChangeSums::new(pixels)))
        .collect();
    let mut sxy = vec![0.0f64; pairs.len()];
    let batches = z_a.batches();
    for i in 0..batches {
        let ua = Unrolled::new(ga, z_tensor(&z_a.batch(i), device), ops);
        let ub = Unrolled::new(gb, z_tensor(&z_b.batch(i), device), ops);
        let mut changes_a: BTreeMap<UnitRef, Vec<f32>> = BTreeMap::new();
        for &u in &units_a {
            let x = ua.abs_change(ga, u, ops);
            sums_a.get_mut(&u).expect("unit listed").add(&x);
            changes_a.insert(u, x);
        }
        for &u in &units_b {
            let y = ub.abs_change(gb, u, ops);
            sums_b.get_mut(&u).expect("unit listed").add(&y);
            for (k, _) in pairs.iter().enumerate().filter(|(_, p)| p.1 == u) {
                sxy[k] += dot(&changes_a[&pairs[k].0], &y);
            }
        }
        on_batch(i + 1, batches);
    }
    pairs
        .iter()
        .zip(sxy)
        .map(|((a, b), s)| agreement(&sums_a[a], &sums_b[b], s))
        .collect()
}

/// Inputs of the causal test.
#[derive(Debug, Clone)]
pub struct CausalConfig {
    /// A compare folder (generator vs generator).
    pub dir: PathBuf,
    /// Number of top pairs (by signed table score, among pairs of block1/block2 units) tested.
    pub top: usize,
    /// Latent codes (the reference stream: batch i from seed 5555 + i).
    pub samples: usize,
    /// Codes per batch.
    pub batch: usize,
    /// Draws per control and pair.
    pub controls: usize,
    /// Seed of the control draws.
    pub seed: u64,
    /// How upsample + conv is computed.
    pub ops: UpConvOps,
    /// Replace an existing output folder.
    pub force: bool,
}

/// One control draw: the two ablated units and their agreement.
#[derive(Debug, Clone, Serialize)]
pub struct ControlDraw {
    /// Unit of A.
    pub a: UnitRef,
    /// Unit of B.
    pub b: UnitRef,
    /// Agreement of their change maps.
    pub agreement: Agreement,
}

/// A control distribution against an observed agreement.
#[derive(Debug, Clone, Serialize)]
pub struct ControlStats {
    /// What was drawn.
    pub kind: &'static str,
    /// Draws with a defined pooled agreement (the others are listed with `null`).
    pub n: usize,
    /// Mean of the pooled agreements.
    pub mean: Option<f64>,
    /// Their sample standard deviation (n - 1).
    pub sd: Option<f64>,
    /// `(1 + #{control >= observed}) / (1 + n)`; `None` when the observed agreement or every
    /// control is undefined.
    pub p: Option<f64>,
    /// Mean of the within-pixel agreements.
    pub mean_within_pixel: Option<f64>,
    /// The draws.
    pub draws: Vec<ControlDraw>,
}

/// The causal test of one matched pair.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    /// 1-based rank among the tested pairs (by table score).
    pub rank: usize,
    /// Unit i of A.
    pub a: UnitRef,
    /// Unit j of B.
    pub b: UnitRef,
    /// Flat indices in the table (row, column).
    pub flat: (usize, usize),
    /// The table's score of the pair.
    pub score: f64,
    /// Agreement of the two change maps.
    pub agreement: Agreement,
    /// Control (a): j ablated in B against a random other unit of i's layer in A.
    pub control_random_a: ControlStats,
    /// Control (b): random pairs of the same layer pair that are not among the tested pairs.
    pub control_unmatched: ControlStats,
    /// The pair's figure, if drawn.
    pub figure: Option<String>,
}

/// Means over the tested pairs.
#[derive(Debug, Clone, Serialize)]
pub struct CausalSummary {
    /// Pairs tested.
    pub pairs: usize,
    /// Mean pooled agreement of the tested pairs.
    pub mean_agreement: Option<f64>,
    /// Mean over all draws of control (a).
    pub mean_control_random_a: Option<f64>,
    /// Mean over all draws of control (b).
    pub mean_control_unmatched: Option<f64>,
    /// Mean within-pixel agreement of the tested pairs.
    pub mean_agreement_within_pixel: Option<f64>,
    /// Mean within-pixel agreement over all draws of control (a).
    pub mean_control_random_a_within_pixel: Option<f64>,
    /// Mean within-pixel agreement over all draws of control (b).
    pub mean_control_unmatched_within_pixel: Option<f64>,
    /// Pairs whose control-(a) p is at most 0.05.
    pub pairs_p_random_a_le_005: usize,
    /// Pairs whose control-(b) p is at most 0.05.
    pub pairs_p_unmatched_le_005: usize,
    /// The smallest attainable p, `1 / (1 + controls)`.
    pub min_attainable_p: f64,
}

/// What the causal test returns (and writes to causal.json).
#[derive(Debug, Clone, Serialize)]
pub struct CausalReport {
    /// Per tested pair.
    pub pairs: Vec<PairResult>,
    /// Means.
    pub summary: CausalSummary,
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

fn control_stats(
    kind: &'static str,
    draws: Vec<ControlDraw>,
    observed: Option<f64>,
) -> ControlStats {
    let vals: Vec<f64> = draws.iter().filter_map(|d| d.agreement.pooled).collect();
    let n = vals.len();
    let m = mean(vals.iter().copied());
    let sd = m
        .filter(|_| n > 1)
        .map(|m| (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    let p = observed
        .filter(|_| n > 0)
        .map(|o| (1 + vals.iter().filter(|&&v| v >= o).count()) as f64 / (1 + n) as f64);
    ControlStats {
        kind,
        n,
        mean: m,
        sd,
        p,
        mean_within_pixel: mean(draws.iter().filter_map(|d| d.agreement.within_pixel)),
        draws,
    }
}

/// A pair to test: its units, flat indices and table score.
struct Tested {
    a: UnitRef,
    b: UnitRef,
    flat: (usize, usize),
    score: f64,
}

/// A unit of A and a unit of B.
pub type UnitPair = (UnitRef, UnitRef);

/// The `top` live pairs by signed table score whose units are both in block1 or block2 (the
/// layers that can be ablated).
fn tested_pairs(table: &SimilarityTable, top: usize) -> Vec<Tested> {
    let unit = |layer: &str, channel: usize| {
        EditLayer::from_name(layer).map(|layer| UnitRef { layer, channel })
    };
    top_pairs(table, usize::MAX, &MatchOptions::default())
        .into_iter()
        .filter_map(|p| {
            Some(Tested {
                a: unit(&p.layer_a, p.channel_a)?,
                b: unit(&p.layer_b, p.channel_b)?,
                flat: (p.a, p.b),
                score: p.score,
            })
        })
        .take(top)
        .collect()
}

/// For each tested pair `(i, j)`, `n` draws (with replacement) of control (a), `(k, j)` with `k`
/// another unit of i's layer, and of control (b), a pair of the same layer pair that is not
/// among the tested pairs; one ChaCha8 stream from `seed`, pair by pair, (a) before (b). A
/// control with no candidate (a one-unit layer) gets no draws.
fn draw_controls(
    tested: &[Tested],
    ga: &Generator,
    gb: &Generator,
    n: usize,
    seed: u64,
) -> Vec<(Vec<UnitPair>, Vec<UnitPair>)> {
    let top_set: BTreeSet<UnitPair> = tested.iter().map(|t| (t.a, t.b)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layer_units = |layer: EditLayer, g: &Generator| -> Vec<UnitRef> {
        (0..layer.channels(g))
            .map(|channel| UnitRef { layer, channel })
            .collect()
    };
    let mut draw = |from: &[UnitPair]| -> Vec<UnitPair> {
        if from.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|_| from[rng.random_range(0..from.len())])
            .collect()
    };
    let mut out = Vec::new();
    for t in tested {
        let others: Vec<UnitPair> = layer_units(t.a.layer, ga)
            .into_iter()
            .filter(|&u| u != t.a)
            .map(|u| (u, t.b))
            .collect();
        let unmatched: Vec<UnitPair> = layer_units(t.a.layer, ga)
            .into_iter()
            .flat_map(|u| layer_units(t.b.layer, gb).into_iter().map(move |v| (u, v)))
            .filter(|p| !top_set.contains(p))
            .collect();
        let ca = draw(&others);
        out.push((ca, draw(&unmatched)));
    }
    out
}

/// Means over the tested pairs and over all control draws.
fn summarise(pairs: &[PairResult], controls: usize) -> CausalSummary {
    let all_draws = |f: fn(&PairResult) -> &ControlStats, within: bool| {
        mean(pairs.iter().flat_map(|p| {
            f(p).draws.iter().filter_map(move |d| {
                if within {
                    d.agreement.within_pixel
                } else {
                    d.agreement.pooled
                }
            })
        }))
    };
    let count_p = |f: fn(&PairResult) -> &ControlStats| {
        pairs
            .iter()
            .filter(|p| f(p).p.is_some_and(|p| p <= 0.05))
            .count()
    };
    CausalSummary {
        pairs: pairs.len(),
        mean_agreement: mean(pairs.iter().filter_map(|p| p.agreement.pooled)),
        mean_control_random_a: all_draws(|p| &p.control_random_a, false),
        mean_control_unmatched: all_draws(|p| &p.control_unmatched, false),
        mean_agreement_within_pixel: mean(pairs.iter().filter_map(|p| p.agreement.within_pixel)),
        mean_control_random_a_within_pixel: all_draws(|p| &p.control_random_a, true),
        mean_control_unmatched_within_pixel: all_draws(|p| &p.control_unmatched, true),
        pairs_p_random_a_le_005: count_p(|p| &p.control_random_a),
        pairs_p_unmatched_le_005: count_p(|p| &p.control_unmatched),
        min_attainable_p: 1.0 / (1.0 + controls as f64),
    }
}

/// Finds a checkpoint named in run.json and checks it is the file that was compared.
fn checkpoint(run: &Path, (path, sha): &(PathBuf, String)) -> Result<PathBuf, CausalError> {
    if !path.exists() {
        return Err(input(
            path,
            format!(
                "checkpoint named in {} not found (paths are relative to where compare ran)",
                run.display()
            ),
        ));
    }
    let found = sha256_file(path).map_err(|e| input(path, e.to_string()))?;
    if &found != sha {
        return Err(input(
            path,
            format!(
                "SHA-256 {found} differs from {sha} recorded in {}: the checkpoint changed since the comparison",
                run.display()
            ),
        ));
    }
    Ok(path.clone())
}

/// The causal test (see the module docs): writes `out/causal.json` and `out/pair-NN.png` for the
/// first [`FIGURE_PAIRS`] pairs, atomically (temporary folder, then rename).
pub fn causal(
    cfg: &CausalConfig,
    out: &Path,
    device: &Device,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<CausalReport, CausalError> {
    if out.exists() && !cfg.force {
        return Err(InterveneError::OutputExists(out.to_path_buf()).into());
    }
    if cfg.samples == 0 || cfg.top == 0 {
        return Err(input(&cfg.dir, "--samples and --top must be positive"));
    }
    let run = cfg.dir.join("run.json");
    let (inputs, shard) = read_inputs(&cfg.dir)?;
    if inputs.network_b != "generator" {
        return Err(CausalError::NotGenerators {
            path: run,
            kind: inputs.network_b,
        });
    }
    if shard.is_some() {
        return Err(input(&cfg.dir, "a shard folder: merge the shards first"));
    }
    let table = load_table(&cfg.dir)?;
    let (path_a, path_b) = (checkpoint(&run, &inputs.a)?, checkpoint(&run, &inputs.b)?);
    let (ga, _) = load_generator(&path_a, inputs.model_a.bn_eps, device)?;
    let (gb, _) = load_generator(&path_b, inputs.model_b.bn_eps, device)?;
    let tested = tested_pairs(&table, cfg.top);
    if tested.is_empty() {
        return Err(input(
            &cfg.dir,
            "no live pair of block1/block2 units in the table (the causal test ablates units of block1 and block2 only)",
        ));
    }
    for t in &tested {
        for (u, g, p) in [(t.a, &ga, &path_a), (t.b, &gb, &path_b)] {
            if u.channel >= u.layer.channels(g) {
                return Err(input(p, format!("has no unit {u}, which the table lists")));
            }
        }
    }
    let controls = draw_controls(&tested, &ga, &gb, cfg.controls, cfg.seed);
    let mut all: Vec<UnitPair> = tested.iter().map(|t| (t.a, t.b)).collect();
    for (ca, cb) in &controls {
        all.extend(ca.iter().chain(cb));
    }
    let unique: Vec<UnitPair> = all
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let z = ZSource::seeded(cfg.samples, cfg.batch);
    let values = agreements(&ga, &gb, &z, &z, &unique, cfg.ops, device, on_batch);
    let lookup: BTreeMap<UnitPair, Agreement> = unique.into_iter().zip(values).collect();
    let draws = |list: &[UnitPair]| -> Vec<ControlDraw> {
        list.iter()
            .map(|&(a, b)| ControlDraw {
                a,
                b,
                agreement: lookup[&(a, b)],
            })
            .collect()
    };
    let pairs: Vec<PairResult> = tested
        .iter()
        .zip(&controls)
        .enumerate()
        .map(|(k, (t, (ca, cb)))| {
            let agreement = lookup[&(t.a, t.b)];
            PairResult {
                rank: k + 1,
                a: t.a,
                b: t.b,
                flat: t.flat,
                score: t.score,
                agreement,
                control_random_a: control_stats(
                    "B's unit j against a random other unit of i's layer in A",
                    draws(ca),
                    agreement.pooled,
                ),
                control_unmatched: control_stats(
                    "random (A, B) unit pairs of the same layer pair, not among the tested pairs",
                    draws(cb),
                    agreement.pooled,
                ),
                figure: (k < FIGURE_PAIRS).then(|| format!("pair-{:02}.png", k + 1)),
            }
        })
        .collect();
    let summary = summarise(&pairs, cfg.controls);
    let report = CausalReport { pairs, summary };
    let fig_z: Vec<f32> = {
        let first = z.batch(0);
        let n = FIGURE_Z.min(first.len() / LATENT_DIM);
        first[..n * LATENT_DIM].to_vec()
    };
    let mut figures = Vec::new();
    for p in report.pairs.iter().filter(|p| p.figure.is_some()) {
        let (png, max) = pair_figure(&ga, &gb, &fig_z, p, cfg.ops, device)?;
        figures.push((p.figure.clone().expect("filtered"), png, max));
    }
    let json = serde_json::json!({
        "kind": "unitmatch.causal",
        "compare": cfg.dir,
        "checkpoints": {"a": inputs.a, "b": inputs.b},
        "method": {
            "ablation": "unit set to 0 over its whole map, right after its block's LeakyReLU, eval mode",
            "agreement": "Pearson correlation of |delta image| of A and of B over all samples and pixels (same z); within_pixel: the same after removing each pixel's mean over samples",
            "pairs": "top pairs by signed table score among live block1/block2 units",
            "controls": cfg.controls,
            "control_seed": cfg.seed,
            "p": "(1 + #{controls >= observed}) / (1 + n)",
        },
        "z": z.describe(),
        "ops": cfg.ops,
        "figures": figures.iter().map(|(name, _, max)| serde_json::json!({
            "file": name,
            "z": format!("the first {FIGURE_Z} codes"),
            "panels": "per row (one z): A before, A after, A |delta|, B before, B after, B |delta|",
            "colormap": JET_NAME,
            "delta_scale": [0.0, max],
        })).collect::<Vec<_>>(),
        "pairs": report.pairs,
        "summary": report.summary,
        "versions": versions(),
    });
    write_folder::<CausalError>(out, cfg.force, |dir| {
        for (name, png, _) in &figures {
            write_file(dir, name, png)?;
        }
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        write_file(dir, "causal.json", text.as_bytes())?;
        Ok(())
    })?;
    Ok(report)
}

/// One pair's figure: a row per z of A before / after / |delta|, B before / after / |delta|;
/// |delta| in jet on one scale for the whole figure, 0 to its largest change (returned).
fn pair_figure(
    ga: &Generator,
    gb: &Generator,
    z: &[f32],
    p: &PairResult,
    ops: UpConvOps,
    device: &Device,
) -> Result<(Vec<u8>, f32), CausalError> {
    let per = IMG_SIZE * IMG_SIZE;
    let side = |g: &Generator, u: UnitRef| {
        let un = Unrolled::new(g, z_tensor(z, device), ops);
        (un.image(), to_vec(un.ablated(g, u, ops)))
    };
    let (a0, a1) = side(ga, p.a);
    let (b0, b1) = side(gb, p.b);
    let delta = |x: &[f32], y: &[f32]| -> Vec<f32> {
        x.iter().zip(y).map(|(a, b)| (a - b).abs()).collect()
    };
    let (da, db) = (delta(&a0, &a1), delta(&b0, &b1));
    let max = da.iter().chain(&db).copied().fold(0.0f32, f32::max);
    let heat = |d: &[f32]| {
        Panel::Rgb(
            d.iter()
                .flat_map(|&v| jet(if max > 0.0 { f64::from(v / max) } else { 0.0 }))
                .collect(),
        )
    };
    let r = p
        .agreement
        .pooled
        .map_or("undefined".to_string(), |r| format!("{r:.3}"));
    let rows: Vec<GalleryRow> = (0..a0.len() / per)
        .map(|k| {
            let s = k * per..(k + 1) * per;
            GalleryRow {
                title: format!(
                    "pair {}: A {} / B {} off (table r {:.3}, agreement {r}), z #{k}",
                    p.rank, p.a, p.b, p.score
                ),
                panels: vec![
                    Panel::from_image(&a0[s.clone()]),
                    Panel::from_image(&a1[s.clone()]),
                    heat(&da[s.clone()]),
                    Panel::from_image(&b0[s.clone()]),
                    Panel::from_image(&b1[s.clone()]),
                    heat(&db[s]),
                ],
            }
        })
        .collect();
    let captions = [
        "A before",
        "A after",
        "A |delta|",
        "B before",
        "B after",
        "B |delta|",
    ];
    let png = gallery_png(&rows, IMG_SIZE, 4, &captions).map_err(|m| CausalError::Input {
        path: PathBuf::from(p.figure.clone().unwrap_or_default()),
        message: m,
    })?;
    Ok((png, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow, obviously right Pearson over all values.
    fn pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let cxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let cyy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        cxy / (cxx * cyy).sqrt()
    }

    #[test]
    fn agreement_matches_the_direct_formulas() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (n, p) = (7, 5);
        let x: Vec<f32> = (0..n * p).map(|_| rng.random_range(0.0..1.0)).collect();
        let y: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(k, &v)| 0.5 * v + (k % p) as f32 * 0.1 + rng.random_range(0.0..0.3))
            .collect();
        let (mut sx, mut sy) = (ChangeSums::new(p), ChangeSums::new(p));
        sx.add(&x[..3 * p]);
        sx.add(&x[3 * p..]);
        sy.add(&y);
        let a = agreement(&sx, &sy, dot(&x, &y));
        let (xf, yf): (Vec<f64>, Vec<f64>) = (
            x.iter().map(|&v| f64::from(v)).collect(),
            y.iter().map(|&v| f64::from(v)).collect(),
        );
        assert!((a.pooled.unwrap() - pearson(&xf, &yf)).abs() < 1e-12);
        // Within-pixel: centre each pixel's column over samples, then Pearson of the rest.
        let centre = |v: &[f64]| -> Vec<f64> {
            let mut c = v.to_vec();
            for q in 0..p {
                let m = (0..n).map(|s| v[s * p + q]).sum::<f64>() / n as f64;
                (0..n).for_each(|s| c[s * p + q] -= m);
            }
            c
        };
        let w = pearson(&centre(&xf), &centre(&yf));
        assert!((a.within_pixel.unwrap() - w).abs() < 1e-12);
        // A map that does not change is undefined, not NaN.
        let zero = ChangeSums::new(p);
        let mut z = zero.clone();
        z.add(&vec![0.0; n * p]);
        assert_eq!(agreement(&sx, &z, 0.0).pooled, None);
    }

    #[test]
    fn control_p_counts_ties_and_the_observed() {
        let d = |v: f64| ControlDraw {
            a: "block1:0".parse().unwrap(),
            b: "block1:1".parse().unwrap(),
            agreement: Agreement {
                pooled: Some(v),
                within_pixel: None,
            },
        };
        let s = control_stats("t", vec![d(0.1), d(0.5), d(0.3), d(0.5)], Some(0.5));
        assert_eq!(s.n, 4);
        assert!((s.p.unwrap() - 3.0 / 5.0).abs() < 1e-12);
        assert!((s.mean.unwrap() - 0.35).abs() < 1e-12);
        let s = control_stats("t", vec![], Some(0.5));
        assert_eq!((s.p, s.mean, s.sd), (None, None, None));
    }
}

//! Null models and significance tests for a comparison (`compare --null random-init,permuted-z`).
//!
//! A null model replaces network B by something that cannot truly correspond to A, and the
//! comparison is repeated for `draws` independent draws of it:
//!
//! - **random-init** ([`NullKind::RandomInit`]): B is replaced by a generator of the same
//!   architecture and width, freshly initialised with seed [`random_init_seed`]`(d) =
//!   1_000_003 + d` for draw `d`, and never trained. Its BatchNorm running statistics are those
//!   of a fresh layer (mean 0, variance 1), which is what eval mode uses: this is the null as
//!   specified (an untrained network of the same architecture), not a "trained on nothing" one.
//! - **permuted-z** ([`NullKind::PermutedZ`]): B's activations are paired with a random
//!   permutation of the samples within each z batch ([`permutation`]: ChaCha8 seeded with
//!   `2_000_003 + d`, stream = batch index, then a Fisher-Yates shuffle). This breaks the
//!   sample-to-sample correspondence but keeps every unit's marginal distribution and spatial
//!   structure. With batches of one sample the permutation is the identity (no null at all);
//!   small batches give a weaker null.
//!
//! For every layer pair (layer of A x layer of B) two statistics of the table block are tested
//! ([`block_statistics`]):
//!
//! - mean best-match score: `best = (1/|LA|) sum_{i in LA} max_{j in LB} s(i, j)`;
//! - mean assigned score: `assigned = (1/K) sum_{(i,j) in H} s(i, j)`, `H` the one-to-one
//!   assignment of the block maximising the total ([`hungarian_max`]), `K = min(|LA|, |LB|)`.
//!
//! With null values `v_1..v_D` ([`NullStatistic`]): `mean = (1/D) sum v_d`,
//! `sd = sqrt(sum (v_d - mean)^2 / (D - 1))`, `z = (observed - mean) / sd` (none if `sd == 0`
//! or `D < 2`), and the empirical p-value `p = (1 + #{d : v_d >= observed}) / (1 + D)`.
//!
//! Unit pairs: each unit `i` of A is paired with its best match `j` in the block, and the pair is
//! tested against the null distribution of the block MAXIMUM `M_d = max_{i,j} s_d(i, j)`:
//! `p(i, j) = (1 + #{d : M_d >= s(i, j)}) / (1 + D)`, significant when `p <= alpha`. Comparing
//! every pair with the maximum over all pairs of the null block is the max-statistic
//! (Westfall-Young style) correction: it controls the family-wise error over the block's pairs.
//! The smallest attainable p-value is `1 / (1 + D)`, so with `D = 5` draws nothing can be
//! significant at 0.05; raise `--null-draws`.
//!
//! Cost: every draw of every null keeps its own [`MomentAccumulator`], so a comparison with
//! `k` nulls of `D` draws costs about `1 + k D` times a plain one.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array4, ArrayView4, Axis, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::matching::hungarian_max;
use crate::similarity::{Measure, SimilarityTable, cross_table};
use crate::stats::{LayerSpec, MomentAccumulator, StatsError};

/// Seed of the random-init null's draw 0; draw `d` uses `RANDOM_INIT_SEED_BASE + d`.
pub const RANDOM_INIT_SEED_BASE: u64 = 1_000_003;
/// Seed of the permuted-z null's draw 0; draw `d` uses `PERMUTATION_SEED_BASE + d` (stream =
/// batch index).
pub const PERMUTATION_SEED_BASE: u64 = 2_000_003;
/// The multiple-testing correction applied to unit pairs, as written in significance.json.
pub const CORRECTION: &str = "max-statistic over the layer pair's unit pairs (family-wise)";

/// A null model for network B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NullKind {
    /// B replaced by freshly initialised, untrained generators of the same architecture.
    #[serde(rename = "random-init")]
    RandomInit,
    /// B's activations paired with a permutation of the samples within each z batch.
    #[serde(rename = "permuted-z")]
    PermutedZ,
}

impl NullKind {
    /// The command-line name: `random-init` or `permuted-z`.
    pub fn name(self) -> &'static str {
        match self {
            Self::RandomInit => "random-init",
            Self::PermutedZ => "permuted-z",
        }
    }

    /// One sentence describing the null and its seeds, for significance.json.
    pub fn description(self) -> &'static str {
        match self {
            Self::RandomInit => {
                "B replaced by an untrained generator of the same architecture and width, \
                 initialised with seed 1000003 + draw (eval mode: fresh BatchNorm running \
                 statistics, mean 0 / variance 1)"
            }
            Self::PermutedZ => {
                "B's activations paired with a random permutation of the samples within each z \
                 batch (ChaCha8 seed 2000003 + draw, stream = batch index, Fisher-Yates shuffle)"
            }
        }
    }
}

impl fmt::Display for NullKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown null model name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown null model `{0}` (expected random-init or permuted-z)")]
pub struct UnknownNull(pub String);

impl FromStr for NullKind {
    type Err = UnknownNull;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "random-init" => Ok(Self::RandomInit),
            "permuted-z" => Ok(Self::PermutedZ),
            other => Err(UnknownNull(other.to_string())),
        }
    }
}

/// Parses a comma-separated list of null names, e.g. `random-init,permuted-z` (duplicates
/// removed, order kept).
pub fn parse_null_list(s: &str) -> Result<Vec<NullKind>, UnknownNull> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let k: NullKind = part.parse()?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Which nulls to run and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NullOptions {
    /// Null models (empty: no significance testing).
    pub kinds: Vec<NullKind>,
    /// Draws per null model `D`.
    pub draws: usize,
    /// Level at which unit pairs are flagged significant.
    pub alpha: f64,
}

impl NullOptions {
    /// No null models.
    pub fn none() -> Self {
        Self {
            kinds: Vec::new(),
            draws: 0,
            alpha: 0.05,
        }
    }

    /// True when at least one null model is requested.
    pub fn enabled(&self) -> bool {
        !self.kinds.is_empty()
    }

    /// The smallest p-value `D` draws can give: `1 / (1 + D)`.
    pub fn min_attainable_p(&self) -> f64 {
        1.0 / (1.0 + self.draws as f64)
    }

    /// Checks `draws >= 1` and `0 < alpha < 1` when enabled.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        if self.draws == 0 {
            return Err("--null-draws must be at least 1".into());
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(format!("--alpha {} must be in (0, 1)", self.alpha));
        }
        Ok(())
    }
}

/// Generator seed of draw `d` of the random-init null: `1_000_003 + d`.
pub fn random_init_seed(draw: usize) -> u64 {
    RANDOM_INIT_SEED_BASE + draw as u64
}

/// The permutation of `n` samples used by draw `draw` of the permuted-z null on z batch
/// `batch`: ChaCha8 seeded with `2_000_003 + draw`, stream `batch`, shuffling `0..n`.
/// Sample `k` of A is paired with sample `perm[k]` of B.
pub fn permutation(draw: usize, batch: usize, n: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(PERMUTATION_SEED_BASE + draw as u64);
    rng.set_stream(batch as u64);
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rng);
    perm
}

/// B's activations of one batch with the samples (axis 0) reordered: `out[k] = acts[perm[k]]`,
/// `perm` = [`permutation`]`(draw, batch, n)`.
pub fn permuted_acts(acts: &[Array4<f32>], draw: usize, batch: usize) -> Vec<Array4<f32>> {
    let n = acts.first().map_or(0, |a| a.len_of(Axis(0)));
    let perm = permutation(draw, batch, n);
    acts.iter().map(|a| a.select(Axis(0), &perm)).collect()
}

/// The accumulators of one null model: one [`MomentAccumulator`] per draw, over A's layers then
/// the null-B layers (the same layout as the observed comparison).
#[derive(Debug, Clone)]
pub struct NullAccumulators {
    /// The null model.
    pub kind: NullKind,
    /// One accumulator per draw.
    pub draws: Vec<MomentAccumulator>,
}

impl NullAccumulators {
    /// `draws` empty accumulators with layout `specs`.
    pub fn new(kind: NullKind, draws: usize, specs: &[LayerSpec]) -> Result<Self, StatsError> {
        let draws = (0..draws)
            .map(|_| MomentAccumulator::new(specs.to_vec()))
            .collect::<Result<_, _>>()?;
        Ok(Self { kind, draws })
    }

    /// Adds one batch to every draw: A's activations `a` (shared) and, for draw `d`,
    /// the null-B activations `b_for_draw(d)`.
    pub fn add_batch(
        &mut self,
        a: &[Array4<f32>],
        b_for_draw: &mut dyn FnMut(usize) -> Vec<Array4<f32>>,
    ) -> Result<(), StatsError> {
        for (d, acc) in self.draws.iter_mut().enumerate() {
            let b = b_for_draw(d);
            let views: Vec<ArrayView4<f32>> = a.iter().chain(&b).map(|x| x.view()).collect();
            acc.add_batch(&views)?;
        }
        Ok(())
    }

    /// The cross table (A x null B) of every draw.
    pub fn tables(&self, measure: Measure) -> Vec<SimilarityTable> {
        self.draws
            .iter()
            .map(|acc| cross_table(acc, measure))
            .collect()
    }
}

/// The tested statistics of one layer-pair block of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockStatistics {
    /// Layer of A (rows).
    pub layer_a: String,
    /// Layer of B (columns).
    pub layer_b: String,
    /// `(1/|LA|) sum_i max_j s(i, j)` over the block.
    pub mean_best: f64,
    /// Mean score of the block's Hungarian assignment, `(1/K) sum_{(i,j) in H} s(i, j)`.
    pub mean_assigned: f64,
    /// `max_{i,j} s(i, j)` over the block.
    pub max: f64,
}

/// [`BlockStatistics`] of every layer pair of `table`, row layers outermost. Dead units count
/// with their score 0 (the table zeroes them).
pub fn block_statistics(table: &SimilarityTable) -> Vec<BlockStatistics> {
    let mut out = Vec::new();
    for rl in &table.row_layers {
        for cl in &table.col_layers {
            let block = table.values.slice(s![rl.range(), cl.range()]);
            let row_max = |r: ndarray::ArrayView1<f64>| r.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let mean_best =
                block.rows().into_iter().map(row_max).sum::<f64>() / block.nrows().max(1) as f64;
            let pairs = hungarian_max(block);
            let mean_assigned =
                pairs.iter().map(|&(i, j)| block[[i, j]]).sum::<f64>() / pairs.len().max(1) as f64;
            let max = block.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            out.push(BlockStatistics {
                layer_a: rl.name.clone(),
                layer_b: cl.name.clone(),
                mean_best,
                mean_assigned,
                max,
            });
        }
    }
    out
}

/// An observed statistic against its null distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NullStatistic {
    /// The observed value.
    pub observed: f64,
    /// The null values `v_1..v_D`, one per draw.
    pub null: Vec<f64>,
    /// `(1/D) sum v_d`.
    pub mean: f64,
    /// `sqrt(sum (v_d - mean)^2 / (D - 1))`; none when `D < 2`.
    pub sd: Option<f64>,
    /// `(observed - mean) / sd`; none when `sd` is none or 0.
    pub z: Option<f64>,
    /// `(1 + #{d : v_d >= observed}) / (1 + D)`.
    pub p: f64,
}

/// Compares `observed` with the null values (formulas on [`NullStatistic`]).
pub fn null_statistic(observed: f64, null: Vec<f64>) -> NullStatistic {
    let d = null.len() as f64;
    let mean = null.iter().sum::<f64>() / d.max(1.0);
    let sd = (null.len() >= 2)
        .then(|| (null.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (d - 1.0)).sqrt());
    let z = sd.filter(|&s| s > 0.0).map(|s| (observed - mean) / s);
    NullStatistic {
        observed,
        mean,
        sd,
        z,
        p: empirical_p(observed, &null),
        null,
    }
}

/// `(1 + #{v in null : v >= observed}) / (1 + |null|)`.
pub fn empirical_p(observed: f64, null: &[f64]) -> f64 {
    let hits = null.iter().filter(|&&v| v >= observed).count();
    (1 + hits) as f64 / (1 + null.len()) as f64
}

/// A unit pair tested against the null distribution of the block maximum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedPair {
    /// Flat index of the unit of A (table row).
    pub flat_a: usize,
    /// Flat index of its best match in B (table column).
    pub flat_b: usize,
    /// Observed score.
    pub score: f64,
    /// `(1 + #{d : M_d >= score}) / (1 + D)`, `M_d` the null block maximum.
    pub p: f64,
    /// `p <= alpha`.
    pub significant: bool,
}

/// The test results of one layer pair under one null model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPairSignificance {
    /// Layer of A.
    pub layer_a: String,
    /// Layer of B.
    pub layer_b: String,
    /// Mean best-match score.
    pub mean_best: NullStatistic,
    /// Mean assigned (Hungarian) score.
    pub mean_assigned: NullStatistic,
    /// Null block maxima `M_d`, one per draw.
    pub null_block_max: Vec<f64>,
    /// Each unit of A with its best match in the block, tested against `null_block_max`.
    pub pairs: Vec<FlaggedPair>,
}

/// Tests every layer pair of `observed` against the tables of the null draws (which must have
/// the same layout), flagging unit pairs at level `alpha` (see the module doc).
pub fn layer_pair_significance(
    observed: &SimilarityTable,
    nulls: &[SimilarityTable],
    alpha: f64,
) -> Vec<LayerPairSignificance> {
    let obs = block_statistics(observed);
    let null_stats: Vec<Vec<BlockStatistics>> = nulls.iter().map(block_statistics).collect();
    let mut out = Vec::new();
    let mut k = 0;
    for rl in &observed.row_layers {
        for cl in &observed.col_layers {
            let o = &obs[k];
            let column = |f: fn(&BlockStatistics) -> f64| -> Vec<f64> {
                null_stats.iter().map(|n| f(&n[k])).collect()
            };
            let null_block_max = column(|b| b.max);
            let block = observed.values.slice(s![rl.range(), cl.range()]);
            let pairs = block
                .rows()
                .into_iter()
                .enumerate()
                .filter_map(|(i, row)| {
                    let (j, &score) = row
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .max_by(|x, y| x.1.total_cmp(y.1))?;
                    let p = empirical_p(score, &null_block_max);
                    Some(FlaggedPair {
                        flat_a: rl.start + i,
                        flat_b: cl.start + j,
                        score,
                        p,
                        significant: p <= alpha,
                    })
                })
                .collect();
            out.push(LayerPairSignificance {
                layer_a: o.layer_a.clone(),
                layer_b: o.layer_b.clone(),
                mean_best: null_statistic(o.mean_best, column(|b| b.mean_best)),
                mean_assigned: null_statistic(o.mean_assigned, column(|b| b.mean_assigned)),
                null_block_max,
                pairs,
            });
            k += 1;
        }
    }
    out
}

/// The content of significance.json: options, formulas, and per null model the layer pairs.
pub fn significance_json(
    opts: &NullOptions,
    results: &[(NullKind, Vec<LayerPairSignificance>)],
) -> serde_json::Value {
    let min_p = opts.min_attainable_p();
    let mut nulls = serde_json::Map::new();
    for (kind, pairs) in results {
        nulls.insert(
            kind.name().to_string(),
            serde_json::json!({
                "description": kind.description(),
                "layer_pairs": pairs,
            }),
        );
    }
    serde_json::json!({
        "kind": "unitmatch.significance",
        "options": opts,
        "seeds": {
            "random-init": "generator seed 1000003 + draw",
            "permuted-z": "ChaCha8 seed 2000003 + draw, stream = batch index",
        },
        "statistics": {
            "mean_best": "mean over A's units in the layer of the row max within the block",
            "mean_assigned": "mean score of the block's Hungarian (max-total) assignment",
            "z": "(observed - mean_null) / sd_null, sd with n - 1; null when sd == 0 or draws < 2",
            "p": "(1 + #{null >= observed}) / (1 + draws)",
            "pair_p": "(1 + #{null block max >= score}) / (1 + draws)",
        },
        "correction": CORRECTION,
        "min_attainable_p": min_p,
        "alpha_attainable": min_p <= opts.alpha,
        "note": if min_p <= opts.alpha {
            String::from("p-values are empirical over the draws")
        } else {
            format!(
                "with {} draws the smallest p-value is {min_p:.4} > alpha {}: nothing can be \
                 significant; raise --null-draws to at least {}",
                opts.draws,
                opts.alpha,
                (1.0 / opts.alpha - 1.0).ceil() as usize
            )
        },
        "nulls": nulls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::StandardNormal;

    const SIDE: usize = 8;
    const BATCH: usize = 10;
    const BATCHES: usize = 4;

    fn specs(ca: usize, cb: usize) -> Vec<LayerSpec> {
        [("a", ca), ("b", cb)]
            .iter()
            .map(|&(net, c)| LayerSpec {
                network: net.into(),
                name: "l".into(),
                channels: c,
                height: SIDE,
                width: SIDE,
            })
            .collect()
    }

    /// Runs the observed comparison and the permuted-z null on synthetic batches
    /// (`make(batch) -> (A's [n, ca, 8, 8], B's [n, cb, 8, 8])`), returns the one layer pair.
    fn run(
        ca: usize,
        cb: usize,
        draws: usize,
        make: &mut dyn FnMut(usize) -> (Array4<f32>, Array4<f32>),
    ) -> LayerPairSignificance {
        let sp = specs(ca, cb);
        let mut acc = MomentAccumulator::new(sp.clone()).unwrap();
        let mut null = NullAccumulators::new(NullKind::PermutedZ, draws, &sp).unwrap();
        for i in 0..BATCHES {
            let (a, b) = make(i);
            acc.add_batch(&[a.view(), b.view()]).unwrap();
            let (a, b) = (vec![a], vec![b]);
            null.add_batch(&a, &mut |d| permuted_acts(&b, d, i))
                .unwrap();
        }
        let observed = cross_table(&acc, Measure::Pearson);
        let tables = null.tables(Measure::Pearson);
        let mut out = layer_pair_significance(&observed, &tables, 0.05);
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    /// A smooth map of position (y, x) for unit `c` of network `net`.
    fn position_map(net: usize, c: usize, y: usize, x: usize) -> f32 {
        let (y, x) = (y as f32, x as f32);
        match (net, c) {
            // B's unit 0 is an affine copy of A's unit 0: observed score 1.
            (_, 0) => (0.7 * x + 0.3 * y).sin() * if net == 0 { 1.0 } else { 2.0 } + net as f32,
            _ => ((c as f32 + 1.0) * 0.4 * x + net as f32 * 0.9 * y).cos() + 0.1 * y,
        }
    }

    fn positional_batch(noise: f32, rng: &mut ChaCha8Rng) -> (Array4<f32>, Array4<f32>) {
        let mut f = |net: usize, ch: usize| {
            Array4::from_shape_fn((BATCH, ch, SIDE, SIDE), |(_, c, y, x)| {
                let e: f32 = rng.sample(StandardNormal);
                position_map(net, c, y, x) + noise * e
            })
        };
        let a = f(0, 3);
        (a, f(1, 4))
    }

    #[test]
    fn permuted_z_null_equals_observed_when_maps_depend_only_on_position() {
        // Every sample has the same maps, so permuting B's samples changes nothing: the null
        // tables equal the observed one, every null value equals the observed value, the
        // p-value is (1 + D) / (1 + D) = 1 and sd = 0 (so z is undefined).
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let r = run(3, 4, 4, &mut |_| positional_batch(0.0, &mut rng));
        for st in [&r.mean_best, &r.mean_assigned] {
            assert!(
                st.observed > 0.3,
                "spatial structure gives a high score: {st:?}"
            );
            for v in &st.null {
                assert!((v - st.observed).abs() < 1e-9, "{st:?}");
            }
            assert_eq!(st.p, 1.0);
            assert!(st.z.is_none_or(|z| z.abs() < 1e-3), "{st:?}");
        }
        // The perfect pair (A0, B0) scores 1, but so does the null maximum: not significant.
        let p0 = &r.pairs[0];
        assert_eq!((p0.flat_a, p0.flat_b), (0, 0));
        assert!((p0.score - 1.0).abs() < 1e-6);
        assert!(!p0.significant && p0.p > 0.5, "{p0:?}");
    }

    #[test]
    fn permuted_z_null_keeps_positional_score_with_small_independent_noise() {
        // Small independent per-sample noise: the score is still explained by position alone,
        // so the null mean stays within a few noise-levels of the observed value.
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let r = run(3, 4, 5, &mut |_| positional_batch(0.01, &mut rng));
        for st in [&r.mean_best, &r.mean_assigned] {
            assert!(st.observed > 0.3, "{st:?}");
            assert!((st.observed - st.mean).abs() < 1e-3, "{st:?}");
        }
    }

    #[test]
    fn permuted_z_null_mean_best_match_is_near_zero_for_iid_noise() {
        // Independent noise at every sample and position: N = samples * positions independent
        // rows, so each Pearson r has sd about 1/sqrt(N), and the max over m candidates is
        // below about sqrt(2 ln m) / sqrt(N) plus a little. We allow 4 * sqrt(2 ln m / N).
        let (ca, cb) = (3, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let r = run(ca, cb, 5, &mut |_| {
            let mut f = |ch: usize| {
                Array4::from_shape_fn((BATCH, ch, SIDE, SIDE), |_| rng.sample(StandardNormal))
            };
            let a = f(ca);
            (a, f(cb))
        });
        let n = (BATCH * BATCHES * SIDE * SIDE) as f64;
        let bound = 4.0 * (2.0 * (cb as f64).ln() / n).sqrt();
        for v in r.mean_best.null.iter().chain([&r.mean_best.observed]) {
            assert!(v.abs() < bound, "{v} vs bound {bound}");
        }
        assert!(r.mean_best.mean.abs() < bound);
        assert!(r.null_block_max.iter().all(|m| m.abs() < bound));
    }

    #[test]
    fn formulas_for_p_z_and_sd() {
        let st = null_statistic(2.0, vec![1.0, 2.0, 3.0]);
        assert_eq!(st.mean, 2.0);
        assert_eq!(st.sd, Some(1.0));
        assert_eq!(st.z, Some(0.0));
        assert_eq!(st.p, 0.75); // (1 + #{2, 3}) / (1 + 3)
        let st = null_statistic(5.0, vec![1.0, 1.0]);
        assert_eq!(st.sd, Some(0.0));
        assert_eq!(st.z, None);
        assert_eq!(st.p, 1.0 / 3.0);
        assert_eq!(null_statistic(1.0, vec![0.0]).sd, None);
        let opts = NullOptions {
            kinds: vec![NullKind::PermutedZ],
            draws: 5,
            alpha: 0.05,
        };
        assert!((opts.min_attainable_p() - 1.0 / 6.0).abs() < 1e-15);
        let j = significance_json(&opts, &[]);
        assert_eq!(j["alpha_attainable"], false);
        assert_eq!(j["correction"], CORRECTION);
    }

    #[test]
    fn permutations_are_seeded_and_differ_by_draw_and_batch() {
        let p = permutation(0, 0, 50);
        assert_eq!(p, permutation(0, 0, 50));
        assert_ne!(p, permutation(1, 0, 50));
        assert_ne!(p, permutation(0, 1, 50));
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(
            parse_null_list("permuted-z, random-init,permuted-z").unwrap(),
            vec![NullKind::PermutedZ, NullKind::RandomInit]
        );
        assert!(
            parse_null_list("shuffle")
                .unwrap_err()
                .to_string()
                .contains("`shuffle`")
        );
    }
}

//! Unit matching on a [`SimilarityTable`]: best matches, best buddies (strict and Rosetta), optimal
//! one-to-one assignment (Hungarian) and top pairs, all pure functions of the table.
//! Use: `let r = match_table(&t, &MatchOptions::default()); write_match_outputs(&r, &t, dir)?;`,
//! where `t` comes from `similarity::cross_table` or from a compare folder via `load_table(dir)`.

use std::ops::Range;
use std::path::PathBuf;

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::similarity::{LayerRange, SimilarityTable, UnitInfo};

mod io;

pub use io::{load_table, write_match_outputs};

/// How units are matched. Per-pair `score`s are always the table's signed values; rankings and
/// aggregates (totals, means) use the matching key, `r` or `|r|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchOptions {
    /// Match on `|r|` instead of the signed `r` (default false). Signed is the default because a
    /// negatively correlated unit paints the complement of the other's map: a different feature.
    pub abs: bool,
    /// Rosetta top-k (default 5): A's best match `j` is a Rosetta buddy when A's unit is within
    /// the top `k` of `j`'s column. `k = 0` accepts nothing.
    pub k: usize,
    /// Number of top pairs reported, overall and per layer pair (default 20).
    pub top_n: usize,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            abs: false,
            k: 5,
            top_n: 20,
        }
    }
}

/// A unit's best partner on the other side of the table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Partner {
    /// Flat index of the partner (a column for a unit of A, a row for a unit of B).
    pub flat: usize,
    /// Signed table score of the pair.
    pub score: f64,
    /// 1-based rank of the unit among the partner's live candidates (1 = the partner's best too).
    pub rank: usize,
}

/// The best match of one unit (argmax of its row or column over live units of the other side;
/// ties go to the lowest flat index).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BestMatch {
    /// Flat index of the unit.
    pub flat: usize,
    /// `None` for a dead unit, or when every unit of the other side is dead.
    pub best: Option<Partner>,
}

/// One unit pair with its location: a top pair, a buddy pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairScore {
    /// Flat index of the unit of A (row).
    pub a: usize,
    /// Flat index of the unit of B (column).
    pub b: usize,
    /// Signed table score.
    pub score: f64,
    /// 1-based rank of `a` within `b`'s column over live units of A (ties: lowest flat first).
    pub rank: usize,
    /// Layer of `a`.
    pub layer_a: String,
    /// Channel of `a` in its layer.
    pub channel_a: usize,
    /// Layer of `b`.
    pub layer_b: String,
    /// Channel of `b` in its layer.
    pub channel_b: usize,
}

/// A best-buddy pair (strict or Rosetta); same fields as [`PairScore`].
pub type BuddyPair = PairScore;

/// A one-to-one assignment maximising the total key over live units; dead units are then paired
/// with the leftovers (score 0) and counted in `dead`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    /// `(row, column, signed score)`, by increasing row; dead units are kept (score 0).
    pub pairs: Vec<(usize, usize, f64)>,
    /// Sum of the keys (`r` or `|r|`) of the pairs: the maximised objective.
    pub total: f64,
    /// `total / pairs.len()` (0 when empty).
    pub mean: f64,
    /// Number of pairs with a dead unit on either side.
    pub dead: usize,
}

/// Counts for one (layer of A, layer of B) pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPairCounts {
    /// Layer of A.
    pub layer_a: String,
    /// Layer of B.
    pub layer_b: String,
    /// Strict buddy pairs in this layer pair.
    pub strict_buddies: usize,
    /// Rosetta buddy pairs in this layer pair.
    pub rosetta_buddies: usize,
    /// Units of `layer_a` whose best match (over all of B) lies in `layer_b`.
    pub best_a: usize,
    /// Mean key of those best matches (`None` when there are none).
    pub mean_best_a: Option<f64>,
    /// Units of `layer_b` whose best match (over all of A) lies in `layer_a`.
    pub best_b: usize,
    /// Mean key of those best matches (`None` when there are none).
    pub mean_best_b: Option<f64>,
    /// Pairs of the whole-table assignment falling in this layer pair.
    pub assigned_all: usize,
    /// Mean key of the assignment made within this layer pair alone.
    pub mean_assigned: f64,
}

/// Fractions of live units having a buddy (dead units are left out of the denominators).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BuddyFractions {
    /// Live units of A in a strict buddy pair.
    pub strict_a: f64,
    /// Live units of B in a strict buddy pair.
    pub strict_b: f64,
    /// Live units of A in a Rosetta pair.
    pub rosetta_a: f64,
    /// Live units of B in at least one Rosetta pair (several units of A may pick the same one).
    pub rosetta_b: f64,
}

/// Everything [`match_table`] computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchReport {
    /// Options used.
    pub options: MatchOptions,
    /// Best match of every unit of A.
    pub best_a: Vec<BestMatch>,
    /// Best match of every unit of B.
    pub best_b: Vec<BestMatch>,
    /// Strict best buddies.
    pub strict: Vec<BuddyPair>,
    /// Rosetta buddies.
    pub rosetta: Vec<BuddyPair>,
    /// Assignment over the whole table.
    pub assignment: Assignment,
    /// Assignment within each layer pair: `(layer_a, layer_b, assignment)`.
    pub layer_assignments: Vec<(String, String, Assignment)>,
    /// Top pairs of the whole table.
    pub top_pairs: Vec<PairScore>,
    /// Top pairs of each layer pair.
    pub layer_top_pairs: Vec<(String, String, Vec<PairScore>)>,
    /// Counts per layer pair, row layers outermost.
    pub layer_pairs: Vec<LayerPairCounts>,
    /// Fractions of live units with a buddy.
    pub fractions: BuddyFractions,
}

/// Reading or writing matching files failed; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// The file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// The file's content is malformed or inconsistent with the others.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The matching key of every entry.
fn keys(table: &SimilarityTable, opts: &MatchOptions) -> Array2<f64> {
    table.values.mapv(|v| if opts.abs { v.abs() } else { v })
}

/// Dead flags of units; units missing from the list count as live.
fn dead_flags(units: &[UnitInfo], n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| units.get(i).is_some_and(|u| u.dead))
        .collect()
}

/// Whether `(ka, ia)` ranks before `(kb, ib)`: larger key, then lower flat index.
fn beats(ka: f64, ia: usize, kb: f64, ib: usize) -> bool {
    ka > kb || (ka == kb && ia < ib)
}

/// 1-based rank of row `i` within column `j` of `keys`, over live rows.
fn rank_in_col(keys: ArrayView2<f64>, row_dead: &[bool], i: usize, j: usize) -> usize {
    let col = keys.column(j);
    1 + (0..col.len())
        .filter(|&r| r != i && !row_dead[r] && beats(col[r], r, col[i], i))
        .count()
}

/// Best match of every row of `keys` among live columns.
fn best_of_rows(
    keys: ArrayView2<f64>,
    values: ArrayView2<f64>,
    row_dead: &[bool],
    col_dead: &[bool],
) -> Vec<BestMatch> {
    (0..keys.nrows())
        .map(|i| {
            let row = keys.row(i);
            let best = (0..row.len())
                .filter(|&j| !row_dead[i] && !col_dead[j])
                .fold(None, |b: Option<usize>, j| match b {
                    Some(b) if !beats(row[j], j, row[b], b) => Some(b),
                    _ => Some(j),
                });
            BestMatch {
                flat: i,
                best: best.map(|j| Partner {
                    flat: j,
                    score: values[[i, j]],
                    rank: rank_in_col(keys, row_dead, i, j),
                }),
            }
        })
        .collect()
}

/// Best match of every unit of A (rows) and of B (columns). Dead units are never chosen and get
/// `None`; ties go to the lowest flat index, both for the argmax and for the rank.
pub fn best_matches(
    table: &SimilarityTable,
    opts: &MatchOptions,
) -> (Vec<BestMatch>, Vec<BestMatch>) {
    let k = keys(table, opts);
    let (da, db) = (
        dead_flags(&table.rows, k.nrows()),
        dead_flags(&table.cols, k.ncols()),
    );
    (
        best_of_rows(k.view(), table.values.view(), &da, &db),
        best_of_rows(k.t(), table.values.t(), &db, &da),
    )
}

fn pair(table: &SimilarityTable, a: usize, b: usize, score: f64, rank: usize) -> PairScore {
    let unit =
        |u: Option<&UnitInfo>| u.map_or((String::new(), 0), |u| (u.layer.clone(), u.channel));
    let ((layer_a, channel_a), (layer_b, channel_b)) =
        (unit(table.rows.get(a)), unit(table.cols.get(b)));
    PairScore {
        a,
        b,
        score,
        rank,
        layer_a,
        channel_a,
        layer_b,
        channel_b,
    }
}

/// A's best matches whose rank (of A's unit in B's column) is at most `max_rank`.
fn buddies_within(
    table: &SimilarityTable,
    best_a: &[BestMatch],
    max_rank: usize,
) -> Vec<PairScore> {
    best_a
        .iter()
        .filter_map(|m| {
            let p = m.best.filter(|p| p.rank <= max_rank)?;
            Some(pair(table, m.flat, p.flat, p.score, p.rank))
        })
        .collect()
}

/// Strict best buddies: `i`'s best match is `j` and `j`'s best match is `i` (same tie-break as
/// [`best_matches`]). One-to-one, by increasing row.
pub fn best_buddies(table: &SimilarityTable, opts: &MatchOptions) -> Vec<BuddyPair> {
    buddies_within(table, &best_matches(table, opts).0, 1)
}

/// Rosetta Neurons variant: A's best match `j` is accepted when `i` is within the top `opts.k`
/// of column `j`. Contains the strict buddies (for `k >= 1`); a unit of B may appear more than once.
pub fn rosetta_buddies(table: &SimilarityTable, opts: &MatchOptions) -> Vec<BuddyPair> {
    buddies_within(table, &best_matches(table, opts).0, opts.k)
}

/// One-to-one assignment maximising the total score, `min(rows, cols)` pairs `(row, col)` by
/// increasing row. Shortest augmenting paths with potentials (Hungarian / Jonker-Volgenant,
/// O(n^2 m)) on costs `max - score`; a tall matrix is transposed. Scores must be finite:
/// non-finite entries are treated as the lowest finite score.
pub fn hungarian_max(scores: ArrayView2<f64>) -> Vec<(usize, usize)> {
    if scores.nrows() > scores.ncols() {
        let mut out: Vec<(usize, usize)> = hungarian_max(scores.t())
            .into_iter()
            .map(|(j, i)| (i, j))
            .collect();
        out.sort_unstable();
        return out;
    }
    let (n, m) = scores.dim();
    let finite = || scores.iter().copied().filter(|v| v.is_finite());
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi.is_finite() { (lo, hi) } else { (0.0, 0.0) };
    let cost = |i: usize, j: usize| {
        let v = scores[[i - 1, j - 1]];
        hi - if v.is_finite() { v } else { lo }
    };
    // 1-based potentials; p[j] = row matched to column j (0: none); column 0 is the virtual root.
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; m + 1]);
    let (mut p, mut way) = (vec![0usize; m + 1], vec![0usize; m + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let (i0, mut delta, mut j1) = (p[j0], f64::INFINITY, 0);
            for j in 1..=m {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        }
    }
    let mut out: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| (p[j] - 1, j - 1))
        .collect();
    out.sort_unstable();
    out
}

/// Hungarian assignment of the live units of a block; then the leftover units (each such pair
/// has a dead unit) are paired in flat order, so that dead units never displace live pairs.
fn assign_block(
    table: &SimilarityTable,
    keys: &Array2<f64>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Assignment {
    let dead_of = |u: &[UnitInfo], k: usize| u.get(k).is_some_and(|u| u.dead);
    let (live_r, live_c): (Vec<usize>, Vec<usize>) = (
        rows.clone().filter(|&i| !dead_of(&table.rows, i)).collect(),
        cols.clone().filter(|&j| !dead_of(&table.cols, j)).collect(),
    );
    let sub = keys.select(Axis(0), &live_r).select(Axis(1), &live_c);
    let mut ij: Vec<(usize, usize)> = hungarian_max(sub.view())
        .into_iter()
        .map(|(i, j)| (live_r[i], live_c[j]))
        .collect();
    let left_r: Vec<usize> = rows.filter(|i| ij.iter().all(|p| p.0 != *i)).collect();
    let left_c: Vec<usize> = cols.filter(|j| ij.iter().all(|p| p.1 != *j)).collect();
    ij.extend(left_r.into_iter().zip(left_c));
    ij.sort_unstable();
    let pairs: Vec<(usize, usize, f64)> = ij
        .into_iter()
        .map(|(i, j)| (i, j, table.values[[i, j]]))
        .collect();
    let total: f64 = pairs.iter().map(|&(i, j, _)| keys[[i, j]]).sum();
    Assignment {
        dead: pairs
            .iter()
            .filter(|&&(i, j, _)| dead_of(&table.rows, i) || dead_of(&table.cols, j))
            .count(),
        mean: if pairs.is_empty() {
            0.0
        } else {
            total / pairs.len() as f64
        },
        total,
        pairs,
    }
}

/// Optimal one-to-one assignment over the whole table (maximising the total key).
pub fn assignment(table: &SimilarityTable, opts: &MatchOptions) -> Assignment {
    let (n, m) = table.values.dim();
    assign_block(table, &keys(table, opts), 0..n, 0..m)
}

/// Optimal assignment within each (layer of A, layer of B) block, row layers outermost; pairs
/// carry flat indices of the whole table.
pub fn assignment_per_layer_pair(
    table: &SimilarityTable,
    opts: &MatchOptions,
) -> Vec<(String, String, Assignment)> {
    let k = keys(table, opts);
    let mut out = Vec::new();
    for rl in &table.row_layers {
        for cl in &table.col_layers {
            let a = assign_block(table, &k, rl.range(), cl.range());
            out.push((rl.name.clone(), cl.name.clone(), a));
        }
    }
    out
}

fn top_in(
    table: &SimilarityTable,
    keys: &Array2<f64>,
    rows: Range<usize>,
    cols: Range<usize>,
    n: usize,
) -> Vec<PairScore> {
    let (da, db) = (
        dead_flags(&table.rows, keys.nrows()),
        dead_flags(&table.cols, keys.ncols()),
    );
    let mut all: Vec<(usize, usize)> = rows
        .filter(|&i| !da[i])
        .flat_map(|i| cols.clone().filter(|&j| !db[j]).map(move |j| (i, j)))
        .collect();
    all.sort_by(|&(i, j), &(p, q)| {
        keys[[p, q]]
            .total_cmp(&keys[[i, j]])
            .then((i, j).cmp(&(p, q)))
    });
    all.into_iter()
        .take(n)
        .map(|(i, j)| {
            pair(
                table,
                i,
                j,
                table.values[[i, j]],
                rank_in_col(keys.view(), &da, i, j),
            )
        })
        .collect()
}

/// The `n` live pairs with the largest key over the whole table (ties: lowest row, then column).
pub fn top_pairs(table: &SimilarityTable, n: usize, opts: &MatchOptions) -> Vec<PairScore> {
    let (r, c) = table.values.dim();
    top_in(table, &keys(table, opts), 0..r, 0..c, n)
}

/// [`top_pairs`] within each layer pair: `(layer_a, layer_b, pairs)`, row layers outermost.
pub fn top_pairs_per_layer_pair(
    table: &SimilarityTable,
    n: usize,
    opts: &MatchOptions,
) -> Vec<(String, String, Vec<PairScore>)> {
    let k = keys(table, opts);
    let mut out = Vec::new();
    for rl in &table.row_layers {
        for cl in &table.col_layers {
            let top = top_in(table, &k, rl.range(), cl.range(), n);
            out.push((rl.name.clone(), cl.name.clone(), top));
        }
    }
    out
}

/// Computes every matching of the table (see [`MatchReport`]).
pub fn match_table(table: &SimilarityTable, opts: &MatchOptions) -> MatchReport {
    let (best_a, best_b) = best_matches(table, opts);
    let (strict, rosetta) = (
        buddies_within(table, &best_a, 1),
        buddies_within(table, &best_a, opts.k),
    );
    let assignment = assignment(table, opts);
    let layer_assignments = assignment_per_layer_pair(table, opts);
    let key = |s: f64| if opts.abs { s.abs() } else { s };
    let inside = |r: &LayerRange, k: usize| r.range().contains(&k);
    // Best matches going from `units` of layer `from` into layer `to`: (count, mean key).
    let best_into = |best: &[BestMatch], from: &LayerRange, to: &LayerRange| {
        let keys: Vec<f64> = best[from.range()]
            .iter()
            .filter_map(|m| m.best.filter(|p| inside(to, p.flat)).map(|p| key(p.score)))
            .collect();
        let mean = (!keys.is_empty()).then(|| keys.iter().sum::<f64>() / keys.len() as f64);
        (keys.len(), mean)
    };
    let in_pair = |rl: &LayerRange, cl: &LayerRange, v: &[BuddyPair]| {
        v.iter()
            .filter(|p| inside(rl, p.a) && inside(cl, p.b))
            .count()
    };
    let mut layer_pairs = Vec::new();
    for (idx, (rl, cl)) in table
        .row_layers
        .iter()
        .flat_map(|rl| table.col_layers.iter().map(move |cl| (rl, cl)))
        .enumerate()
    {
        let ((best_a_n, mean_best_a), (best_b_n, mean_best_b)) =
            (best_into(&best_a, rl, cl), best_into(&best_b, cl, rl));
        layer_pairs.push(LayerPairCounts {
            layer_a: rl.name.clone(),
            layer_b: cl.name.clone(),
            strict_buddies: in_pair(rl, cl, &strict),
            rosetta_buddies: in_pair(rl, cl, &rosetta),
            best_a: best_a_n,
            mean_best_a,
            best_b: best_b_n,
            mean_best_b,
            assigned_all: (assignment.pairs.iter())
                .filter(|&&(i, j, _)| inside(rl, i) && inside(cl, j))
                .count(),
            mean_assigned: layer_assignments[idx].2.mean,
        });
    }
    let live = |units: &[UnitInfo], n: usize| {
        n.saturating_sub(units.iter().filter(|u| u.dead).count())
            .max(1)
    };
    let (la, lb) = (
        live(&table.rows, best_a.len()) as f64,
        live(&table.cols, best_b.len()) as f64,
    );
    let mut rosetta_b: Vec<usize> = rosetta.iter().map(|p| p.b).collect();
    rosetta_b.sort_unstable();
    rosetta_b.dedup();
    let fractions = BuddyFractions {
        strict_a: strict.len() as f64 / la,
        strict_b: strict.len() as f64 / lb,
        rosetta_a: rosetta.len() as f64 / la,
        rosetta_b: rosetta_b.len() as f64 / lb,
    };
    MatchReport {
        options: *opts,
        top_pairs: top_pairs(table, opts.top_n, opts),
        layer_top_pairs: top_pairs_per_layer_pair(table, opts.top_n, opts),
        best_a,
        best_b,
        strict,
        rosetta,
        assignment,
        layer_assignments,
        layer_pairs,
        fractions,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::similarity::Measure;
    use ndarray::array;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A table over `values` with layer blocks given as `(name, units)` for A and for B.
    pub(crate) fn make_table(
        values: Array2<f64>,
        layers_a: &[(&str, usize)],
        layers_b: &[(&str, usize)],
    ) -> SimilarityTable {
        let side = |layers: &[(&str, usize)], network: &str, first: usize| {
            let (mut units, mut ranges) = (Vec::new(), Vec::new());
            for (l, &(name, n)) in layers.iter().enumerate() {
                let start = units.len();
                for channel in 0..n {
                    units.push(UnitInfo {
                        flat: units.len(),
                        network: network.into(),
                        layer: name.into(),
                        channel,
                        mean: 0.25 * channel as f64 - 0.5,
                        std: 1.0 + channel as f64,
                        dead: false,
                    });
                }
                ranges.push(LayerRange {
                    name: name.into(),
                    layer: first + l,
                    start,
                    end: units.len(),
                });
            }
            (units, ranges)
        };
        let (rows, row_layers) = side(layers_a, "a", 0);
        let (cols, col_layers) = side(layers_b, "b", layers_a.len());
        assert_eq!(values.dim(), (rows.len(), cols.len()));
        SimilarityTable {
            measure: Measure::Pearson,
            rows,
            cols,
            values,
            row_layers,
            col_layers,
        }
    }

    fn one_layer(values: Array2<f64>) -> SimilarityTable {
        let (n, m) = values.dim();
        make_table(values, &[("la", n)], &[("lb", m)])
    }

    /// Largest total over all injections of the smaller side into the larger one.
    fn brute_force(s: ArrayView2<f64>) -> f64 {
        if s.nrows() > s.ncols() {
            return brute_force(s.t());
        }
        fn go(s: ArrayView2<f64>, i: usize, used: &mut Vec<bool>) -> f64 {
            if i == s.nrows() {
                return 0.0;
            }
            let mut best = f64::NEG_INFINITY;
            for j in 0..s.ncols() {
                if !used[j] {
                    used[j] = true;
                    best = best.max(s[[i, j]] + go(s, i + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        go(s, 0, &mut vec![false; s.ncols()])
    }

    #[test]
    fn hungarian_equals_brute_force() {
        for seed in 0..8u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for (n, m) in [(6, 6), (5, 7), (7, 5), (1, 4), (4, 1), (3, 3)] {
                // Odd seeds use few distinct values, so that many optima tie.
                let s = Array2::from_shape_fn((n, m), |_| {
                    if seed % 2 == 0 {
                        rng.random_range(-1.0..1.0)
                    } else {
                        f64::from(rng.random_range(-2i32..3)) * 0.25
                    }
                });
                let pairs = hungarian_max(s.view());
                assert_eq!(pairs.len(), n.min(m), "{n}x{m} seed {seed}");
                let (mut rows, mut cols): (Vec<_>, Vec<_>) = pairs.iter().copied().unzip();
                assert!(rows.windows(2).all(|w| w[0] < w[1]), "sorted distinct rows");
                cols.sort_unstable();
                cols.dedup();
                rows.dedup();
                assert_eq!((rows.len(), cols.len()), (n.min(m), n.min(m)));
                let total: f64 = pairs.iter().map(|&(i, j)| s[[i, j]]).sum();
                let want = brute_force(s.view());
                assert!(
                    (total - want).abs() < 1e-12,
                    "{n}x{m} seed {seed}: {total} vs {want}"
                );
            }
        }
        assert!(hungarian_max(Array2::<f64>::zeros((0, 3)).view()).is_empty());
        assert!(hungarian_max(Array2::<f64>::zeros((2, 0)).view()).is_empty());
        // A non-finite entry counts as the lowest score.
        let s = array![[f64::NAN, 0.5], [0.4, 0.1]];
        assert_eq!(hungarian_max(s.view()), vec![(0, 1), (1, 0)]);
        let s = Array2::from_elem((2, 3), f64::NAN);
        assert_eq!(hungarian_max(s.view()), vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn best_matches_break_ties_by_lowest_index() {
        let t = one_layer(array![[0.5, 0.5, 0.1], [0.5, 0.2, 0.3], [0.1, 0.9, 0.9]]);
        let opts = MatchOptions::default();
        let (a, b) = best_matches(&t, &opts);
        let got = |v: &[BestMatch]| -> Vec<(usize, f64, usize)> {
            v.iter()
                .map(|m| m.best.map(|p| (p.flat, p.score, p.rank)).unwrap())
                .collect()
        };
        // A0 ties B0/B1 -> B0; in column B0, A0 ties A1 -> A0 ranks first, A1 second.
        assert_eq!(got(&a), vec![(0, 0.5, 1), (0, 0.5, 2), (1, 0.9, 1)]);
        // B2's best is A2, whose row ties B1/B2 -> B2 ranks second.
        assert_eq!(got(&b), vec![(0, 0.5, 1), (2, 0.9, 1), (2, 0.9, 2)]);
        let ab = |v: Vec<BuddyPair>| v.iter().map(|p| (p.a, p.b)).collect::<Vec<_>>();
        assert_eq!(ab(best_buddies(&t, &opts)), vec![(0, 0), (2, 1)]);
        // Rosetta with k = 2 also accepts A1 -> B0 (A1 is second in B0's column).
        let k1 = MatchOptions { k: 1, ..opts };
        let k2 = MatchOptions { k: 2, ..opts };
        assert_eq!(ab(rosetta_buddies(&t, &k1)), vec![(0, 0), (2, 1)]);
        assert_eq!(ab(rosetta_buddies(&t, &k2)), vec![(0, 0), (1, 0), (2, 1)]);
        let r = &rosetta_buddies(&t, &k2)[1];
        assert_eq!(
            (
                r.score,
                r.rank,
                r.layer_a.as_str(),
                r.channel_a,
                r.layer_b.as_str(),
                r.channel_b
            ),
            (0.5, 2, "la", 1, "lb", 0)
        );
        let none = MatchOptions { k: 0, ..opts };
        assert!(rosetta_buddies(&t, &none).is_empty());
    }

    #[test]
    fn self_match_is_the_identity() {
        let n = 7;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut v = Array2::from_elem((n, n), 1.0);
        for i in 0..n {
            for j in 0..i {
                let x = rng.random_range(-0.95..0.95);
                v[[i, j]] = x;
                v[[j, i]] = x;
            }
        }
        let t = make_table(v, &[("l1", 3), ("l2", 4)], &[("l1", 3), ("l2", 4)]);
        let opts = MatchOptions::default();
        let a = assignment(&t, &opts);
        let ident: Vec<(usize, usize, f64)> = (0..n).map(|i| (i, i, 1.0)).collect();
        assert_eq!(a.pairs, ident);
        assert_eq!((a.total, a.mean, a.dead), (n as f64, 1.0, 0));
        let ab: Vec<(usize, usize)> = best_buddies(&t, &opts).iter().map(|p| (p.a, p.b)).collect();
        assert_eq!(ab, (0..n).map(|i| (i, i)).collect::<Vec<_>>());
        let per = assignment_per_layer_pair(&t, &opts);
        assert_eq!(per.len(), 4);
        assert_eq!((per[0].0.as_str(), per[0].1.as_str()), ("l1", "l1"));
        assert_eq!(per[0].2.pairs, ident[..3].to_vec());
        assert_eq!(per[3].2.pairs, ident[3..].to_vec());
        assert_eq!(per[1].2.pairs.len(), 3);
        assert!(per[1].2.pairs.iter().all(|&(i, j, _)| i < 3 && j >= 3));
        let r = match_table(&t, &opts);
        assert_eq!(r.fractions.strict_a, 1.0);
        assert_eq!(r.fractions.rosetta_b, 1.0);
        assert_eq!(r.layer_pairs[0].strict_buddies, 3);
        assert_eq!(r.layer_pairs[1].strict_buddies, 0);
        assert_eq!(r.layer_pairs[3].assigned_all, 4);
        assert_eq!(r.layer_pairs[0].mean_best_a, Some(1.0));
        assert_eq!(r.top_pairs.len(), opts.top_n);
        assert!(
            r.top_pairs[..n]
                .iter()
                .all(|p| p.a == p.b && p.score == 1.0 && p.rank == 1)
        );
    }

    #[test]
    fn abs_turns_a_negative_pair_into_the_best_match() {
        let t = one_layer(array![[0.3, -0.9], [0.2, 0.1]]);
        let signed = MatchOptions::default();
        let abs = MatchOptions {
            abs: true,
            ..signed
        };
        let best = |o: &MatchOptions| best_matches(&t, o).0[0].best.unwrap();
        assert_eq!((best(&signed).flat, best(&signed).score), (0, 0.3));
        assert_eq!(
            (best(&abs).flat, best(&abs).score, best(&abs).rank),
            (1, -0.9, 1)
        );
        let (sa, aa) = (assignment(&t, &signed), assignment(&t, &abs));
        assert_eq!(sa.pairs, vec![(0, 0, 0.3), (1, 1, 0.1)]);
        assert!((sa.total - 0.4).abs() < 1e-12);
        assert_eq!(aa.pairs, vec![(0, 1, -0.9), (1, 0, 0.2)]);
        assert!((aa.total - 1.1).abs() < 1e-12 && (aa.mean - 0.55).abs() < 1e-12);
        let top = top_pairs(&t, 1, &abs);
        assert_eq!((top[0].a, top[0].b, top[0].score), (0, 1, -0.9));
        assert_eq!(top_pairs(&t, 1, &signed)[0].score, 0.3);
    }

    #[test]
    fn dead_units_get_no_match_and_no_buddy() {
        // All live scores are negative: a dead unit's 0 would win if it were not ignored.
        let mut t = one_layer(array![
            [-0.5, 0.0, -0.2],
            [0.0, 0.0, 0.0],
            [-0.1, 0.0, -0.6]
        ]);
        t.rows[1].dead = true;
        t.cols[1].dead = true;
        let opts = MatchOptions::default();
        let (a, b) = best_matches(&t, &opts);
        assert_eq!(a[1].best, None);
        assert_eq!(b[1].best, None);
        let partners =
            |v: &[BestMatch]| v.iter().map(|m| m.best.map(|p| p.flat)).collect::<Vec<_>>();
        assert_eq!(partners(&a), vec![Some(2), None, Some(0)]);
        assert_eq!(partners(&b), vec![Some(2), None, Some(0)]);
        let strict = best_buddies(&t, &opts);
        assert_eq!(
            strict.iter().map(|p| (p.a, p.b)).collect::<Vec<_>>(),
            vec![(0, 2), (2, 0)]
        );
        assert!(
            rosetta_buddies(&t, &opts)
                .iter()
                .all(|p| p.a != 1 && p.b != 1)
        );
        // The assignment keeps the dead units and counts their pairs.
        let asg = assignment(&t, &opts);
        assert_eq!(asg.pairs, vec![(0, 2, -0.2), (1, 1, 0.0), (2, 0, -0.1)]);
        assert_eq!(asg.dead, 1);
        assert!(top_pairs(&t, 9, &opts).iter().all(|p| p.a != 1 && p.b != 1));
        assert_eq!(top_pairs(&t, 9, &opts).len(), 4);
        let r = match_table(&t, &opts);
        assert_eq!(r.fractions.strict_a, 1.0);
        assert_eq!(r.fractions.strict_b, 1.0);
    }
}

//! Unit x unit similarity tables, computed from the moments of a [`MomentAccumulator`] (pure maths).
//! Use: `let t = cross_table(&acc, Measure::Pearson);` then `t.values[[i, j]]` scores unit
//! `t.rows[i]` of network A against `t.cols[j]` of B; `summarize(&t)` gives one line per layer pair.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use ndarray::{Array2, Axis, Zip, s};
use serde::{Deserialize, Serialize};

use crate::stats::{CoMoments, MomentAccumulator};

/// Relative threshold of [`is_dead`]: a unit is dead when `var <= DEAD_REL * max(mean^2, DEAD_FLOOR)`.
pub const DEAD_REL: f64 = 1e-12;
/// Absolute floor of `mean^2` in [`is_dead`], so that units centred on 0 are judged too.
pub const DEAD_FLOOR: f64 = 1e-12;

/// A unit is dead (constant) when its population variance `var = m2 / count` satisfies
/// `var <= DEAD_REL * max(mean^2, DEAD_FLOOR)`, or when nothing was counted. The relative form
/// absorbs the rounding left in `m2` of a constant map (bilinear weights sum to 1 only up to
/// rounding), whatever its level.
pub fn is_dead(m2: f64, count: f64, mean: f64) -> bool {
    let var = m2 / count;
    !(count > 0.0 && var > DEAD_REL * (mean * mean).max(DEAD_FLOOR))
}

/// How two units' responses are compared. Both use rows `(sample, y, x)` at the pair's common
/// resolution `(max h, max w)`, the smaller layer bilinearly upsampled (align_corners = true).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Exact Pearson correlation over all rows after upsampling, all statistics at the common
    /// resolution: `r_ij = C_ij / sqrt(m2_i m2_j)`.
    Pearson,
    /// The reference method (METHOD.md section 2, passes 1 and 2): each map is standardised with
    /// its unit's statistics at its NATIVE resolution, `x' = (x - m_i) / s_i` (mean `m_i` and
    /// population std `s_i` over all samples and positions), then upsampled, and the product is
    /// averaged over rows: `score_ij = (1/N) sum_r x'_i[r] y'_j[r]`.
    ///
    /// Bilinear upsampling `U` is linear and preserves constants (its weights sum to 1), so
    /// `U x' = (U x - m_i) / s_i`. Writing `U x - m_i = (U x - mu_i) + (mu_i - m_i)` with `mu_i`,
    /// `nu_j` the means at the common resolution, the cross terms sum to zero over rows and
    ///
    /// `score_ij = [C_ij / N + (mu_i - m_i)(nu_j - m_j)] / (s_i s_j)`,
    ///
    /// which is what is computed, from the pair's co-moment `C_ij` and row count `N`. The
    /// reference averages per-batch statistics (mean of batch means, root of the mean batch
    /// variance) and per-batch scores; we use exact global statistics. The two agree when all
    /// batch means are equal and differ slightly otherwise. For two layers of the same size,
    /// `mu = m` and Seed equals Pearson.
    Seed,
}

impl Measure {
    /// Every measure, in CLI order.
    pub const ALL: [Measure; 2] = [Measure::Pearson, Measure::Seed];

    /// The CLI / file name: `pearson` or `seed`.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Pearson => "pearson",
            Measure::Seed => "seed",
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A measure name that is neither `pearson` nor `seed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown measure `{0}` (expected `pearson` or `seed`)")]
pub struct UnknownMeasure(pub String);

impl FromStr for Measure {
    type Err = UnknownMeasure;
    /// Case-insensitive `pearson` / `seed`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Measure::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownMeasure(s.to_string()))
    }
}

/// One unit (row or column of a table) with its statistics at its layer's native resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitInfo {
    /// Index of the unit in the table's rows (or columns).
    pub flat: usize,
    /// Network of the unit, `"a"` or `"b"`.
    pub network: String,
    /// Layer name, e.g. `gen.block1`.
    pub layer: String,
    /// Channel index within the layer.
    pub channel: usize,
    /// Mean over all samples and positions (native resolution).
    pub mean: f64,
    /// Population standard deviation over all samples and positions (native resolution).
    pub std: f64,
    /// Constant at any resolution the table used (see [`is_dead`]); its scores are all 0.
    pub dead: bool,
}

/// The block of a table's rows (or columns) that belongs to one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRange {
    /// Layer name.
    pub name: String,
    /// Index of the layer in the accumulator's layer list.
    pub layer: usize,
    /// First flat index of the layer.
    pub start: usize,
    /// One past the last flat index of the layer.
    pub end: usize,
}

impl LayerRange {
    /// The layer's flat indices.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// Scores of every row unit against every column unit; layers in accumulator order, channels in
/// order within a layer. Every value is finite.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityTable {
    /// The measure the values are.
    pub measure: Measure,
    /// Row units (network A in a cross table).
    pub rows: Vec<UnitInfo>,
    /// Column units (network B in a cross table).
    pub cols: Vec<UnitInfo>,
    /// `[rows, cols]` scores.
    pub values: Array2<f64>,
    /// Layer blocks of the rows.
    pub row_layers: Vec<LayerRange>,
    /// Layer blocks of the columns.
    pub col_layers: Vec<LayerRange>,
}

/// One layer pair's block of a table reduced to a few numbers (dead units count, with score 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerPairSummary {
    /// Row layer name.
    pub layer_a: String,
    /// Column layer name.
    pub layer_b: String,
    /// Mean of the block's scores.
    pub mean: f64,
    /// Largest score of the block.
    pub max: f64,
    /// Mean over row units of each one's best score in the block.
    pub mean_row_max: f64,
    /// Mean over column units of each one's best score in the block.
    pub mean_col_max: f64,
}

/// Units of `network`'s layers, with native statistics from the `(l, l)` moments.
fn units(acc: &MomentAccumulator, network: &str) -> (Vec<UnitInfo>, Vec<LayerRange>) {
    let (mut units, mut ranges) = (Vec::new(), Vec::new());
    for (l, spec) in acc.layers().iter().enumerate() {
        let Some(native) = acc.native(l).filter(|_| spec.network == network) else {
            continue;
        };
        let start = units.len();
        for c in 0..spec.channels {
            let (mean, m2) = (native.mean_p[c], native.m2_p[c]);
            let dead = is_dead(m2, native.count, mean);
            let std = if dead {
                0.0
            } else {
                (m2 / native.count).sqrt()
            };
            let (flat, network, layer) = (units.len(), spec.network.clone(), spec.name.clone());
            units.push(UnitInfo {
                flat,
                network,
                layer,
                channel: c,
                mean,
                std,
                dead,
            });
        }
        ranges.push(LayerRange {
            name: spec.name.clone(),
            layer: l,
            start,
            end: units.len(),
        });
    }
    (units, ranges)
}

/// Scores of one layer pair, `[Cp, Cq]`; `rows`/`cols` are the two layers' units, whose dead flags
/// are updated with the statistics at the common resolution.
fn block_scores(
    b: &CoMoments,
    rows: &mut [UnitInfo],
    cols: &mut [UnitInfo],
    measure: Measure,
) -> Array2<f64> {
    for (u, (&m2, &mean)) in rows.iter_mut().zip(b.m2_p.iter().zip(&b.mean_p)) {
        u.dead |= is_dead(m2, b.count, mean);
    }
    for (u, (&m2, &mean)) in cols.iter_mut().zip(b.m2_q.iter().zip(&b.mean_q)) {
        u.dead |= is_dead(m2, b.count, mean);
    }
    let mut out = Array2::zeros(b.cross.dim());
    match measure {
        Measure::Pearson => {
            let inv = |u: &UnitInfo, m2: f64| if u.dead { 0.0 } else { 1.0 / m2.sqrt() };
            let ip: Vec<f64> = rows
                .iter()
                .zip(&b.m2_p)
                .map(|(u, &m2)| inv(u, m2))
                .collect();
            let iq: Vec<f64> = cols
                .iter()
                .zip(&b.m2_q)
                .map(|(u, &m2)| inv(u, m2))
                .collect();
            Zip::indexed(&mut out)
                .and(&b.cross)
                .for_each(|(i, j), o, &c| {
                    *o = (c * (ip[i] * iq[j])).clamp(-1.0, 1.0);
                });
        }
        Measure::Seed => {
            let inv = |u: &UnitInfo| if u.dead { 0.0 } else { 1.0 / u.std };
            let ap: Vec<f64> = rows.iter().map(inv).collect();
            let aq: Vec<f64> = cols.iter().map(inv).collect();
            let dp: Vec<f64> = rows
                .iter()
                .zip(&b.mean_p)
                .map(|(u, &mu)| mu - u.mean)
                .collect();
            let dq: Vec<f64> = cols
                .iter()
                .zip(&b.mean_q)
                .map(|(u, &nu)| nu - u.mean)
                .collect();
            Zip::indexed(&mut out)
                .and(&b.cross)
                .for_each(|(i, j), o, &c| {
                    *o = (c / b.count + dp[i] * dq[j]) * (ap[i] * aq[j]);
                });
        }
    }
    out
}

/// Table of the units of `row_network` against those of `col_network`. When the two are equal the
/// table is made exactly symmetric (mean of it and its transpose).
pub fn table(
    acc: &MomentAccumulator,
    row_network: &str,
    col_network: &str,
    measure: Measure,
) -> SimilarityTable {
    let (mut rows, row_layers) = units(acc, row_network);
    let (mut cols, col_layers) = units(acc, col_network);
    let mut values = Array2::zeros((rows.len(), cols.len()));
    for rl in &row_layers {
        for cl in &col_layers {
            if let Some(b) = acc.block(rl.layer, cl.layer) {
                let scores =
                    block_scores(&b, &mut rows[rl.range()], &mut cols[cl.range()], measure);
                values.slice_mut(s![rl.range(), cl.range()]).assign(&scores);
            }
        }
    }
    // A unit found dead at one resolution scores 0 everywhere, not only in that block.
    for u in rows.iter().filter(|u| u.dead) {
        values.row_mut(u.flat).fill(0.0);
    }
    for u in cols.iter().filter(|u| u.dead) {
        values.column_mut(u.flat).fill(0.0);
    }
    if row_network == col_network {
        values = (&values + &values.t()) * 0.5;
    }
    SimilarityTable {
        measure,
        rows,
        cols,
        values,
        row_layers,
        col_layers,
    }
}

/// Units of network `"a"` (rows) against units of network `"b"` (columns).
pub fn cross_table(acc: &MomentAccumulator, measure: Measure) -> SimilarityTable {
    table(acc, "a", "b", measure)
}

/// Units of one network against themselves (A x A or B x B): symmetric, diagonal 1 for live units.
pub fn within_table(acc: &MomentAccumulator, network: &str, measure: Measure) -> SimilarityTable {
    table(acc, network, network, measure)
}

/// One summary per (row layer, column layer) block, row layers outermost.
pub fn summarize(table: &SimilarityTable) -> Vec<LayerPairSummary> {
    let mut out = Vec::new();
    for rl in &table.row_layers {
        for cl in &table.col_layers {
            let block = table.values.slice(s![rl.range(), cl.range()]);
            if block.is_empty() {
                continue;
            }
            let best_per = |axis| {
                block
                    .fold_axis(Axis(axis), f64::NEG_INFINITY, |m, x| m.max(*x))
                    .mean()
                    .unwrap_or(0.0)
            };
            out.push(LayerPairSummary {
                layer_a: rl.name.clone(),
                layer_b: cl.name.clone(),
                mean: block.mean().unwrap_or(0.0),
                max: block.fold(f64::NEG_INFINITY, |m, x| m.max(*x)),
                mean_row_max: best_per(1),
                mean_col_max: best_per(0),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LayerSpec;
    use crate::stats::testutil::*;
    use ndarray::{Array4, array};
    use proptest::prelude::*;

    type Batches = Vec<Vec<Array4<f32>>>;

    /// Score of every (row layer, col layer) unit pair by the recipe itself: plain loops over
    /// upsampled maps; Seed standardises at native resolution before upsampling.
    fn naive_table(
        layers: &[LayerSpec],
        batches: &Batches,
        rows: &[usize],
        cols: &[usize],
        measure: Measure,
    ) -> Array2<f64> {
        let native = |l: usize| {
            let units = naive_rows(batches, l, layers[l].height, layers[l].width, &|_, v| v);
            let means: Vec<f64> = units.iter().map(|u| mean(u)).collect();
            let stds: Vec<f64> = units
                .iter()
                .map(|u| (comoment(u, u) / u.len() as f64).sqrt())
                .collect();
            (means, stds)
        };
        let mut out: Vec<Vec<f64>> = Vec::new();
        for &p in rows {
            let mut lines = vec![Vec::new(); layers[p].channels];
            for &q in cols {
                let (h, w) = (
                    layers[p].height.max(layers[q].height),
                    layers[p].width.max(layers[q].width),
                );
                let ((mp, sp), (mq, sq)) = (native(p), native(q));
                let (xp, xq) = match measure {
                    Measure::Pearson => (
                        naive_rows(batches, p, h, w, &|_, v| v),
                        naive_rows(batches, q, h, w, &|_, v| v),
                    ),
                    Measure::Seed => (
                        naive_rows(batches, p, h, w, &|u, v| (v - mp[u]) / sp[u]),
                        naive_rows(batches, q, h, w, &|u, v| (v - mq[u]) / sq[u]),
                    ),
                };
                for (line, u) in lines.iter_mut().zip(&xp) {
                    for v in &xq {
                        line.push(match measure {
                            Measure::Pearson => {
                                comoment(u, v) / (comoment(u, u) * comoment(v, v)).sqrt()
                            }
                            Measure::Seed => {
                                u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>() / u.len() as f64
                            }
                        });
                    }
                }
            }
            out.extend(lines);
        }
        Array2::from_shape_fn((out.len(), out[0].len()), |(i, j)| out[i][j])
    }

    fn assert_table(t: &Array2<f64>, want: &Array2<f64>, tol: f64) {
        assert_eq!(t.dim(), want.dim());
        for ((ij, a), b) in t.indexed_iter().zip(want) {
            assert!((a - b).abs() <= tol, "{ij:?}: {a} vs {b}");
        }
    }

    fn all_finite(t: &SimilarityTable) -> bool {
        t.values.iter().all(|v| v.is_finite())
    }

    #[test]
    fn tables_match_naive_reference() {
        let layers = layers();
        let batches = random_batches(&layers, &[3, 1, 5], 21);
        let acc = accumulate(&layers, &batches);
        let (a, b) = ([0, 1, 2], [3, 4, 5]);
        for measure in Measure::ALL {
            let t = cross_table(&acc, measure);
            assert_eq!((t.rows.len(), t.cols.len()), (7, 6));
            assert_eq!(
                t.col_layers[1],
                LayerRange {
                    name: "l2".into(),
                    layer: 4,
                    start: 2,
                    end: 5
                }
            );
            assert_eq!(
                (t.rows[4].layer.as_str(), t.rows[4].channel, t.rows[4].flat),
                ("l2", 1, 4)
            );
            assert_table(
                &t.values,
                &naive_table(&layers, &batches, &a, &b, measure),
                1e-9,
            );
            let within = within_table(&acc, "a", measure);
            assert_table(
                &within.values,
                &naive_table(&layers, &batches, &a, &a, measure),
                1e-9,
            );
        }
        // The two measures differ only across resolutions: equal for l1 x l1 (both 4x4).
        let (p, s) = (
            cross_table(&acc, Measure::Pearson),
            cross_table(&acc, Measure::Seed),
        );
        assert!((p.values[[0, 0]] - s.values[[0, 0]]).abs() < 1e-12);
        assert!((p.values[[3, 0]] - s.values[[3, 0]]).abs() > 1e-6);
        // (a.l3, b.l3) are both upsampled to 6x8 and both means move: the Seed correction term
        // `(mu - m)(nu - m')` is exercised.
        let b = acc.block(2, 5).unwrap();
        assert!(
            (b.mean_p[0] - s.rows[5].mean).abs() > 1e-3
                && (b.mean_q[0] - s.cols[5].mean).abs() > 1e-3
        );
    }

    #[test]
    fn native_unit_statistics() {
        let layers = layers();
        let batches = random_batches(&layers, &[4, 2], 8);
        let t = cross_table(&accumulate(&layers, &batches), Measure::Seed);
        let u = naive_rows(&batches, 4, 8, 8, &|_, v| v);
        let unit = &t.cols[3]; // b.l2 channel 1
        assert_eq!(
            (unit.network.as_str(), unit.layer.as_str(), unit.channel),
            ("b", "l2", 1)
        );
        assert!((unit.mean - mean(&u[1])).abs() < 1e-12);
        assert!((unit.std - (comoment(&u[1], &u[1]) / u[1].len() as f64).sqrt()).abs() < 1e-12);
        assert!(!unit.dead);
    }

    #[test]
    fn self_match_has_unit_diagonal() {
        let a: Vec<LayerSpec> = layers().into_iter().filter(|l| l.network == "a").collect();
        let mut both = a.clone();
        both.extend(a.iter().map(|l| LayerSpec {
            network: "b".into(),
            ..l.clone()
        }));
        let batches: Batches = random_batches(&a, &[2, 3], 4)
            .into_iter()
            .map(|b| b.iter().chain(&b).cloned().collect())
            .collect();
        let acc = accumulate(&both, &batches);
        for measure in Measure::ALL {
            let t = cross_table(&acc, measure);
            assert!(all_finite(&t));
            for i in 0..t.rows.len() {
                assert!(
                    (t.values[[i, i]] - 1.0).abs() < 1e-9,
                    "{measure} diagonal {i}"
                );
                for j in 0..i {
                    assert!((t.values[[i, j]] - t.values[[j, i]]).abs() < 1e-9);
                }
            }
            assert_table(&t.values, &within_table(&acc, "a", measure).values, 1e-9);
        }
    }

    #[test]
    fn swapping_networks_transposes() {
        let layers = layers();
        let batches = random_batches(&layers, &[3, 2], 13);
        let swapped: Vec<LayerSpec> = layers
            .iter()
            .map(|l| LayerSpec {
                network: if l.network == "a" { "b" } else { "a" }.into(),
                ..l.clone()
            })
            .collect();
        let (acc, acc_swapped) = (
            accumulate(&layers, &batches),
            accumulate(&swapped, &batches),
        );
        for measure in Measure::ALL {
            let (t, u) = (
                cross_table(&acc, measure),
                cross_table(&acc_swapped, measure),
            );
            assert_eq!(
                u.rows,
                t.cols
                    .iter()
                    .map(|c| UnitInfo {
                        network: "a".into(),
                        ..c.clone()
                    })
                    .collect::<Vec<_>>()
            );
            assert_table(&u.values, &t.values.t().to_owned(), 1e-12);
        }
    }

    #[test]
    fn permuting_channels_permutes_columns() {
        let layers = layers();
        let batches = random_batches(&layers, &[3, 2], 17);
        let perm = [2, 0, 1];
        let permuted: Batches = batches
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b[4] = Array4::from_shape_fn(b[4].dim(), |(k, c, y, x)| b[4][[k, perm[c], y, x]]);
                b
            })
            .collect();
        for measure in Measure::ALL {
            let t = cross_table(&accumulate(&layers, &batches), measure);
            let u = cross_table(&accumulate(&layers, &permuted), measure);
            let start = u.col_layers[1].start;
            for (c, &old) in perm.iter().enumerate() {
                for i in 0..t.rows.len() {
                    assert!((u.values[[i, start + c]] - t.values[[i, start + old]]).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn dead_units_score_zero_without_nan() {
        let layers = layers();
        let mut batches = random_batches(&layers, &[3, 2], 5);
        for b in &mut batches {
            b[0].slice_mut(s![.., 1, .., ..]).fill(0.37); // a.l1 channel 1: constant
            b[5].fill(0.0); // b.l3: all zero
        }
        let acc = accumulate(&layers, &batches);
        for measure in Measure::ALL {
            for t in [
                cross_table(&acc, measure),
                within_table(&acc, "a", measure),
                within_table(&acc, "b", measure),
            ] {
                assert!(all_finite(&t), "{measure}");
                for u in t.rows.iter().chain(&t.cols) {
                    let want = (u.network == "a" && u.layer == "l1" && u.channel == 1)
                        || (u.network == "b" && u.layer == "l3");
                    assert_eq!(u.dead, want, "{u:?}");
                }
                for u in t.rows.iter().filter(|u| u.dead) {
                    assert!(t.values.row(u.flat).iter().all(|&v| v == 0.0));
                }
                for u in t.cols.iter().filter(|u| u.dead) {
                    assert!(t.values.column(u.flat).iter().all(|&v| v == 0.0));
                }
            }
        }
        let live = cross_table(&acc, Measure::Pearson);
        assert!(live.values[[0, 0]].abs() > 0.0 && live.rows[1].std == 0.0);
        // An empty accumulator: everything dead, all zeros.
        let empty = cross_table(
            &crate::stats::MomentAccumulator::new(layers).unwrap(),
            Measure::Seed,
        );
        assert!(empty.values.iter().all(|&v| v == 0.0) && empty.rows.iter().all(|u| u.dead));
    }

    #[test]
    fn dead_threshold_is_relative() {
        assert!(is_dead(0.0, 10.0, 0.0));
        assert!(is_dead(1e-30, 10.0, 5.0));
        assert!(!is_dead(1e-6, 10.0, 5.0));
        assert!(is_dead(1.0, 0.0, 0.0));
        assert!(is_dead(f64::NAN, 1.0, 0.0));
    }

    #[test]
    fn measure_names_round_trip() {
        for m in Measure::ALL {
            assert_eq!(m.to_string().parse::<Measure>(), Ok(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert_eq!(" Pearson".parse::<Measure>(), Ok(Measure::Pearson));
        assert_eq!("cka".parse::<Measure>(), Err(UnknownMeasure("cka".into())));
    }

    #[test]
    fn summary_of_a_known_table() {
        let range = |name: &str, start, end| LayerRange {
            name: name.into(),
            layer: 0,
            start,
            end,
        };
        let t = SimilarityTable {
            measure: Measure::Pearson,
            rows: Vec::new(),
            cols: Vec::new(),
            values: array![[0.1, 0.5, -0.2], [0.3, -0.4, 0.9]],
            row_layers: vec![range("r1", 0, 1), range("r2", 1, 2)],
            col_layers: vec![range("c1", 0, 2), range("c2", 2, 3)],
        };
        let s = summarize(&t);
        assert_eq!(s.len(), 4);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert_eq!((s[0].layer_a.as_str(), s[0].layer_b.as_str()), ("r1", "c1"));
        assert!(
            close(s[0].mean, 0.3)
                && close(s[0].max, 0.5)
                && close(s[0].mean_row_max, 0.5)
                && close(s[0].mean_col_max, 0.3)
        );
        assert!(close(s[3].mean, 0.9) && close(s[3].max, 0.9));
        assert!(
            close(s[2].mean, -0.05)
                && close(s[2].mean_row_max, 0.3)
                && close(s[2].mean_col_max, -0.05)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10))]
        /// `x -> scale x + shift` (scale > 0) on one unit leaves both measures unchanged (up to
        /// the f32 rounding of the changed activations).
        #[test]
        fn affine_change_of_a_unit_is_invisible(seed in 0u64..1000, scale in 0.05f32..20.0, shift in -8f32..8.0) {
            let layers = layers();
            let batches = random_batches(&layers, &[2, 3], seed);
            let mut changed = batches.clone();
            for b in &mut changed {
                b[1].slice_mut(s![.., 1, .., ..]).mapv_inplace(|v| v * scale + shift);
            }
            for measure in Measure::ALL {
                let t = cross_table(&accumulate(&layers, &batches), measure);
                let u = cross_table(&accumulate(&layers, &changed), measure);
                assert_table(&u.values, &t.values, 1e-5);
            }
        }
    }
}

//! Layer-level similarity (linear and debiased CKA) and within-network redundancy, computed from
//! the streaming co-moments of a [`MomentAccumulator`] (pure maths, no activations kept).
//! Use: `let rows = layer_cka(&acc); write_cka_json(path, &rows)?;` and
//! `let clusters = redundancy(&acc, "a", DEFAULT_TAU); write_redundancy_json(path, &clusters)?;`
//!
//! # Samples
//! One CKA example is one row `(z, y, x)`: a sample `z` and a spatial position at the pair's
//! common resolution `(H, W) = (max h, max w)`, the smaller layer bilinearly upsampled
//! (align_corners = true), exactly the rows of [`crate::stats::CoMoments`]. `N = samples * H * W`.
//! Rows of one `z` are not independent, so `N` overstates the effective sample size; this only
//! matters for the debiased estimator, whose correction assumes i.i.d. rows.
//!
//! # Linear CKA
//! With centred row matrices `X [N, Cp]`, `Y [N, Cq]`:
//! `CKA = ||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F)`. `X^T Y` is the pair's `cross`; `X^T X` and
//! `Y^T Y` must be taken over the *same rows*, i.e. at the common resolution: for a layer that is
//! upsampled there, its full `[C, C]` self co-moment after upsampling, which the accumulator
//! keeps for exactly these resolutions ([`MomentAccumulator::self_at`]); for a layer already at
//! the common resolution, its native `(p, p)` block. (The native `X^T X` of an upsampled layer is
//! a different set of rows and is never used.) So linear CKA is computed for every pair; it is
//! `null`, with a note, only when a layer has no variance (all its units dead, see [`is_dead`]).
//!
//! # Debiased CKA
//! Unbiased HSIC (Song et al. 2012), as in Nguyen, Raghu & Kornblith (2021), with linear kernels
//! `K = X X^T`, `L = Y Y^T` and `K~`, `L~` their copies with zeroed diagonals:
//! `HSIC_u = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))`.
//! It is invariant to shifting the features, so take `X`, `Y` centred; then with
//! `a_r = |x_r|^2`, `b_r = |y_r|^2`: `tr(K~ L~) = ||X^T Y||_F^2 - sum_r a_r b_r`,
//! `1^T K~ 1 = -sum_r a_r = -||X||_F^2`, `(K~ 1)_r = -a_r`, `1^T K~ L~ 1 = sum_r a_r b_r`, so
//! `n(n-3) HSIC_u = ||X^T Y||_F^2 - n/(n-2) sum_r a_r b_r + ||X||_F^2 ||Y||_F^2 / ((n-1)(n-2))`
//! and debiased CKA `= HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))` ([`HsicSums`]). The row
//! sums `sum a b` (the pair's), `sum a^2` and `sum b^2` (each layer's self entry at the pair's
//! resolution) come from `stats` ([`crate::stats::CoMoments::row_products`]), which keeps them
//! exact under streaming and merging; statistics files older than format 3 lack them and give
//! `null` with a note. With `N` in the millions the correction is small: debiased and linear
//! CKA differ mostly for nearly independent layers, where the biased value sits above 0.
//!
//! # Redundancy
//! Per layer of one network, from its native self co-moment: `|r_ij|` between live units (dead
//! ones excluded by [`is_dead`]); clusters are the connected components (single linkage) of the
//! graph with edges `|r_ij| >= tau`, of size >= 2.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;
use crate::similarity::is_dead;
use crate::stats::{CoMoments, MomentAccumulator};

/// Default `|r|` threshold of [`redundancy`].
pub const DEFAULT_TAU: f64 = 0.9;

/// Why [`LayerCka::debiased`] is `null` for statistics from older files.
const DEBIASED_NOTE: &str = "debiased CKA needs sum_r |x_r|^2 |y_r|^2, sum_r |x_r|^4 and \
     sum_r |y_r|^4 over centred rows, which this statistics file (format version < 3) lacks";

/// Squared Frobenius norm.
fn fro2(m: ArrayView2<f64>) -> f64 {
    m.iter().map(|v| v * v).sum()
}

/// `x` minus its column means.
fn centred(x: ArrayView2<f64>) -> Array2<f64> {
    match x.mean_axis(Axis(0)) {
        Some(mean) => &x - &mean,
        None => x.to_owned(),
    }
}

/// Linear CKA from centred co-moments over the same rows: `cross = X^T Y [Cp, Cq]`,
/// `self_p = X^T X [Cp, Cp]`, `self_q = Y^T Y [Cq, Cq]` (sums or means alike: the scale cancels).
/// `None` when either side has no variance.
///
/// # Panics
/// When the shapes do not fit together.
pub fn linear_cka(
    cross: ArrayView2<f64>,
    self_p: ArrayView2<f64>,
    self_q: ArrayView2<f64>,
) -> Option<f64> {
    let (cp, cq) = cross.dim();
    assert_eq!(self_p.dim(), (cp, cp), "self_p must be [Cp, Cp]");
    assert_eq!(self_q.dim(), (cq, cq), "self_q must be [Cq, Cq]");
    let den = fro2(self_p).sqrt() * fro2(self_q).sqrt();
    (den > 0.0 && den.is_finite()).then(|| fro2(cross) / den)
}

/// Linear CKA of two row matrices `x [n, Cp]`, `y [n, Cq]` (centred here), O(n C^2).
///
/// # Panics
/// When the row counts differ.
pub fn linear_cka_rows(x: ArrayView2<f64>, y: ArrayView2<f64>) -> Option<f64> {
    assert_eq!(x.nrows(), y.nrows(), "x and y need the same rows");
    let (xc, yc) = (centred(x), centred(y));
    linear_cka(
        xc.t().dot(&yc).view(),
        xc.t().dot(&xc).view(),
        yc.t().dot(&yc).view(),
    )
}

/// The sums the debiased (unbiased-HSIC) linear CKA needs, over rows `r` of centred `X`, `Y`
/// (same rows), with `a_r = |x_r|^2`, `b_r = |y_r|^2`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HsicSums {
    /// `||X^T Y||_F^2`.
    pub cross_fro2: f64,
    /// `||X^T X||_F^2`.
    pub self_p_fro2: f64,
    /// `||Y^T Y||_F^2`.
    pub self_q_fro2: f64,
    /// `||X||_F^2 = sum_r a_r` (the sum of `m2_p`).
    pub norm2_p: f64,
    /// `||Y||_F^2 = sum_r b_r` (the sum of `m2_q`).
    pub norm2_q: f64,
    /// `sum_r a_r b_r`.
    pub row_pq: f64,
    /// `sum_r a_r^2`.
    pub row_pp: f64,
    /// `sum_r b_r^2`.
    pub row_qq: f64,
}

impl HsicSums {
    /// The sums of two row matrices `x [n, Cp]`, `y [n, Cq]` (centred here).
    ///
    /// # Panics
    /// When the row counts differ.
    pub fn from_rows(x: ArrayView2<f64>, y: ArrayView2<f64>) -> Self {
        assert_eq!(x.nrows(), y.nrows(), "x and y need the same rows");
        let (xc, yc) = (centred(x), centred(y));
        let a = xc.map_axis(Axis(1), |r| r.dot(&r));
        let b = yc.map_axis(Axis(1), |r| r.dot(&r));
        HsicSums {
            cross_fro2: fro2(xc.t().dot(&yc).view()),
            self_p_fro2: fro2(xc.t().dot(&xc).view()),
            self_q_fro2: fro2(yc.t().dot(&yc).view()),
            norm2_p: a.sum(),
            norm2_q: b.sum(),
            row_pq: a.dot(&b),
            row_pp: a.dot(&a),
            row_qq: b.dot(&b),
        }
    }
}

/// `n (n - 3) HSIC_u` of two linear kernels from centred sums (see the module doc).
fn hsic_u_scaled(fro2: f64, rows: f64, norm2_p: f64, norm2_q: f64, n: f64) -> f64 {
    fro2 - n / (n - 2.0) * rows + norm2_p * norm2_q / ((n - 1.0) * (n - 2.0))
}

/// Debiased linear CKA over `n` rows from [`HsicSums`]:
/// `HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))`. Can be slightly negative (unbiased);
/// NaN when `n < 4` or when a self term is not positive (no variance, or too few rows).
pub fn debiased_cka_from_sums(sums: &HsicSums, n: f64) -> f64 {
    // Also catches a NaN `n`.
    if n.partial_cmp(&4.0).is_none_or(|o| o.is_lt()) {
        return f64::NAN;
    }
    let s = sums;
    let xy = hsic_u_scaled(s.cross_fro2, s.row_pq, s.norm2_p, s.norm2_q, n);
    let xx = hsic_u_scaled(s.self_p_fro2, s.row_pp, s.norm2_p, s.norm2_p, n);
    let yy = hsic_u_scaled(s.self_q_fro2, s.row_qq, s.norm2_q, s.norm2_q, n);
    if xx > 0.0 && yy > 0.0 {
        xy / (xx.sqrt() * yy.sqrt())
    } else {
        f64::NAN
    }
}

/// Song et al.'s unbiased HSIC of two `n x n` kernels, straight from its definition.
fn hsic_u_gram(k: &Array2<f64>, l: &Array2<f64>) -> f64 {
    let n = k.nrows() as f64;
    let (mut trace, mut sum_k, mut sum_l, mut cross) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..k.nrows() {
        let (mut row_k, mut row_l) = (0.0, 0.0);
        for j in (0..k.nrows()).filter(|&j| j != i) {
            trace += k[[i, j]] * l[[i, j]];
            row_k += k[[i, j]];
            row_l += l[[i, j]];
        }
        sum_k += row_k;
        sum_l += row_l;
        cross += row_k * row_l;
    }
    (trace + sum_k * sum_l / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * cross) / (n * (n - 3.0))
}

/// Debiased linear CKA from the `n x n` Gram matrices of the raw (uncentred) rows `x [n, Cp]`,
/// `y [n, Cq]`: O(n^2) memory and time, for tests and small inputs. NaN as in
/// [`debiased_cka_from_sums`].
///
/// # Panics
/// When the row counts differ.
pub fn debiased_cka_gram(x: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
    assert_eq!(x.nrows(), y.nrows(), "x and y need the same rows");
    if x.nrows() < 4 {
        return f64::NAN;
    }
    let (k, l) = (x.dot(&x.t()), y.dot(&y.t()));
    let (xx, yy) = (hsic_u_gram(&k, &k), hsic_u_gram(&l, &l));
    if xx > 0.0 && yy > 0.0 {
        hsic_u_gram(&k, &l) / (xx.sqrt() * yy.sqrt())
    } else {
        f64::NAN
    }
}

/// CKA of one pair of layers (one entry of `cka.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCka {
    /// Name of the first layer.
    pub layer_p: String,
    /// Network of the first layer (`"a"` or `"b"`).
    pub network_p: String,
    /// Name of the second layer.
    pub layer_q: String,
    /// Network of the second layer.
    pub network_q: String,
    /// Common resolution `(H, W)` of the rows.
    pub resolution: (usize, usize),
    /// Linear CKA in `[0, 1]`; `None` only when a layer has no variance or nothing was counted
    /// (see `note`).
    pub linear: Option<f64>,
    /// Debiased linear CKA (can be slightly negative); `None` when linear CKA is, or when the
    /// statistics lack the row sums (see `note`).
    pub debiased: Option<f64>,
    /// Why a value is missing.
    pub note: Option<String>,
}

/// Whether every unit of a layer is dead ([`is_dead`]) over the rows of `m`, so that its self
/// co-moment is zero up to rounding (bilinear upsampling of a constant map is constant only up
/// to rounding, which would otherwise give a meaningless ratio of tiny numbers).
fn no_variance(m: &CoMoments) -> bool {
    (m.m2_p.iter().zip(m.mean_p)).all(|(&m2, &mean)| is_dead(m2, m.count, mean))
}

/// One pair's entry; `p` and `q` are layer indices of `acc`.
fn pair_cka(acc: &MomentAccumulator, p: usize, q: usize) -> LayerCka {
    let (lp, lq) = (&acc.layers()[p], &acc.layers()[q]);
    let block = acc.block(p, q).expect("layer indices come from acc");
    let (h, w) = block.resolution;
    // Both self co-moments over the pair's rows (upsampled where a layer is smaller).
    let own = |l: usize| {
        acc.self_at(l, (h, w))
            .expect("stats keeps every layer's self co-moment at each of its pairs' resolutions")
    };
    let (sp, sq) = (own(p), own(q));
    let mut notes = Vec::new();
    let dead: Vec<String> = [(lp, &sp), (lq, &sq)]
        .iter()
        .filter(|(_, m)| no_variance(m))
        .map(|(l, _)| format!("{}:{}", l.network, l.name))
        .collect();
    let linear = if dead.is_empty() {
        linear_cka(block.cross, sp.cross, sq.cross)
    } else {
        None
    };
    let debiased = match (block.row_products, sp.row_products, sq.row_products) {
        (Some(row_pq), Some(row_pp), Some(row_qq)) if linear.is_some() => {
            let sums = HsicSums {
                cross_fro2: fro2(block.cross),
                self_p_fro2: fro2(sp.cross),
                self_q_fro2: fro2(sq.cross),
                norm2_p: sp.m2_p.sum(),
                norm2_q: sq.m2_p.sum(),
                row_pq,
                row_pp,
                row_qq,
            };
            Some(debiased_cka_from_sums(&sums, block.count)).filter(|v| v.is_finite())
        }
        _ => None,
    };
    if block.count == 0.0 {
        notes.push("linear CKA undefined: no samples".to_string());
    } else if linear.is_none() {
        let which = if dead.is_empty() {
            "a layer".to_string()
        } else {
            dead.join(" and ")
        };
        notes.push(format!(
            "linear CKA undefined: no variance in {which} at {h}x{w}"
        ));
    }
    if block.row_products.is_none() {
        notes.push(DEBIASED_NOTE.to_string());
    } else if linear.is_some() && debiased.is_none() {
        notes.push("debiased CKA undefined: fewer than 4 rows".to_string());
    }
    LayerCka {
        layer_p: lp.name.clone(),
        network_p: lp.network.clone(),
        layer_q: lq.name.clone(),
        network_q: lq.network.clone(),
        resolution: (h, w),
        linear,
        debiased,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// CKA for every layer pair: first A x B (`p` in network `"a"`, `q` in `"b"`, row-major), then
/// within A and within B (`p` before `q` in layer order; a layer with itself is left out).
pub fn layer_cka(acc: &MomentAccumulator) -> Vec<LayerCka> {
    let of = |net: &str| -> Vec<usize> {
        let layers = acc.layers();
        (0..layers.len())
            .filter(|&l| layers[l].network == net)
            .collect()
    };
    let (a, b) = (of("a"), of("b"));
    let mut pairs: Vec<(usize, usize)> = a
        .iter()
        .flat_map(|&p| b.iter().map(move |&q| (p, q)))
        .collect();
    for net in [&a, &b] {
        for (i, &p) in net.iter().enumerate() {
            pairs.extend(net[i + 1..].iter().map(|&q| (p, q)));
        }
    }
    pairs
        .into_iter()
        .map(|(p, q)| pair_cka(acc, p, q))
        .collect()
}

/// A group of near-duplicate units of one layer (single linkage on `|r| >= tau`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedundantCluster {
    /// Network of the layer.
    pub network: String,
    /// Layer name.
    pub layer: String,
    /// Channels in the cluster, ascending (at least two).
    pub units: Vec<usize>,
    /// Largest `|r|` between two units of the cluster.
    pub max_abs_r: f64,
    /// Mean `|r|` over all unordered pairs of units of the cluster (not only the linking edges).
    pub mean_abs_r: f64,
}

/// Root of `i` in a union-find forest, halving paths on the way.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Redundant unit clusters of every layer of `network` ([`DEFAULT_TAU`] is the usual `tau`), from
/// each layer's native self co-moment: `|r_ij| = |C_ij| / sqrt(m2_i m2_j)` (capped at 1) between
/// live units; clusters = connected components of size >= 2 of the graph `|r_ij| >= tau`. Ordered
/// by layer, then by smallest unit. Empty for an unknown network.
pub fn redundancy(acc: &MomentAccumulator, network: &str, tau: f64) -> Vec<RedundantCluster> {
    let mut out = Vec::new();
    for (l, spec) in acc.layers().iter().enumerate() {
        if spec.network != network {
            continue;
        }
        let m = acc.native(l).expect("layer index comes from acc");
        let live: Vec<usize> = (0..spec.channels)
            .filter(|&i| !is_dead(m.m2_p[i], m.count, m.mean_p[i]))
            .collect();
        let abs_r = |i: usize, j: usize| {
            (m.cross[[i, j]] / (m.m2_p[i].sqrt() * m.m2_p[j].sqrt()))
                .abs()
                .min(1.0)
        };
        let mut parent: Vec<usize> = (0..live.len()).collect();
        for i in 0..live.len() {
            for j in i + 1..live.len() {
                if abs_r(live[i], live[j]) >= tau {
                    let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                    parent[ri.max(rj)] = ri.min(rj);
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (k, &unit) in live.iter().enumerate() {
            let root = find(&mut parent, k);
            groups.entry(root).or_default().push(unit);
        }
        for units in groups.into_values().filter(|u| u.len() >= 2) {
            let rs: Vec<f64> = units
                .iter()
                .enumerate()
                .flat_map(|(a, &i)| units[a + 1..].iter().map(move |&j| (i, j)))
                .map(|(i, j)| abs_r(i, j))
                .collect();
            out.push(RedundantCluster {
                network: spec.network.clone(),
                layer: spec.name.clone(),
                max_abs_r: rs.iter().copied().fold(0.0, f64::max),
                mean_abs_r: rs.iter().sum::<f64>() / rs.len() as f64,
                units,
            });
        }
    }
    out
}

/// Pretty JSON with a final newline, written atomically.
fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    atomic_write(path, &bytes)
}

/// Writes the [`layer_cka`] rows as a JSON array (missing values as `null`), atomically.
pub fn write_cka_json(path: &Path, rows: &[LayerCka]) -> std::io::Result<()> {
    write_json(path, rows)
}

/// Writes the [`redundancy`] clusters as a JSON array, atomically.
pub fn write_redundancy_json(path: &Path, clusters: &[RedundantCluster]) -> std::io::Result<()> {
    write_json(path, clusters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LayerSpec;
    use crate::stats::testutil::{accumulate, naive_rows, random_batches, spec};
    use ndarray::{Array1, Array4, s};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn normal(rng: &mut ChaCha8Rng, n: usize, c: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, c), |_| StandardNormal.sample(rng))
    }

    /// A random orthogonal matrix: Gram-Schmidt on the columns of a Gaussian matrix.
    fn orthogonal(rng: &mut ChaCha8Rng, c: usize) -> Array2<f64> {
        let mut q = normal(rng, c, c);
        for j in 0..c {
            for k in 0..j {
                let proj = q.column(j).dot(&q.column(k));
                let qk = q.column(k).to_owned();
                q.column_mut(j).scaled_add(-proj, &qk);
            }
            let norm = q.column(j).dot(&q.column(j)).sqrt();
            q.column_mut(j).mapv_inplace(|v| v / norm);
        }
        q
    }

    /// Linear CKA with plain loops over per-unit row vectors (`units[i][r]`), centred here.
    fn cka_loops(xs: &[Vec<f64>], ys: &[Vec<f64>]) -> f64 {
        let centre = |u: &Vec<f64>| {
            let m = u.iter().sum::<f64>() / u.len() as f64;
            u.iter().map(|v| v - m).collect::<Vec<f64>>()
        };
        let (xs, ys): (Vec<_>, Vec<_>) = (
            xs.iter().map(centre).collect(),
            ys.iter().map(centre).collect(),
        );
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(s, t)| s * t).sum::<f64>();
        let gram = |a: &[Vec<f64>], b: &[Vec<f64>]| {
            let mut f = 0.0;
            for u in a {
                for v in b {
                    f += dot(u, v).powi(2);
                }
            }
            f
        };
        gram(&xs, &ys) / (gram(&xs, &xs).sqrt() * gram(&ys, &ys).sqrt())
    }

    fn find_row<'a>(rows: &'a [LayerCka], p: (&str, &str), q: (&str, &str)) -> &'a LayerCka {
        rows.iter()
            .find(|r| {
                (r.network_p.as_str(), r.layer_p.as_str()) == p
                    && (r.network_q.as_str(), r.layer_q.as_str()) == q
            })
            .unwrap_or_else(|| panic!("no row {p:?} {q:?}"))
    }

    #[test]
    fn linear_cka_from_moments_matches_direct_loops() {
        let layers = vec![
            spec("a", "l1", 3, 4, 4),
            spec("a", "l2", 2, 4, 4),
            spec("a", "l3", 2, 3, 5),
            spec("b", "l1", 4, 4, 4),
            spec("b", "l2", 1, 4, 4),
            spec("b", "l3", 2, 6, 3),
        ];
        let batches = random_batches(&layers, &[3, 5, 2], 17);
        let acc = accumulate(&layers, &batches);
        let rows = layer_cka(&acc);
        // 3 x 3 across, 3 within A, 3 within B; A x B first.
        assert_eq!(rows.len(), 15);
        assert_eq!(
            (rows[0].network_p.as_str(), rows[0].network_q.as_str()),
            ("a", "b")
        );
        assert_eq!(
            (rows[9].network_p.as_str(), rows[9].network_q.as_str()),
            ("a", "a")
        );
        assert_eq!(
            (rows[14].layer_p.as_str(), rows[14].layer_q.as_str()),
            ("l2", "l3")
        );
        let mut mixed = 0;
        for r in &rows {
            let p = acc.layer_index(&r.network_p, &r.layer_p).unwrap();
            let q = acc.layer_index(&r.network_q, &r.layer_q).unwrap();
            let (h, w) = r.resolution;
            assert_eq!(
                (h, w),
                (
                    layers[p].height.max(layers[q].height),
                    layers[p].width.max(layers[q].width)
                )
            );
            assert_eq!(r.note, None);
            // Rows at the common resolution, each layer upsampled independently of `stats`.
            let (xs, ys) = (
                naive_rows(&batches, p, h, w, &|_, v| v),
                naive_rows(&batches, q, h, w, &|_, v| v),
            );
            let want = cka_loops(&xs, &ys);
            // Debiased: the O(n^2) Gram-matrix definition on the same rows.
            let as_rows = |us: &Vec<Vec<f64>>| {
                Array2::from_shape_fn((us[0].len(), us.len()), |(r, c)| us[c][r])
            };
            let gram = debiased_cka_gram(as_rows(&xs).view(), as_rows(&ys).view());
            let debiased = r.debiased.unwrap();
            assert!(
                (debiased - gram).abs() < 1e-9,
                "{r:?}: {debiased} vs {gram}"
            );
            assert!(
                debiased < r.linear.unwrap(),
                "the correction lowers CKA here"
            );
            let got = r.linear.unwrap();
            assert!((got - want).abs() < 1e-9, "{r:?}: {got} vs {want}");
            assert!(want > 0.01 && want < 1.0, "a meaningful value: {want}");
            let upsampled = [&layers[p], &layers[q]]
                .iter()
                .any(|l| (l.height, l.width) != (h, w));
            mixed += usize::from(upsampled);
        }
        // All but {a.l1, a.l2} x {b.l1, b.l2}, a.l1-a.l2 and b.l1-b.l2 (all 4x4).
        assert_eq!(mixed, 9);
        // (a.l3 3x5, b.l3 6x3) meet at 6x5, both upsampled. The native self co-moments are over
        // other rows and would give a different (wrong) value.
        let both = find_row(&rows, ("a", "l3"), ("b", "l3"));
        assert_eq!(both.resolution, (6, 5));
        let (p, q) = (2, 5);
        let native = linear_cka(
            acc.block(p, q).unwrap().cross,
            acc.native(p).unwrap().cross,
            acc.native(q).unwrap().cross,
        )
        .unwrap();
        assert!(
            (native - both.linear.unwrap()).abs() > 1e-3,
            "{native} vs {both:?}"
        );
    }

    #[test]
    fn linear_cka_is_one_on_itself_and_invariant() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (n, c) = (60, 6);
        let x = normal(&mut rng, n, c) + 0.5;
        let q = orthogonal(&mut rng, c);
        let qtq = q.t().dot(&q);
        for ((i, j), v) in qtq.indexed_iter() {
            assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12, "Q^T Q");
        }
        let z = x.slice(s![.., ..4]).to_owned() * 0.7 + normal(&mut rng, n, 4);
        let base = linear_cka_rows(x.view(), z.view()).unwrap();
        assert!(base > 0.1 && base < 0.9, "{base}");
        let one = |a: Option<f64>| assert!((a.unwrap() - 1.0).abs() < 1e-12, "{a:?}");
        one(linear_cka_rows(x.view(), x.view()));
        one(linear_cka_rows(x.view(), (x.dot(&q) * 2.5 + 3.0).view()));
        let near = |a: Option<f64>| assert!((a.unwrap() - base).abs() < 1e-12, "{a:?} vs {base}");
        near(linear_cka_rows(x.dot(&q).view(), z.view()));
        near(linear_cka_rows((&x * 3.0).view(), (&z * 0.1).view()));
        near(linear_cka_rows(z.view(), x.view()));
        for _ in 0..20 {
            let (a, b) = (normal(&mut rng, 15, 3), normal(&mut rng, 15, 5));
            let v = linear_cka_rows(a.view(), (&b + &a.slice(s![.., ..1])).view()).unwrap();
            assert!((0.0..=1.0 + 1e-12).contains(&v), "{v}");
        }
        // No variance: undefined.
        assert_eq!(
            linear_cka_rows(x.view(), Array2::from_elem((n, 2), 4.0).view()),
            None
        );
    }

    #[test]
    fn accumulated_cka_of_rotated_scaled_copy_is_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let c = 5;
        let q = orthogonal(&mut rng, c);
        let layers: Vec<LayerSpec> = vec![spec("a", "x", c, 3, 4), spec("b", "y", c, 3, 4)];
        let batches: Vec<Vec<Array4<f32>>> = (0..3)
            .map(|_| {
                let xa = Array4::from_shape_fn((4, c, 3, 4), |_| StandardNormal.sample(&mut rng));
                // y[k, j, ..] = 2.5 sum_i x[k, i, ..] Q[i, j] - 1.
                let xb = Array4::from_shape_fn((4, c, 3, 4), |(k, j, y, x)| {
                    let v: f64 = (0..c).map(|i| xa[[k, i, y, x]] * q[[i, j]]).sum();
                    (2.5 * v - 1.0) as f32
                });
                vec![xa.mapv(|v: f64| v as f32), xb]
            })
            .collect();
        let rows = layer_cka(&accumulate(&layers, &batches));
        assert_eq!(rows.len(), 1);
        let v = rows[0].linear.unwrap();
        assert!((v - 1.0).abs() < 1e-6, "{v}"); // f32 activations
    }

    #[test]
    fn debiased_from_sums_matches_gram() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (n, cp, cq) in [(20, 3, 4), (29, 6, 2), (40, 5, 5), (4, 2, 3)] {
            let x = normal(&mut rng, n, cp) + 2.0;
            let noise = normal(&mut rng, n, cq);
            let y = &noise + &x.slice(s![.., ..1]) * 0.8 - 1.0;
            for (a, b) in [(&x, &y), (&x, &noise), (&x, &x)] {
                let sums = HsicSums::from_rows(a.view(), b.view());
                let got = debiased_cka_from_sums(&sums, n as f64);
                let want = debiased_cka_gram(a.view(), b.view());
                assert!((got - want).abs() < 1e-9, "n={n}: {got} vs {want}");
                // CKA(X, X) stays 1; otherwise debiasing removes the (positive) small-n bias
                // of linear CKA here (not a theorem for tiny n, hence n >= 20).
                let biased = linear_cka_rows(a.view(), b.view()).unwrap();
                if std::ptr::eq(a, b) {
                    assert!((got - 1.0).abs() < 1e-12, "{got}");
                } else if n >= 20 {
                    assert!(
                        got < biased - 0.01,
                        "n={n}: debiased {got}, biased {biased}"
                    );
                }
            }
        }
        assert!(
            debiased_cka_gram(normal(&mut rng, 3, 2).view(), normal(&mut rng, 3, 2).view())
                .is_nan()
        );
        assert!(debiased_cka_from_sums(&HsicSums::default(), 10.0).is_nan());
    }

    /// For independent Gaussian `X [n, p]`, `Y [n, q]`, `n(n-3) HSIC_u(K, L)` has mean 0 and
    /// variance ~ `Var ||X^T Y||_F^2 ~ 2 n^2 p q` (each of the `pq` entries of `X^T Y` is
    /// ~ `N(0, n)`), while the self terms are ~ `n^2 p` and `n^2 q` (`||Sigma||_F^2 = p`), so
    /// debiased CKA ~ `N(0, (sqrt(2) / n)^2)`. Biased CKA instead sits near
    /// `sqrt(pq / ((n + p)(n + q)))` (here 8 / 48).
    #[test]
    fn debiased_cka_of_independent_noise_is_near_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, p, q, trials) = (40, 8, 8, 200);
        let sd = 2f64.sqrt() / n as f64;
        let (mut sum, mut sum_sq, mut biased) = (0.0, 0.0, 0.0);
        for _ in 0..trials {
            let (x, y) = (normal(&mut rng, n, p), normal(&mut rng, n, q));
            let v = debiased_cka_from_sums(&HsicSums::from_rows(x.view(), y.view()), n as f64);
            assert!(v.abs() < 6.0 * sd, "{v} beyond 6 sd = {}", 6.0 * sd);
            sum += v;
            sum_sq += v * v;
            biased += linear_cka_rows(x.view(), y.view()).unwrap();
        }
        let (mean, biased) = (sum / trials as f64, biased / trials as f64);
        let spread = (sum_sq / trials as f64 - mean * mean).sqrt();
        eprintln!(
            "debiased mean {mean:.5} sd {spread:.5} (theory {sd:.5}); biased mean {biased:.4}"
        );
        assert!(
            mean.abs() < 4.0 * sd / (trials as f64).sqrt(),
            "mean {mean}"
        );
        assert!(
            spread > 0.5 * sd && spread < 1.5 * sd,
            "sd {spread} vs {sd}"
        );
        assert!((biased - 8.0 / 48.0).abs() < 0.03, "biased {biased}");
    }

    /// Activations `[n, C, h, w]` with independent uniform channels, then `edit` per sample.
    fn layer_batch(
        rng: &mut ChaCha8Rng,
        n: usize,
        c: usize,
        edit: &dyn Fn(&mut Array2<f64>),
    ) -> Array4<f32> {
        let mut out = Array4::zeros((n, c, 3, 3));
        for k in 0..n {
            let mut units = normal(rng, c, 9);
            edit(&mut units);
            for ch in 0..c {
                for (i, v) in units.row(ch).iter().enumerate() {
                    out[[k, ch, i / 3, i % 3]] = *v as f32;
                }
            }
        }
        out
    }

    #[test]
    fn redundancy_finds_linear_copies_and_chains() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let layers = vec![
            spec("a", "copies", 6, 3, 3),
            spec("a", "free", 4, 3, 3),
            spec("a", "chain", 4, 3, 3),
            spec("b", "copies", 6, 3, 3),
        ];
        let copies = |u: &mut Array2<f64>| {
            let c0 = u.row(0).to_owned();
            u.row_mut(2).assign(&(&c0 * 3.0 + 1.0));
            u.row_mut(5).assign(&(-&c0));
            u.row_mut(4).fill(0.7); // dead: excluded
        };
        // r(0,1) ~ 0.944, r(1,2) ~ 0.963, r(0,2) ~ 0.819: one cluster only through unit 1.
        let chain = |u: &mut Array2<f64>| {
            let (c0, e): (Array1<f64>, Array1<f64>) = (u.row(0).to_owned(), u.row(3).to_owned());
            u.row_mut(1).assign(&(&c0 + &(&e * 0.35)));
            u.row_mut(2).assign(&(&c0 + &(&e * 0.7)));
            u.row_mut(3).fill(0.0); // dead too
        };
        let batches: Vec<Vec<Array4<f32>>> = (0..4)
            .map(|_| {
                vec![
                    layer_batch(&mut rng, 25, 6, &copies),
                    layer_batch(&mut rng, 25, 4, &|_| {}),
                    layer_batch(&mut rng, 25, 4, &chain),
                    layer_batch(&mut rng, 25, 6, &|_| {}),
                ]
            })
            .collect();
        let acc = accumulate(&layers, &batches);
        let clusters = redundancy(&acc, "a", DEFAULT_TAU);
        assert_eq!(clusters.len(), 2, "{clusters:?}");
        let c = &clusters[0];
        assert_eq!(
            (c.network.as_str(), c.layer.as_str(), c.units.as_slice()),
            ("a", "copies", &[0, 2, 5][..])
        );
        assert!(
            (c.max_abs_r - 1.0).abs() < 1e-6 && (c.mean_abs_r - 1.0).abs() < 1e-6,
            "{c:?}"
        );
        let c = &clusters[1];
        assert_eq!(
            (c.layer.as_str(), c.units.as_slice()),
            ("chain", &[0, 1, 2][..])
        );
        assert!(c.max_abs_r > 0.95 && c.max_abs_r < 0.98, "{c:?}");
        assert!(c.mean_abs_r > 0.88 && c.mean_abs_r < c.max_abs_r, "{c:?}");
        // Independent channels (b, and a.free): nothing; a stricter tau splits the chain.
        assert!(redundancy(&acc, "b", DEFAULT_TAU).is_empty());
        assert!(redundancy(&acc, "nope", DEFAULT_TAU).is_empty());
        let strict = redundancy(&acc, "a", 0.999);
        assert_eq!(strict.len(), 1);
        assert_eq!(strict[0].units, vec![0, 2, 5]);
        let loose = redundancy(&acc, "a", 0.0);
        assert_eq!(
            loose.iter().map(|c| c.units.len()).collect::<Vec<_>>(),
            vec![5, 4, 3]
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redundancy.json");
        write_redundancy_json(&path, &clusters).unwrap();
        let back: Vec<RedundantCluster> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.len(), clusters.len());
        for (b, c) in back.iter().zip(&clusters) {
            assert_eq!(
                (&b.network, &b.layer, &b.units),
                (&c.network, &c.layer, &c.units)
            );
            assert!((b.max_abs_r - c.max_abs_r).abs() < 1e-15);
            assert!((b.mean_abs_r - c.mean_abs_r).abs() < 1e-15);
        }
    }

    #[test]
    fn cka_json_round_trips_with_nulls() {
        // a.d is constant (0.3 does not survive bilinear weights exactly): only (x, y) is defined.
        let layers = vec![
            spec("a", "x", 2, 2, 2),
            spec("a", "d", 2, 3, 3),
            spec("b", "y", 3, 4, 4),
        ];
        let mut batches = random_batches(&layers, &[3, 2], 1);
        for b in &mut batches {
            b[1].fill(0.3);
        }
        let acc = accumulate(&layers, &batches);
        let rows = layer_cka(&acc);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cka.json");
        write_cka_json(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"linear\": null") && text.contains("\"debiased\": null"),
            "{text}"
        );
        assert!(rows.iter().any(|r| r.debiased.is_some()), "{rows:?}");
        let back: Vec<LayerCka> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.len(), 3);
        for (b, r) in back.iter().zip(&rows) {
            assert_eq!(
                (&b.layer_p, &b.layer_q, b.resolution, &b.note),
                (&r.layer_p, &r.layer_q, r.resolution, &r.note)
            );
            assert_eq!(b.debiased.is_some(), r.debiased.is_some());
            if let (Some(u), Some(v)) = (b.debiased, r.debiased) {
                assert!((u - v).abs() < 1e-15, "{u} vs {v}");
            }
            if let (Some(u), Some(v)) = (b.linear, r.linear) {
                assert!((u - v).abs() < 1e-15, "{u} vs {v}");
            } else {
                assert_eq!((b.linear, r.linear), (None, None));
            }
        }
        // Mixed resolutions are computed (x upsampled to 4x4); the dead layer gives nulls.
        let xy = find_row(&rows, ("a", "x"), ("b", "y"));
        assert_eq!(xy.resolution, (4, 4));
        assert!(xy.linear.is_some_and(|v| v > 0.0 && v <= 1.0), "{xy:?}");
        for (p, q, at) in [
            (("a", "d"), ("b", "y"), "4x4"),
            (("a", "x"), ("a", "d"), "3x3"),
        ] {
            let r = find_row(&rows, p, q);
            assert_eq!(r.linear, None, "{r:?}");
            let note = r.note.as_deref().unwrap();
            assert!(
                note.contains(&format!("no variance in a:d at {at}")),
                "{note}"
            );
        }
    }
}

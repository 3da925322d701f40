//! Streaming, mergeable moments of unit activations: means, sums of squares and cross co-moments.
//! Use: `let mut acc = MomentAccumulator::new(layers)?;` then `acc.add_batch(&views)?` once per batch
//! (one `[n, C, h, w]` view per layer); shards combine with `acc.merge(&other)?`; `save`/`load` resume.
//! Read back with `acc.block(p, q)` (a pair at its common resolution), `acc.native(l)` and
//! `acc.self_at(l, (H, W))` (a layer's full self co-moment, also upsampled to another pair's
//! resolution).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis, Zip, s};
use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

/// Version of the on-disk layout written by [`MomentAccumulator::save`].
/// Version 2 added the upsampled self co-moments (`resampled.*` tensors); a version-1 file is
/// still read when its layout has none. Version 3 added the row sums of debiased CKA
/// (`*.row_t|row_g|row_h`); older files load without them (debiased CKA is then `null`).
pub const FORMAT_VERSION: u32 = 3;
/// A layer at one resolution: `(layer index, height, width)`.
type LayerAt = (usize, usize, usize);
/// Metadata key (safetensors header) holding the JSON [`FileHeader`].
const HEADER_KEY: &str = "unitmatch.moments";
/// Upsampled, centred activations kept in memory at once by `add_batch` (bytes, approximate):
/// larger batches are processed in sample chunks and Chan-merged, which is exact.
const CHUNK_BYTES: usize = 64 << 20;

/// Errors of the statistics stage; each carries the layer, shape or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The layer list given to [`MomentAccumulator::new`] is unusable.
    #[error("invalid layer layout: {0}")]
    Layout(String),
    /// `add_batch` got a different number of arrays than there are layers.
    #[error("expected {expected} activation arrays (one per layer), found {found}")]
    LayerCount { expected: usize, found: usize },
    /// One activation array has the wrong shape.
    #[error("layer `{layer}`: expected activations of shape {expected}, found {found:?}")]
    Shape {
        layer: String,
        expected: String,
        found: Vec<usize>,
    },
    /// Bilinear resizing of an empty spatial axis to a non-empty one.
    #[error("cannot resize a map of size {from:?} to {to:?}")]
    Resize {
        from: (usize, usize),
        to: (usize, usize),
    },
    /// An activation is NaN or infinite.
    #[error("layer `{layer}`: activations contain NaN or infinite values")]
    NonFinite { layer: String },
    /// `merge` of accumulators built over different layer lists.
    #[error("cannot merge accumulators with different layer layouts")]
    LayoutMismatch,
    /// Reading or writing a moments file failed.
    #[error("cannot access moments file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A moments file exists but is not a valid one (corrupt, truncated, other version).
    #[error("{} is not a valid moments file: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

/// One layer whose units (channels) are scored: activations arrive as `[n, channels, height, width]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Which network the layer belongs to, `"a"` or `"b"`.
    pub network: String,
    /// Stable dotted layer name, e.g. `gen.block1`.
    pub name: String,
    /// Number of units (channels).
    pub channels: usize,
    /// Spatial height of the layer's maps.
    pub height: usize,
    /// Spatial width of the layer's maps.
    pub width: usize,
}

/// Taps of 1-D linear interpolation with `align_corners = true`: for output index `d`,
/// `src = d (in - 1) / (out - 1)` (0 when `out == 1`), `i0 = floor(src)`, `i1 = min(i0 + 1, in - 1)`,
/// returned as `(i0, i1, src - i0)`. Integer arithmetic keeps `i0` exact and makes equal sizes an
/// exact identity.
fn axis_taps(input: usize, output: usize) -> Vec<(usize, usize, f64)> {
    (0..output)
        .map(|d| {
            if output <= 1 || input <= 1 {
                return (0, 0, 0.0);
            }
            let num = d * (input - 1);
            let i0 = num / (output - 1);
            let frac = (num % (output - 1)) as f64 / (output - 1) as f64;
            (i0, (i0 + 1).min(input - 1), frac)
        })
        .collect()
}

/// Bilinearly resizes one `[h, w]` map into `dst` (`[out_h, out_w]`, row-major), with the taps of
/// [`axis_taps`]: `out = (1-wy)((1-wx) x00 + wx x01) + wy((1-wx) x10 + wx x11)`, as PyTorch does.
fn resize_plane(
    src: ArrayView2<f32>,
    ty: &[(usize, usize, f64)],
    tx: &[(usize, usize, f64)],
    dst: &mut [f64],
) {
    let ow = tx.len();
    if src.dim() == (ty.len(), ow) {
        for (d, &v) in dst.iter_mut().zip(src.iter()) {
            *d = f64::from(v);
        }
        return;
    }
    for (row, &(y0, y1, wy)) in dst.chunks_exact_mut(ow).zip(ty) {
        for (out, &(x0, x1, wx)) in row.iter_mut().zip(tx) {
            let at = |y: usize, x: usize| f64::from(src[[y, x]]);
            let top = (1.0 - wx) * at(y0, x0) + wx * at(y0, x1);
            let bottom = (1.0 - wx) * at(y1, x0) + wx * at(y1, x1);
            *out = (1.0 - wy) * top + wy * bottom;
        }
    }
}

/// PyTorch's `F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=True)` in f64.
///
/// Source coordinate per axis: `src = dst (in - 1) / (out - 1)` (0 when `out == 1`), linear in
/// each axis; sizes that already match are copied unchanged. PyTorch computes `src` in the input
/// precision, so f32 results may differ from these in the last bits.
///
/// # Shapes
/// `x: [n, c, h, w]` -> `[n, c, out_h, out_w]`.
pub fn upsample_bilinear_align_corners(
    x: ArrayView4<f32>,
    out_h: usize,
    out_w: usize,
) -> Result<Array4<f64>, StatsError> {
    let (n, c, h, w) = x.dim();
    let plane = out_h * out_w;
    if plane > 0 && (h == 0 || w == 0) {
        return Err(StatsError::Resize {
            from: (h, w),
            to: (out_h, out_w),
        });
    }
    if plane == 0 || n * c == 0 {
        return Ok(Array4::zeros((n, c, out_h, out_w)));
    }
    let (ty, tx) = (axis_taps(h, out_h), axis_taps(w, out_w));
    let mut out = vec![0.0; n * c * plane];
    for (i, dst) in out.chunks_exact_mut(plane).enumerate() {
        resize_plane(x.slice(s![i / c, i % c, .., ..]), &ty, &tx, dst);
    }
    Array4::from_shape_vec((n, c, out_h, out_w), out).map_err(|e| StatsError::Layout(e.to_string()))
}

/// Moments of one pair of layers `(p, q)`, `p <= q`, at their common resolution
/// `(H, W) = (max h, max w)` (the smaller layer bilinearly upsampled), over rows `(sample, y, x)`:
///
/// - `count` = number of rows `N` (samples x H x W);
/// - `mean_p[i] = (1/N) sum_r x_p[r, i]`, likewise `mean_q`;
/// - `m2_p[i] = sum_r (x_p[r, i] - mean_p[i])^2`, likewise `m2_q`;
/// - `cross[i, j] = sum_r (x_p[r, i] - mean_p[i]) (x_q[r, j] - mean_q[j])`, `[Cp, Cq]`.
///
/// For `p == q` only one side is stored; `m2` is then the diagonal of `cross`. The same type holds
/// a layer's self co-moment upsampled to another resolution (`p == q == l`, `(H, W)` not `l`'s
/// own; see [`MomentAccumulator::self_at`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PairMoments {
    p: usize,
    q: usize,
    height: usize,
    width: usize,
    count: f64,
    mean_p: Array1<f64>,
    /// `(mean_q, m2_p, m2_q)`; `None` when `p == q`.
    sides: Option<(Array1<f64>, Array1<f64>, Array1<f64>)>,
    cross: Array2<f64>,
    /// Fourth-order row sums for debiased CKA; `None` when loaded from a file that predates
    /// them (format version < 3).
    rows: Option<RowSums>,
}

/// Row sums over the centred rows of a pair that debiased CKA needs beyond the co-moments:
/// with `x_r`, `y_r` the centred rows of `p` and `q` and `a_r = |x_r|^2`, `b_r = |y_r|^2`,
/// - `t = sum_r a_r b_r` (for `p == q`, `sum_r |x_r|^4`);
/// - `g = sum_r y_r a_r`, `[Cq]`, and `h = sum_r x_r b_r`, `[Cp]`, needed only to re-centre
///   `t` when the means move (Chan-style merges).
///
/// Re-centring at `mean_p + d`, `mean_q + e` (`x' = x - d`, `y' = y - e`; `C` the cross
/// co-moment, `A = sum a_r`, `B = sum b_r`, `n` rows; all sums of `x`, `y` are 0):
/// `t' = t - 2 e.g - 2 d.h + |e|^2 A + |d|^2 B + 4 d^T C e + n |d|^2 |e|^2`,
/// `g' = g - e (A + n |d|^2) - 2 C^T d`, `h' = h - d (B + n |e|^2) - 2 C e`.
#[derive(Debug, Clone, PartialEq)]
struct RowSums {
    t: f64,
    g: Array1<f64>,
    h: Array1<f64>,
}

impl RowSums {
    fn zeros(cp: usize, cq: usize) -> Self {
        RowSums {
            t: 0.0,
            g: Array1::zeros(cq),
            h: Array1::zeros(cp),
        }
    }

    /// The sums re-centred by `d` (p side) and `e` (q side); `cross`, `a`, `b` and `n` are the
    /// co-moment, `sum m2_p`, `sum m2_q` and row count at the *old* centre.
    fn shifted(
        &self,
        cross: ArrayView2<f64>,
        (a, b, n): (f64, f64, f64),
        d: ArrayView1<f64>,
        e: ArrayView1<f64>,
    ) -> Self {
        let (dd, ee) = (d.dot(&d), e.dot(&e));
        let ce = cross.dot(&e);
        let ctd = cross.t().dot(&d);
        RowSums {
            t: self.t - 2.0 * e.dot(&self.g) - 2.0 * d.dot(&self.h)
                + ee * a
                + dd * b
                + 4.0 * d.dot(&ce)
                + n * dd * ee,
            g: &self.g - &(&e * (a + n * dd)) - &(ctd * 2.0),
            h: &self.h - &(&d * (b + n * ee)) - &(ce * 2.0),
        }
    }

    /// One batch's sums taken directly about the new centre: `sq_p[r] = |x_r - d|^2` and
    /// `sq_q[r] = |y_r - e|^2` are the rows' squared norms there, `xc`/`yc` the batch-centred
    /// data `[C, rows]`, `d`/`e` the new centre minus the batch means.
    fn direct(
        (xc, sq_p, d): (ArrayView2<f64>, &[f64], ArrayView1<f64>),
        (yc, sq_q, e): (ArrayView2<f64>, &[f64], ArrayView1<f64>),
    ) -> Self {
        let (sp, sq) = (ArrayView1::from(sq_p), ArrayView1::from(sq_q));
        RowSums {
            t: sp.dot(&sq),
            g: yc.dot(&sp) - &(&e * sp.sum()),
            h: xc.dot(&sq) - &(&d * sq.sum()),
        }
    }

    /// The sums of two disjoint row sets about the same centre.
    fn plus(self, other: Self) -> Self {
        RowSums {
            t: self.t + other.t,
            g: self.g + other.g,
            h: self.h + other.h,
        }
    }
}

impl PairMoments {
    /// Empty moments of layers `p` (`cp` units) and `q` (`cq` units) at `(height, width)`.
    fn zeros(
        p: usize,
        q: usize,
        (cp, cq): (usize, usize),
        (height, width): (usize, usize),
    ) -> Self {
        let sides = (p != q).then(|| (Array1::zeros(cq), Array1::zeros(cp), Array1::zeros(cq)));
        PairMoments {
            p,
            q,
            height,
            width,
            count: 0.0,
            mean_p: Array1::zeros(cp),
            sides,
            cross: Array2::zeros((cp, cq)),
            rows: Some(RowSums::zeros(cp, cq)),
        }
    }

    /// Layer indices `(p, q)`, `p <= q`.
    pub fn layers(&self) -> (usize, usize) {
        (self.p, self.q)
    }
    /// Resolution `(H, W)` of the rows: for a pair, `(max(h_p, h_q), max(w_p, w_q))`.
    pub fn resolution(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    /// Number of rows `N` seen (samples x H x W), as f64.
    pub fn count(&self) -> f64 {
        self.count
    }
    /// Per-unit means of layer `p` at the common resolution, `[Cp]`.
    pub fn mean_p(&self) -> ArrayView1<'_, f64> {
        self.mean_p.view()
    }
    /// Per-unit means of layer `q` at the common resolution, `[Cq]`.
    pub fn mean_q(&self) -> ArrayView1<'_, f64> {
        self.sides
            .as_ref()
            .map_or(self.mean_p.view(), |s| s.0.view())
    }
    /// Sums of squared deviations of layer `p`'s units at the common resolution, `[Cp]`.
    pub fn m2_p(&self) -> ArrayView1<'_, f64> {
        self.sides
            .as_ref()
            .map_or(self.cross.diag(), |s| s.1.view())
    }
    /// Sums of squared deviations of layer `q`'s units at the common resolution, `[Cq]`.
    pub fn m2_q(&self) -> ArrayView1<'_, f64> {
        self.sides
            .as_ref()
            .map_or(self.cross.diag(), |s| s.2.view())
    }
    /// Cross co-moment `C_pq`, `[Cp, Cq]`.
    pub fn cross(&self) -> ArrayView2<'_, f64> {
        self.cross.view()
    }

    /// The moments seen from `p`'s side, or from `q`'s when `swap`.
    fn oriented(&self, swap: bool) -> CoMoments<'_> {
        CoMoments {
            resolution: self.resolution(),
            count: self.count,
            mean_p: if swap { self.mean_q() } else { self.mean_p() },
            mean_q: if swap { self.mean_p() } else { self.mean_q() },
            m2_p: if swap { self.m2_q() } else { self.m2_p() },
            m2_q: if swap { self.m2_p() } else { self.m2_q() },
            cross: if swap {
                self.cross().reversed_axes()
            } else {
                self.cross()
            },
            row_products: self.rows.as_ref().map(|r| r.t),
        }
    }

    /// `sum m2_p`, `sum m2_q` and the row count: the scalars [`RowSums::shifted`] needs.
    fn norms(&self) -> (f64, f64, f64) {
        (self.m2_p().sum(), self.m2_q().sum(), self.count)
    }

    /// How far the means move when a part with `nb` rows and means `mean_p`, `mean_q` is
    /// merged in: `(d, e)` for this part and `(d', e')` for the other, each the new mean minus
    /// that part's mean.
    fn merge_shifts(
        &self,
        nb: f64,
        mean_p: ArrayView1<f64>,
        mean_q: ArrayView1<f64>,
    ) -> [Array1<f64>; 4] {
        let n = self.count + nb;
        let dp = &mean_p - &self.mean_p;
        let dq = &mean_q - &self.mean_q();
        [
            &dp * (nb / n),
            &dq * (nb / n),
            &dp * (-self.count / n),
            &dq * (-self.count / n),
        ]
    }

    /// Chan et al.'s pairwise update, after the caller has added the other part's co-moment
    /// into `cross`: with `n = na + nb`, `d = mean_b - mean_a`, `f = na nb / n`:
    /// `mean += d nb / n`, `m2 += m2_b + f d^2`, `cross += f d_p d_q^T`.
    fn chan_update(
        &mut self,
        nb: f64,
        mean_p: ArrayView1<f64>,
        mean_q: ArrayView1<f64>,
        m2: (ArrayView1<f64>, ArrayView1<f64>),
    ) {
        if nb == 0.0 {
            return;
        }
        let n = self.count + nb;
        let f = self.count * nb / n;
        let dp = &mean_p - &self.mean_p;
        let dq = match &self.sides {
            Some(s) => &mean_q - &s.0,
            None => dp.clone(),
        };
        if f != 0.0 {
            let col = dp.view().insert_axis(Axis(1));
            let row = dq.view().insert_axis(Axis(0));
            general_mat_mul(f, &col, &row, 1.0, &mut self.cross);
        }
        self.mean_p.scaled_add(nb / n, &dp);
        if let Some((mq, m2p, m2q)) = &mut self.sides {
            mq.scaled_add(nb / n, &dq);
            Zip::from(m2p)
                .and(&m2.0)
                .and(&dp)
                .for_each(|a, &b, &d| *a += b + f * d * d);
            Zip::from(m2q)
                .and(&m2.1)
                .and(&dq)
                .for_each(|a, &b, &d| *a += b + f * d * d);
        }
        self.count = n;
    }
}

/// Moments of a pair seen from either side: `p`'s quantities first, `cross` as `[Cp, Cq]`
/// (a transposed view when `p > q`). See [`PairMoments`] for the formulas.
#[derive(Debug, Clone)]
pub struct CoMoments<'a> {
    /// Common resolution `(H, W)`.
    pub resolution: (usize, usize),
    /// Rows seen, `N`.
    pub count: f64,
    /// Means of layer `p` at the common resolution, `[Cp]`.
    pub mean_p: ArrayView1<'a, f64>,
    /// Means of layer `q` at the common resolution, `[Cq]`.
    pub mean_q: ArrayView1<'a, f64>,
    /// Sums of squared deviations of layer `p`, `[Cp]`.
    pub m2_p: ArrayView1<'a, f64>,
    /// Sums of squared deviations of layer `q`, `[Cq]`.
    pub m2_q: ArrayView1<'a, f64>,
    /// `sum_r (x_p - mean_p)(x_q - mean_q)^T`, `[Cp, Cq]`.
    pub cross: ArrayView2<'a, f64>,
    /// `sum_r |x_p - mean_p|^2 |x_q - mean_q|^2` over the same rows (for debiased CKA); `None`
    /// when the statistics were loaded from a file that predates it (format version < 3).
    pub row_products: Option<f64>,
}

/// One batch's activations of one layer at one resolution, centred: `data` is `[C, rows]`
/// row-major (rows = `(sample, y, x)`), with the batch means and sums of squared deviations.
struct Centred {
    data: Vec<f64>,
    rows: usize,
    mean: Array1<f64>,
    m2: Array1<f64>,
}

impl Centred {
    /// # Shapes
    /// `x: [n, C, h, w]` -> `data: [C, n * out_h * out_w]`.
    fn new(x: ArrayView4<f32>, out_h: usize, out_w: usize) -> Self {
        let (n, c, h, w) = x.dim();
        let plane = out_h * out_w;
        let rows = n * plane;
        let (ty, tx) = (axis_taps(h, out_h), axis_taps(w, out_w));
        let mut data = vec![0.0; c * rows];
        let (mut mean, mut m2) = (vec![0.0; c], vec![0.0; c]);
        data.par_chunks_exact_mut(rows)
            .zip(mean.par_iter_mut().zip(m2.par_iter_mut()))
            .enumerate()
            .for_each(|(ch, (unit, (mu, ss)))| {
                for (k, dst) in unit.chunks_exact_mut(plane).enumerate() {
                    resize_plane(x.slice(s![k, ch, .., ..]), &ty, &tx, dst);
                }
                *mu = unit.iter().sum::<f64>() / rows as f64;
                *ss = unit
                    .iter_mut()
                    .map(|v| {
                        *v -= *mu;
                        *v * *v
                    })
                    .sum();
            });
        Centred {
            data,
            rows,
            mean: Array1::from(mean),
            m2: Array1::from(m2),
        }
    }

    fn view(&self) -> ArrayView2<'_, f64> {
        ArrayView2::from_shape((self.mean.len(), self.rows), &self.data)
            .expect("data holds C x rows values by construction")
    }
}

/// The JSON header stored in a moments file's safetensors metadata.
#[derive(Debug, Serialize, Deserialize)]
struct FileHeader {
    format_version: u32,
    samples: u64,
    layers: Vec<LayerSpec>,
}

/// Running moments of every pair of layers `p <= q` over the given layers (both networks), plus,
/// as the `(p, p)` pairs, each layer's own statistics at its native resolution, plus each layer's
/// full self co-moment at every other common resolution it is compared at (upsampled), so that
/// both `X^T X` and `Y^T Y` exist over the rows of every pair's `X^T Y`.
///
/// Memory: `O((sum of channels)^2)` for the pairs, `O(sum over resampled entries of C_l^2)` for
/// the upsampled self co-moments, plus one chunk of upsampled activations.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentAccumulator {
    layers: Vec<LayerSpec>,
    samples: u64,
    /// Upper triangle, row by row: `(0,0), (0,1), .., (0,L-1), (1,1), ..`.
    pairs: Vec<PairMoments>,
    /// Self co-moments `(l, l)` at each resolution `(H, W)` other than `l`'s native one that is the
    /// common resolution of a pair containing `l`; one entry per `(l, H, W)`, sorted by it.
    resampled: Vec<PairMoments>,
}

impl MomentAccumulator {
    /// An empty accumulator over `layers` (network and name unique, all sizes non-zero).
    pub fn new(layers: Vec<LayerSpec>) -> Result<Self, StatsError> {
        for (i, l) in layers.iter().enumerate() {
            if l.channels == 0 || l.height == 0 || l.width == 0 {
                return Err(StatsError::Layout(format!(
                    "layer `{}` has a zero size",
                    l.name
                )));
            }
            if layers[..i]
                .iter()
                .any(|o| o.network == l.network && o.name == l.name)
            {
                return Err(StatsError::Layout(format!(
                    "layer `{}` of network `{}` is listed twice",
                    l.name, l.network
                )));
            }
        }
        let mut pairs = Vec::with_capacity(layers.len() * (layers.len() + 1) / 2);
        let mut at: Vec<(usize, usize, usize)> = Vec::new();
        for p in 0..layers.len() {
            for q in p..layers.len() {
                let (lp, lq) = (&layers[p], &layers[q]);
                let res = (lp.height.max(lq.height), lp.width.max(lq.width));
                pairs.push(PairMoments::zeros(p, q, (lp.channels, lq.channels), res));
                for (l, spec) in [(p, lp), (q, lq)] {
                    if (spec.height, spec.width) != res && !at.contains(&(l, res.0, res.1)) {
                        at.push((l, res.0, res.1));
                    }
                }
            }
        }
        at.sort_unstable();
        let resampled = at
            .into_iter()
            .map(|(l, h, w)| {
                let c = layers[l].channels;
                PairMoments::zeros(l, l, (c, c), (h, w))
            })
            .collect();
        Ok(MomentAccumulator {
            layers,
            samples: 0,
            pairs,
            resampled,
        })
    }

    /// The layers, in the order `add_batch` expects them.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.layers
    }

    /// Number of samples (z vectors) accumulated.
    pub fn count(&self) -> u64 {
        self.samples
    }

    /// Index of the layer `name` of `network`.
    pub fn layer_index(&self, network: &str, name: &str) -> Option<usize> {
        self.layers
            .iter()
            .position(|l| l.network == network && l.name == name)
    }

    /// Stored moments of the pair `{p, q}` (in either order; stored as `(min, max)`).
    pub fn pair(&self, p: usize, q: usize) -> Option<&PairMoments> {
        let (i, j, l) = (p.min(q), p.max(q), self.layers.len());
        (j < l).then(|| &self.pairs[i * l - i * (i + 1) / 2 + j])
    }

    /// Layer `l`'s own statistics at its native resolution (the `(l, l)` pair).
    pub fn native(&self, l: usize) -> Option<CoMoments<'_>> {
        self.block(l, l)
    }

    /// Moments of the pair oriented as requested: `p`'s side first, `cross` as `[Cp, Cq]`.
    /// `block(p, p)` gives layer `p`'s native-resolution statistics.
    pub fn block(&self, p: usize, q: usize) -> Option<CoMoments<'_>> {
        let m = self.pair(p, q)?;
        Some(m.oriented(p > m.p))
    }

    /// Layer `l`'s own statistics over the rows at resolution `(H, W)` (its maps bilinearly
    /// upsampled there): `cross` is the full `[C_l, C_l]` self co-moment, `m2_p == m2_q` its
    /// diagonal, `mean_p == mean_q`. The native block when `(H, W)` is `l`'s own resolution;
    /// otherwise stored only when `(H, W)` is the common resolution of some pair containing `l`
    /// ([`block`](Self::block)`(l, r).resolution`), `None` else or when `l` is out of range.
    pub fn self_at(&self, l: usize, resolution: (usize, usize)) -> Option<CoMoments<'_>> {
        let spec = self.layers.get(l)?;
        if (spec.height, spec.width) == resolution {
            return self.native(l);
        }
        let key = (l, resolution.0, resolution.1);
        let i = self
            .resampled
            .binary_search_by(|m| (m.p, m.height, m.width).cmp(&key))
            .ok()?;
        Some(self.resampled[i].oriented(false))
    }

    /// Adds one batch: `acts[l]` is layer `l`'s activations `[n, C_l, h_l, w_l]`, same `n` for all.
    ///
    /// Per pair, both layers are brought to the common resolution, the batch means and the
    /// batch-centred co-moment `Xp_c^T Xq_c` (one GEMM) are computed, and merged into the running
    /// moments with [Chan et al.'s update](PairMoments); likewise `Xl_c^T Xl_c` for each
    /// upsampled self co-moment ([`self_at`](Self::self_at)), from the same upsampled data.
    /// Batches larger than about 64 MiB of upsampled f64 activations are processed in sample
    /// chunks.
    pub fn add_batch(&mut self, acts: &[ArrayView4<f32>]) -> Result<(), StatsError> {
        self.add_batch_chunked(acts, CHUNK_BYTES)
    }

    /// [`add_batch`](Self::add_batch) with at most about `chunk_bytes` of upsampled activations.
    fn add_batch_chunked(
        &mut self,
        acts: &[ArrayView4<f32>],
        chunk_bytes: usize,
    ) -> Result<(), StatsError> {
        if acts.len() != self.layers.len() {
            return Err(StatsError::LayerCount {
                expected: self.layers.len(),
                found: acts.len(),
            });
        }
        let n = acts.first().map_or(0, |a| a.dim().0);
        for (l, a) in self.layers.iter().zip(acts) {
            let layer = format!("{}:{}", l.network, l.name);
            if a.dim() != (n, l.channels, l.height, l.width) {
                return Err(StatsError::Shape {
                    layer,
                    expected: format!("[{n}, {}, {}, {}]", l.channels, l.height, l.width),
                    found: a.shape().to_vec(),
                });
            }
            // Checked up front so that a rejected batch leaves the accumulator untouched.
            if !a.iter().all(|v| v.is_finite()) {
                return Err(StatsError::NonFinite { layer });
            }
        }
        if n == 0 {
            return Ok(());
        }
        let mut needed: Vec<(usize, usize, usize)> = Vec::new();
        for m in self.pairs.iter().chain(&self.resampled) {
            for l in [m.p, m.q] {
                if !needed.contains(&(l, m.height, m.width)) {
                    needed.push((l, m.height, m.width));
                }
            }
        }
        let per_sample: usize = needed
            .iter()
            .map(|&(l, h, w)| 8 * self.layers[l].channels * h * w)
            .sum();
        let chunk = (chunk_bytes / per_sample.max(1)).clamp(1, n);
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            let cache: HashMap<(usize, usize, usize), Centred> = needed
                .iter()
                .map(|&(l, h, w)| {
                    (
                        (l, h, w),
                        Centred::new(acts[l].slice(s![start..end, .., .., ..]), h, w),
                    )
                })
                .collect();
            // Each layer's rows at each resolution, re-centred at the merged mean: their squared
            // norms are shared by every pair of that layer at that resolution.
            let centre: HashMap<LayerAt, (Array1<f64>, Vec<f64>)> = needed
                .par_iter()
                .map(|&(l, h, w)| {
                    let c = &cache[&(l, h, w)];
                    let run = self
                        .self_at(l, (h, w))
                        .expect("every needed (layer, resolution) has self moments");
                    let n = run.count + c.rows as f64;
                    let d = (&run.mean_p - &c.mean) * (run.count / n);
                    let mut sq = vec![0.0; c.rows];
                    for (unit, &dc) in c.view().outer_iter().zip(&d) {
                        Zip::from(&mut sq)
                            .and(unit)
                            .for_each(|s, &v| *s += (v - dc).powi(2));
                    }
                    ((l, h, w), (d, sq))
                })
                .collect();
            let all = self
                .pairs
                .par_iter_mut()
                .chain(self.resampled.par_iter_mut());
            all.for_each(|m| {
                let (ka, kb) = ((m.p, m.height, m.width), (m.q, m.height, m.width));
                let (a, b) = (&cache[&ka], &cache[&kb]);
                if let Some(rows) = &m.rows {
                    let [d, e, ..] = m.merge_shifts(a.rows as f64, a.mean.view(), b.mean.view());
                    let old = rows.shifted(m.cross.view(), m.norms(), d.view(), e.view());
                    let ((dp, sp), (dq, sq)) = (&centre[&ka], &centre[&kb]);
                    let batch =
                        RowSums::direct((a.view(), sp, dp.view()), (b.view(), sq, dq.view()));
                    m.rows = Some(old.plus(batch));
                }
                general_mat_mul(1.0, &a.view(), &b.view().t(), 1.0, &mut m.cross);
                m.chan_update(
                    a.rows as f64,
                    a.mean.view(),
                    b.mean.view(),
                    (a.m2.view(), b.m2.view()),
                );
            });
        }
        self.samples += n as u64;
        Ok(())
    }

    /// Merges another accumulator over the same layers into this one (Chan et al.):
    /// `n = na + nb`, `d = mean_b - mean_a`, `mean = mean_a + d nb / n`,
    /// `C = C_a + C_b + d_p d_q^T na nb / n` (and likewise each `m2`), for every pair and every
    /// upsampled self co-moment.
    pub fn merge(&mut self, other: &Self) -> Result<(), StatsError> {
        if self.layers != other.layers {
            return Err(StatsError::LayoutMismatch);
        }
        // Same layers, hence the same `pairs` and `resampled` lists.
        self.pairs
            .par_iter_mut()
            .chain(self.resampled.par_iter_mut())
            .zip(other.pairs.par_iter().chain(&other.resampled))
            .for_each(|(m, o)| {
                m.rows = match (&m.rows, &o.rows) {
                    (Some(_), Some(_)) if o.count == 0.0 => m.rows.take(),
                    (Some(mine), Some(theirs)) => {
                        let [d, e, d2, e2] = m.merge_shifts(o.count, o.mean_p(), o.mean_q());
                        let mine = mine.shifted(m.cross.view(), m.norms(), d.view(), e.view());
                        let theirs =
                            theirs.shifted(o.cross.view(), o.norms(), d2.view(), e2.view());
                        Some(mine.plus(theirs))
                    }
                    _ => None,
                };
                m.cross += &o.cross;
                m.chan_update(o.count, o.mean_p(), o.mean_q(), (o.m2_p(), o.m2_q()));
            });
        self.samples += other.samples;
        Ok(())
    }

    /// Writes the state to a safetensors file, atomically (temporary file in the same folder, then
    /// rename). Tensors (all F64): `pair.{p}.{q}.{count|mean_p|cross}` and, for `p != q`,
    /// `pair.{p}.{q}.{mean_q|m2_p|m2_q}`; the upsampled self co-moments as
    /// `resampled.{l}.{H}x{W}.{count|mean_p|cross}`; each block's debiased-CKA row sums as
    /// `{block}.{row_t|row_g|row_h}` (see `RowSums`); metadata key `unitmatch.moments` holds the
    /// JSON `{format_version, samples, layers}` ([`FORMAT_VERSION`]).
    pub fn save(&self, path: &Path) -> Result<(), StatsError> {
        let io = |source| StatsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, values: Vec<f64>| {
            tensors.push((
                name,
                shape,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        };
        for (key, m) in self.keyed() {
            put(format!("{key}.count"), vec![1], vec![m.count]);
            put(
                format!("{key}.mean_p"),
                vec![m.mean_p.len()],
                m.mean_p.to_vec(),
            );
            put(
                format!("{key}.cross"),
                m.cross.shape().to_vec(),
                m.cross.iter().copied().collect(),
            );
            if let Some((mq, m2p, m2q)) = &m.sides {
                put(format!("{key}.mean_q"), vec![mq.len()], mq.to_vec());
                put(format!("{key}.m2_p"), vec![m2p.len()], m2p.to_vec());
                put(format!("{key}.m2_q"), vec![m2q.len()], m2q.to_vec());
            }
            if let Some(r) = &m.rows {
                put(format!("{key}.row_t"), vec![1], vec![r.t]);
                put(format!("{key}.row_g"), vec![r.g.len()], r.g.to_vec());
                put(format!("{key}.row_h"), vec![r.h.len()], r.h.to_vec());
            }
        }
        let header = FileHeader {
            format_version: FORMAT_VERSION,
            samples: self.samples,
            layers: self.layers.clone(),
        };
        let header = serde_json::to_string(&header).map_err(|e| io(e.into()))?;
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                Ok((
                    name.as_str(),
                    TensorView::new(Dtype::F64, shape.clone(), bytes)?,
                ))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .and_then(|v| {
                safetensors::serialize(v, Some(HashMap::from([(HEADER_KEY.to_string(), header)])))
            })
            .map_err(|e| io(std::io::Error::other(e)))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(&views).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Tensor-name prefix of each stored block, `pairs` then `resampled` (see [`save`](Self::save)).
    fn keyed(&self) -> impl Iterator<Item = (String, &PairMoments)> {
        let pairs = self
            .pairs
            .iter()
            .map(|m| (format!("pair.{}.{}", m.p, m.q), m));
        let resampled = self.resampled.iter().map(|m| {
            let key = format!("resampled.{}.{}x{}", m.p, m.height, m.width);
            (key, m)
        });
        pairs.chain(resampled)
    }

    /// Reads a file written by [`save`](Self::save); any corruption is an error naming the file.
    /// A version-1 file (no upsampled self co-moments) is accepted only when the layout needs
    /// none, i.e. every pair's layers share their resolution; otherwise it is an error asking to
    /// recompute the statistics.
    pub fn load(path: &Path) -> Result<Self, StatsError> {
        let bad = |reason: String| StatsError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| StatsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let header = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(HEADER_KEY))
            .ok_or_else(|| bad(format!("no `{HEADER_KEY}` metadata")))?;
        let header: FileHeader =
            serde_json::from_str(header).map_err(|e| bad(format!("bad header: {e}")))?;
        let version = header.format_version;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(bad(format!(
                "format version {version} (expected {FORMAT_VERSION})"
            )));
        }
        let mut acc = Self::new(header.layers).map_err(|e| bad(e.to_string()))?;
        if version == 1 && !acc.resampled.is_empty() {
            return Err(bad(format!(
                "format version 1 lacks the upsampled self co-moments that version \
                 {FORMAT_VERSION} keeps for layers compared at another resolution; recompute \
                 the statistics"
            )));
        }
        acc.samples = header.samples;
        let read = |name: String, shape: &[usize]| -> Result<Vec<f64>, StatsError> {
            let t = st.tensor(&name).map_err(|e| bad(e.to_string()))?;
            if t.dtype() != Dtype::F64 || t.shape() != shape {
                return Err(bad(format!(
                    "tensor `{name}` is {:?} {:?}, expected F64 {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            let values: Vec<f64> = t
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect();
            if values.iter().all(|v| v.is_finite()) {
                Ok(values)
            } else {
                Err(bad(format!("tensor `{name}` holds NaN or infinite values")))
            }
        };
        let keys: Vec<String> = acc.keyed().map(|(k, _)| k).collect();
        for (key, m) in keys
            .into_iter()
            .zip(acc.pairs.iter_mut().chain(&mut acc.resampled))
        {
            let (cp, cq) = m.cross.dim();
            m.count = read(format!("{key}.count"), &[1])?[0];
            let rows = header.samples as f64 * (m.height * m.width) as f64;
            if m.count != rows {
                return Err(bad(format!(
                    "`{key}.count` is {}, expected {rows}",
                    m.count
                )));
            }
            m.mean_p = Array1::from(read(format!("{key}.mean_p"), &[cp])?);
            m.cross = Array2::from_shape_vec((cp, cq), read(format!("{key}.cross"), &[cp, cq])?)
                .map_err(|e| bad(e.to_string()))?;
            if m.sides.is_some() {
                let mq = Array1::from(read(format!("{key}.mean_q"), &[cq])?);
                let m2p = Array1::from(read(format!("{key}.m2_p"), &[cp])?);
                m.sides = Some((mq, m2p, Array1::from(read(format!("{key}.m2_q"), &[cq])?)));
            }
            m.rows = if version >= 3 {
                Some(RowSums {
                    t: read(format!("{key}.row_t"), &[1])?[0],
                    g: Array1::from(read(format!("{key}.row_g"), &[cq])?),
                    h: Array1::from(read(format!("{key}.row_h"), &[cp])?),
                })
            } else {
                None
            };
        }
        Ok(acc)
    }
}

/// Helpers shared by the tests of this module and of `similarity`: random activations and a naive,
/// independently written bilinear resize.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// splitmix64; `uniform` in `[-1, 1)`.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    pub fn spec(
        network: &str,
        name: &str,
        channels: usize,
        height: usize,
        width: usize,
    ) -> LayerSpec {
        LayerSpec {
            network: network.into(),
            name: name.into(),
            channels,
            height,
            width,
        }
    }

    /// A: 3@4x4, 2@8x8, 2@3x8; B: 2@4x4, 3@8x8, 1@6x3. `(a.l3, b.l3)` meet at 6x8, where both
    /// are upsampled unevenly (their means move), the case that separates Seed from Pearson.
    pub fn layers() -> Vec<LayerSpec> {
        vec![
            spec("a", "l1", 3, 4, 4),
            spec("a", "l2", 2, 8, 8),
            spec("a", "l3", 2, 3, 8),
            spec("b", "l1", 2, 4, 4),
            spec("b", "l2", 3, 8, 8),
            spec("b", "l3", 1, 6, 3),
        ]
    }

    /// One `Vec` of per-layer arrays per batch; values share a per-sample component so that
    /// units correlate, and each unit has its own offset and scale.
    pub fn random_batches(
        layers: &[LayerSpec],
        sizes: &[usize],
        seed: u64,
    ) -> Vec<Vec<Array4<f32>>> {
        let mut rng = Rng(seed);
        sizes
            .iter()
            .map(|&n| {
                let shared: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
                layers
                    .iter()
                    .enumerate()
                    .map(|(li, l)| {
                        Array4::from_shape_fn((n, l.channels, l.height, l.width), |(k, c, y, x)| {
                            let profile = 0.8 * (1.3 * y as f64 + 0.7 * x as f64 + c as f64).cos();
                            let offset = li as f64 - c as f64 * 0.5 + profile;
                            let pattern = ((y * 3 + x + c) as f64).sin();
                            (offset
                                + (1.0 + c as f64) * (shared[k] * pattern + 0.3 * rng.uniform()))
                                as f32
                        })
                    })
                    .collect()
            })
            .collect()
    }

    pub fn accumulate(layers: &[LayerSpec], batches: &[Vec<Array4<f32>>]) -> MomentAccumulator {
        let mut acc = MomentAccumulator::new(layers.to_vec()).unwrap();
        for b in batches {
            let views: Vec<_> = b.iter().map(|a| a.view()).collect();
            acc.add_batch(&views).unwrap();
        }
        acc
    }

    /// Bilinear resize with align_corners as a sum of tent weights `max(0, 1 - |src - i|)`.
    pub fn naive_resize(x: &Array2<f64>, oh: usize, ow: usize) -> Array2<f64> {
        let (h, w) = x.dim();
        let src = |d: usize, n_in: usize, n_out: usize| {
            if n_out == 1 {
                0.0
            } else {
                d as f64 * (n_in - 1) as f64 / (n_out - 1) as f64
            }
        };
        Array2::from_shape_fn((oh, ow), |(oy, ox)| {
            let (sy, sx) = (src(oy, h, oh), src(ox, w, ow));
            let mut v = 0.0;
            for i in 0..h {
                for j in 0..w {
                    let wy = (1.0 - (sy - i as f64).abs()).max(0.0);
                    let wx = (1.0 - (sx - j as f64).abs()).max(0.0);
                    v += wy * wx * x[[i, j]];
                }
            }
            v
        })
    }

    /// Layer `l`'s values over all batches at `(oh, ow)`: one `Vec` per unit over rows
    /// `(sample, y, x)`, each map first transformed by `f(unit, value)`.
    pub fn naive_rows(
        batches: &[Vec<Array4<f32>>],
        l: usize,
        oh: usize,
        ow: usize,
        f: &dyn Fn(usize, f64) -> f64,
    ) -> Vec<Vec<f64>> {
        let c = batches[0][l].dim().1;
        let mut units = vec![Vec::new(); c];
        for b in batches {
            for k in 0..b[l].dim().0 {
                for (u, unit) in units.iter_mut().enumerate() {
                    let map = b[l].slice(s![k, u, .., ..]).mapv(|v| f(u, f64::from(v)));
                    unit.extend(naive_resize(&map, oh, ow).iter());
                }
            }
        }
        units
    }

    pub fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    /// `sum (x - mean x)(y - mean y)`, two passes.
    pub fn comoment(x: &[f64], y: &[f64]) -> f64 {
        let (mx, my) = (mean(x), mean(y));
        x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum()
    }

    pub fn assert_close(a: f64, b: f64, tol: f64, what: &str) {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {a} vs {b}");
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    fn assert_acc_eq(a: &MomentAccumulator, b: &MomentAccumulator, tol: f64) {
        assert_eq!(a.layers(), b.layers());
        assert_eq!(a.count(), b.count());
        assert_eq!(a.pairs.len(), b.pairs.len());
        assert_eq!(a.resampled.len(), b.resampled.len());
        let (xs, ys) = (
            a.pairs.iter().chain(&a.resampled),
            b.pairs.iter().chain(&b.resampled),
        );
        for (x, y) in xs.zip(ys) {
            assert_eq!((x.layers(), x.resolution()), (y.layers(), y.resolution()));
            assert_eq!(x.count(), y.count());
            let pairs = [
                (x.mean_p(), y.mean_p()),
                (x.mean_q(), y.mean_q()),
                (x.m2_p(), y.m2_p()),
                (x.m2_q(), y.m2_q()),
            ];
            for (u, v) in pairs {
                for (s, t) in u.iter().zip(v) {
                    assert_close(*s, *t, tol, "moment");
                }
            }
            for (s, t) in x.cross().iter().zip(y.cross()) {
                assert_close(*s, *t, tol, "cross");
            }
            let (Some(rx), Some(ry)) = (&x.rows, &y.rows) else {
                panic!("row sums missing");
            };
            assert_close(rx.t, ry.t, tol, "row t");
            for (s, t) in rx.g.iter().chain(&rx.h).zip(ry.g.iter().chain(&ry.h)) {
                assert_close(*s, *t, tol, "row g/h");
            }
        }
    }

    #[test]
    fn upsample_hand_values() {
        let x = array![[[[0.0f32, 1.0], [2.0, 3.0]]]];
        let up = upsample_bilinear_align_corners(x.view(), 3, 3).unwrap();
        let want = array![[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]];
        assert_eq!(up.slice(s![0, 0, .., ..]), want);
        // 1 x 3 -> 1 x 5: src = 0, .5, 1, 1.5, 2.
        let row = array![[[[0.0f32, 1.0, 4.0]]]];
        let up = upsample_bilinear_align_corners(row.view(), 1, 5).unwrap();
        assert_eq!(up.slice(s![0, 0, 0, ..]), array![0.0, 0.5, 1.0, 2.5, 4.0]);
        // out == 1 takes index 0; equal sizes are the identity.
        let up = upsample_bilinear_align_corners(row.view(), 1, 1).unwrap();
        assert_eq!(up[[0, 0, 0, 0]], 0.0);
        let same = upsample_bilinear_align_corners(x.view(), 2, 2).unwrap();
        assert_eq!(same, x.mapv(f64::from));
        assert!(matches!(
            upsample_bilinear_align_corners(Array4::<f32>::zeros((1, 1, 0, 2)).view(), 2, 2),
            Err(StatsError::Resize { .. })
        ));
    }

    #[test]
    fn upsample_matches_tent_reference() {
        let mut rng = Rng(3);
        let x = Array4::from_shape_fn((2, 3, 3, 5), |_| rng.uniform() as f32);
        for (oh, ow) in [(7, 8), (3, 5), (4, 9), (1, 6), (2, 2)] {
            let up = upsample_bilinear_align_corners(x.view(), oh, ow).unwrap();
            for k in 0..2 {
                for c in 0..3 {
                    let want = naive_resize(&x.slice(s![k, c, .., ..]).mapv(f64::from), oh, ow);
                    for (a, b) in up.slice(s![k, c, .., ..]).iter().zip(&want) {
                        assert_close(*a, *b, 1e-12, "upsample");
                    }
                }
            }
        }
    }

    #[test]
    fn moments_match_two_pass_reference() {
        let layers = layers();
        let batches = random_batches(&layers, &[3, 1, 5], 11);
        let acc = accumulate(&layers, &batches);
        assert_eq!(acc.count(), 9);
        for p in 0..layers.len() {
            for q in 0..layers.len() {
                let b = acc.block(p, q).unwrap();
                let (h, w) = b.resolution;
                assert_eq!(
                    (h, w),
                    (
                        layers[p].height.max(layers[q].height),
                        layers[p].width.max(layers[q].width)
                    )
                );
                let xp = naive_rows(&batches, p, h, w, &|_, v| v);
                let xq = naive_rows(&batches, q, h, w, &|_, v| v);
                assert_eq!(b.count, (9 * h * w) as f64);
                assert_eq!(b.cross.dim(), (layers[p].channels, layers[q].channels));
                for (i, u) in xp.iter().enumerate() {
                    assert_close(b.mean_p[i], mean(u), 1e-12, "mean_p");
                    assert_close(b.m2_p[i], comoment(u, u), 1e-10, "m2_p");
                    for (j, v) in xq.iter().enumerate() {
                        assert_close(b.cross[[i, j]], comoment(u, v), 1e-10, "cross");
                    }
                }
                for (j, v) in xq.iter().enumerate() {
                    assert_close(b.mean_q[j], mean(v), 1e-12, "mean_q");
                    assert_close(b.m2_q[j], comoment(v, v), 1e-10, "m2_q");
                }
                // Debiased-CKA row sums: sum_r |x_r - mean|^2 |y_r - mean|^2, two-pass.
                let sq_norms = |xs: &Vec<Vec<f64>>| -> Vec<f64> {
                    let mu: Vec<f64> = xs.iter().map(|u| mean(u)).collect();
                    (0..xs[0].len())
                        .map(|r| xs.iter().zip(&mu).map(|(u, m)| (u[r] - m).powi(2)).sum())
                        .collect()
                };
                let (ap, aq) = (sq_norms(&xp), sq_norms(&xq));
                let t: f64 = ap.iter().zip(&aq).map(|(u, v)| u * v).sum();
                assert_close(b.row_products.unwrap(), t, 1e-10, "row products");
                // Both layers' full self co-moments over the same rows.
                for (l, xs) in [(p, &xp), (q, &xq)] {
                    let s = acc.self_at(l, (h, w)).unwrap();
                    assert_eq!((s.resolution, s.count), ((h, w), b.count));
                    assert_eq!(s.cross.dim(), (xs.len(), xs.len()));
                    for (i, u) in xs.iter().enumerate() {
                        assert_close(s.mean_p[i], mean(u), 1e-12, "self mean");
                        assert_eq!((s.mean_q[i], s.m2_q[i]), (s.mean_p[i], s.m2_p[i]));
                        assert_close(s.m2_p[i], comoment(u, u), 1e-10, "self m2");
                        for (j, v) in xs.iter().enumerate() {
                            assert_close(s.cross[[i, j]], comoment(u, v), 1e-10, "self cross");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn resampled_entries_cover_every_mixed_pair_once() {
        let layers = layers();
        let acc = MomentAccumulator::new(layers.clone()).unwrap();
        let mut want = Vec::new();
        for p in 0..layers.len() {
            for q in 0..layers.len() {
                let (lp, lq) = (&layers[p], &layers[q]);
                let res = (lp.height.max(lq.height), lp.width.max(lq.width));
                if (lp.height, lp.width) != res && !want.contains(&(p, res)) {
                    want.push((p, res));
                }
            }
        }
        want.sort_unstable();
        let got: Vec<_> = acc
            .resampled
            .iter()
            .map(|m| {
                assert_eq!(m.layers().0, m.layers().1);
                assert!(m.sides.is_none());
                let c = layers[m.p].channels;
                assert_eq!(m.cross.dim(), (c, c));
                (m.p, m.resolution())
            })
            .collect();
        assert_eq!(got, want);
        // e.g. a.l1 (4x4) meets 6x4 (b.l3), a.l3 (3x8) meets 8x8 and 6x8.
        assert!(got.contains(&(0, (6, 4))) && got.contains(&(2, (8, 8))));
        assert!(got.contains(&(2, (6, 8))) && got.contains(&(5, (6, 8))));
        for (l, spec) in layers.iter().enumerate() {
            let native = acc.self_at(l, (spec.height, spec.width)).unwrap();
            assert_eq!(native.cross, acc.native(l).unwrap().cross);
        }
        assert!(acc.self_at(0, (5, 5)).is_none());
        assert!(acc.self_at(1, (6, 8)).is_none()); // a.l2 is 8x8: never upsampled
        assert!(acc.self_at(layers.len(), (8, 8)).is_none());
        // One resolution throughout: nothing extra.
        let flat = vec![spec("a", "x", 2, 3, 3), spec("b", "y", 4, 3, 3)];
        assert!(MomentAccumulator::new(flat).unwrap().resampled.is_empty());
    }

    #[test]
    fn merge_of_shards_equals_single_run() {
        let layers = layers();
        let batches = random_batches(&layers, &[2, 4, 1, 3], 5);
        let whole = accumulate(&layers, &batches);
        let mut left = accumulate(&layers, &batches[..1]);
        let right = accumulate(&layers, &batches[1..]);
        left.merge(&right).unwrap();
        assert_acc_eq(&left, &whole, 1e-9);

        let empty = MomentAccumulator::new(layers.clone()).unwrap();
        let mut with_empty = whole.clone();
        with_empty.merge(&empty).unwrap();
        assert_eq!(with_empty, whole);
        let mut from_empty = empty.clone();
        from_empty.merge(&whole).unwrap();
        assert_eq!(from_empty, whole);

        let other = MomentAccumulator::new(layers[..2].to_vec()).unwrap();
        assert!(matches!(
            left.merge(&other),
            Err(StatsError::LayoutMismatch)
        ));
    }

    #[test]
    fn chunked_batch_equals_whole_batch() {
        let layers = layers();
        let batch = random_batches(&layers, &[7], 4).remove(0);
        let views: Vec<_> = batch.iter().map(|a| a.view()).collect();
        let whole = accumulate(&layers, std::slice::from_ref(&batch));
        let mut chunked = MomentAccumulator::new(layers).unwrap();
        chunked.add_batch_chunked(&views, 1).unwrap(); // one sample per chunk
        assert_eq!(chunked.count(), 7);
        assert_acc_eq(&chunked, &whole, 1e-10);
    }

    #[test]
    fn add_batch_rejects_bad_shapes() {
        let layers = layers();
        let mut acc = MomentAccumulator::new(layers.clone()).unwrap();
        let mut batch = random_batches(&layers, &[2], 1).remove(0);
        batch[4] = Array4::zeros((2, 3, 8, 7));
        let views: Vec<_> = batch.iter().map(|a| a.view()).collect();
        let err = acc.add_batch(&views).unwrap_err().to_string();
        assert!(
            err.contains("b:l2") && err.contains("[2, 3, 8, 8]") && err.contains("[2, 3, 8, 7]"),
            "{err}"
        );
        let err = acc.add_batch(&views[..3]).unwrap_err();
        assert!(matches!(
            err,
            StatsError::LayerCount {
                expected: 6,
                found: 3
            }
        ));
        batch[4] = Array4::zeros((1, 3, 8, 8));
        let views: Vec<_> = batch.iter().map(|a| a.view()).collect();
        assert!(
            acc.add_batch(&views)
                .unwrap_err()
                .to_string()
                .contains("[2, 3, 8, 8]")
        );
        batch[4] = Array4::zeros((2, 3, 8, 8));
        batch[2][[1, 0, 2, 3]] = f32::NAN;
        let views: Vec<_> = batch.iter().map(|a| a.view()).collect();
        let err = acc.add_batch(&views).unwrap_err();
        assert!(
            matches!(&err, StatsError::NonFinite { layer } if layer == "a:l3"),
            "{err}"
        );
        assert_eq!(acc.count(), 0);
        assert_eq!(acc, MomentAccumulator::new(layers).unwrap());
    }

    #[test]
    fn new_rejects_bad_layouts() {
        assert!(MomentAccumulator::new(vec![spec("a", "x", 0, 2, 2)]).is_err());
        assert!(
            MomentAccumulator::new(vec![spec("a", "x", 1, 2, 2), spec("a", "x", 2, 2, 2)]).is_err()
        );
        let ok =
            MomentAccumulator::new(vec![spec("a", "x", 1, 2, 2), spec("b", "x", 2, 2, 2)]).unwrap();
        assert_eq!(ok.layer_index("b", "x"), Some(1));
        assert!(ok.pair(0, 2).is_none());
    }

    #[test]
    fn save_load_round_trip_and_corruption() {
        let layers = layers();
        let acc = accumulate(&layers, &random_batches(&layers, &[3, 2], 9));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moments.safetensors");
        acc.save(&path).unwrap();
        let back = MomentAccumulator::load(&path).unwrap();
        assert!(!acc.resampled.is_empty() && acc.resampled[0].count() > 0.0);
        assert_eq!(back, acc); // includes the upsampled self co-moments
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        let bytes = std::fs::read(&path).unwrap();
        let names = SafeTensors::deserialize(&bytes).unwrap().names().len();
        assert_eq!(
            names,
            // count, mean_p, cross and the three row sums per block; sides for p != q.
            acc.keyed().count() * 6 + 3 * acc.pairs.iter().filter(|m| m.p != m.q).count()
        );
        assert!(
            SafeTensors::deserialize(&bytes)
                .unwrap()
                .tensor("resampled.0.6x4.cross")
                .is_ok()
        );

        let bytes = std::fs::read(&path).unwrap();
        let truncated = dir.path().join("truncated.safetensors");
        std::fs::write(&truncated, &bytes[..bytes.len() - 9]).unwrap();
        let err = MomentAccumulator::load(&truncated).unwrap_err().to_string();
        assert!(err.contains("truncated.safetensors"), "{err}");
        std::fs::write(&truncated, b"not a safetensors file").unwrap();
        let err = MomentAccumulator::load(&truncated).unwrap_err().to_string();
        assert!(err.contains("truncated.safetensors"), "{err}");
        let err = MomentAccumulator::load(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    /// Rewrites a moments file as an older format: no `*.row_*` tensors (before version 3) and
    /// no `resampled.*` tensors (version 1), old version number.
    fn downgrade(from: &Path, to: &Path, version: u32) {
        let bytes = std::fs::read(from).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut header: FileHeader =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()[HEADER_KEY]).unwrap();
        header.format_version = version;
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors: Vec<_> = st
            .tensors()
            .into_iter()
            .filter(|(name, _)| !name.contains(".row_"))
            .filter(|(name, _)| version > 1 || !name.starts_with("resampled."))
            .collect();
        let meta = HashMap::from([(
            HEADER_KEY.to_string(),
            serde_json::to_string(&header).unwrap(),
        )]);
        std::fs::write(to, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    }

    #[test]
    fn older_files_load_without_what_they_lack() {
        let dir = tempfile::tempdir().unwrap();
        let (new, old) = (dir.path().join("v2"), dir.path().join("old-v1.safetensors"));
        // One resolution throughout: version 1 holds everything.
        let flat = vec![spec("a", "x", 2, 3, 3), spec("b", "y", 3, 3, 3)];
        let acc = accumulate(&flat, &random_batches(&flat, &[4], 3));
        acc.save(&new).unwrap();
        downgrade(&new, &old, 1);
        let mut without_rows = acc.clone();
        for m in without_rows
            .pairs
            .iter_mut()
            .chain(&mut without_rows.resampled)
        {
            m.rows = None;
        }
        assert_eq!(MomentAccumulator::load(&old).unwrap(), without_rows);
        // Version 2 keeps everything but the row sums: debiased CKA is then unavailable.
        let layers = layers();
        let acc = accumulate(&layers, &random_batches(&layers, &[2], 3));
        acc.save(&new).unwrap();
        downgrade(&new, &old, 2);
        let v2 = MomentAccumulator::load(&old).unwrap();
        assert_eq!(v2.block(0, 1).unwrap().row_products, None);
        assert_eq!(
            v2.block(0, 1).unwrap().cross,
            acc.block(0, 1).unwrap().cross
        );
        // Mixed resolutions: the upsampled self co-moments are missing.
        acc.save(&new).unwrap();
        downgrade(&new, &old, 1);
        let err = MomentAccumulator::load(&old).unwrap_err().to_string();
        assert!(
            err.contains("old-v1.safetensors") && err.contains("version 1"),
            "{err}"
        );
    }

    #[test]
    fn constant_unit_has_zero_second_moments() {
        let layers = vec![spec("a", "x", 2, 2, 3), spec("b", "y", 1, 4, 4)];
        let mut batches = random_batches(&layers, &[4], 2);
        batches[0][0].slice_mut(s![.., 1, .., ..]).fill(0.1);
        let acc = accumulate(&layers, &batches);
        let b = acc.block(0, 1).unwrap();
        assert!(b.m2_p[1].abs() < 1e-20 && b.cross[[1, 0]].abs() < 1e-12);
        assert_close(b.mean_p[1], f64::from(0.1f32), 1e-14, "constant mean");
    }

    /// Wall time of `add_batch` on the realistic layout (A and B each 128@16x16, 64@32x32,
    /// 1@32x32; batch 100). Run with
    /// `cargo test --release --lib stats::tests::add_batch_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing only; run in release"]
    fn add_batch_timing() {
        let mut layers = Vec::new();
        for net in ["a", "b"] {
            layers.push(spec(net, "block1", 128, 16, 16));
            layers.push(spec(net, "block2", 64, 32, 32));
            layers.push(spec(net, "out", 1, 32, 32));
        }
        let mut rng = Rng(1);
        let batch: Vec<Array4<f32>> = layers
            .iter()
            .map(|l| {
                Array4::from_shape_fn((100, l.channels, l.height, l.width), |_| {
                    rng.uniform() as f32
                })
            })
            .collect();
        let views: Vec<_> = batch.iter().map(|a| a.view()).collect();
        let mut acc = MomentAccumulator::new(layers).unwrap();
        acc.add_batch(&views).unwrap(); // warm-up
        let reps = 5;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            acc.add_batch(&views).unwrap();
        }
        let per = t0.elapsed().as_secs_f64() / f64::from(reps);
        eprintln!(
            "add_batch (batch 100, {} threads, {} upsampled self co-moments): {per:.3} s per batch",
            rayon::current_num_threads(),
            acc.resampled.len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// How samples are split into batches does not change the moments.
        #[test]
        fn batch_split_is_irrelevant(seed in 0u64..1000, split in 1usize..6) {
            let layers = vec![spec("a", "x", 2, 3, 2), spec("b", "y", 3, 2, 4)];
            let whole = random_batches(&layers, &[6], seed).remove(0);
            let one = accumulate(&layers, std::slice::from_ref(&whole));
            let parts: Vec<Vec<Array4<f32>>> = [(0, split), (split, 6)]
                .iter()
                .map(|&(a, b)| whole.iter().map(|x| x.slice(s![a..b, .., .., ..]).to_owned()).collect())
                .collect();
            assert_acc_eq(&accumulate(&layers, &parts), &one, 1e-9);
        }
    }
}

//! Named colour maps, matching matplotlib's definitions, so figures read like the seed's.
//!
//! Both maps are piecewise-linear in RGB between matplotlib's control points; channels are
//! scaled to 0..=255 and rounded to the nearest integer (matplotlib's 256-entry lookup table
//! truncates instead, so a channel may differ from matplotlib's by one level).

/// Name of the diverging map drawn by [`diverging`], as matplotlib calls it (for captions).
pub const DIVERGING_NAME: &str = "RdBu_r";

/// Name of the sequential map drawn by [`jet`], as matplotlib calls it (for captions).
pub const JET_NAME: &str = "jet";

/// Colour of a missing (NaN) value: mid grey, distinct from every colour of both maps' centres.
pub const NAN_COLOR: [u8; 3] = [128, 128, 128];

/// matplotlib's `RdBu_r` control points (ColorBrewer RdBu reversed), equally spaced on [0, 1]:
/// `#053061 #2166ac #4393c3 #92c5de #d1e5f0 #f7f7f7 #fddbc7 #f4a582 #d6604d #b2182b #67001f`.
const RDBU_R: [[u8; 3]; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

/// Colour of `v` on a diverging map centred on 0: `-limit` is dark blue, 0 is near-white
/// (`#f7f7f7`), `+limit` is dark red (matplotlib's `RdBu_r`).
///
/// Why: similarity scores are signed, and a symmetric map makes equal |r| equally saturated.
/// The position on the map is `t = (v / limit + 1) / 2`, clamped to [0, 1] (values beyond
/// ±limit saturate), then interpolated linearly between the 11 equally spaced control points:
/// `k = floor(10 t)`, `f = 10 t - k`, `c = (1 - f) c_k + f c_{k+1}`. A NaN `v` is mid grey
/// ([`NAN_COLOR`]); a `limit` that is not positive and finite is treated as 1e-12.
pub fn diverging(v: f64, limit: f64) -> [u8; 3] {
    if v.is_nan() {
        return NAN_COLOR;
    }
    let limit = if limit.is_finite() && limit > 0.0 {
        limit
    } else {
        1e-12
    };
    let t = ((v / limit + 1.0) * 0.5).clamp(0.0, 1.0);
    let x = t * (RDBU_R.len() - 1) as f64;
    let k = (x.floor() as usize).min(RDBU_R.len() - 2);
    let f = x - k as f64;
    let (a, b) = (RDBU_R[k], RDBU_R[k + 1]);
    std::array::from_fn(|c| ((1.0 - f) * a[c] as f64 + f * b[c] as f64).round() as u8)
}

/// Linear interpolation of `t` in a matplotlib segment table `(x, y)` (x increasing from 0 to 1).
fn segment(table: &[(f64, f64)], t: f64) -> f64 {
    for w in table.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if t <= x1 {
            return y0 + (y1 - y0) * (t - x0) / (x1 - x0);
        }
    }
    table[table.len() - 1].1
}

/// Colour of `t` in [0, 1] on matplotlib's `jet` map (dark blue, blue, cyan, yellow, red,
/// dark red), used for activation-map overlays where "hotter" must pop out of a grey image.
///
/// matplotlib's `_jet_data`, per channel `(x, value)`, linear in between:
/// red `(0,0) (0.35,0) (0.66,1) (0.89,1) (1,0.5)`;
/// green `(0,0) (0.125,0) (0.375,1) (0.64,1) (0.91,0) (1,0)`;
/// blue `(0,0.5) (0.11,1) (0.34,1) (0.65,0) (1,0)`.
/// `t` is clamped to [0, 1]; NaN is mid grey ([`NAN_COLOR`]).
pub fn jet(t: f64) -> [u8; 3] {
    const R: [(f64, f64); 5] = [
        (0.0, 0.0),
        (0.35, 0.0),
        (0.66, 1.0),
        (0.89, 1.0),
        (1.0, 0.5),
    ];
    const G: [(f64, f64); 6] = [
        (0.0, 0.0),
        (0.125, 0.0),
        (0.375, 1.0),
        (0.64, 1.0),
        (0.91, 0.0),
        (1.0, 0.0),
    ];
    const B: [(f64, f64); 5] = [
        (0.0, 0.5),
        (0.11, 1.0),
        (0.34, 1.0),
        (0.65, 0.0),
        (1.0, 0.0),
    ];
    if t.is_nan() {
        return NAN_COLOR;
    }
    let t = t.clamp(0.0, 1.0);
    let to_u8 = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
    [
        to_u8(segment(&R, t)),
        to_u8(segment(&G, t)),
        to_u8(segment(&B, t)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_endpoints_centre_and_clamping() {
        assert_eq!(diverging(-1.0, 1.0), [5, 48, 97]);
        assert_eq!(diverging(0.0, 1.0), [247, 247, 247]);
        assert_eq!(diverging(1.0, 1.0), [103, 0, 31]);
        assert_eq!(diverging(0.5, 0.5), [103, 0, 31], "limit scales the map");
        assert_eq!(diverging(7.0, 1.0), [103, 0, 31], "beyond +limit saturates");
        assert_eq!(diverging(f64::NEG_INFINITY, 1.0), [5, 48, 97]);
        assert_eq!(diverging(f64::NAN, 1.0), NAN_COLOR);
        // Control point 6 of 10 (t = 0.6, v = 0.2) is #fddbc7.
        assert_eq!(diverging(0.2, 1.0), [253, 219, 199]);
        // v = 0.25: t = 0.625, a quarter of the way from #fddbc7 to #f4a582.
        assert_eq!(diverging(0.25, 1.0), [251, 206, 182]);
        // Symmetric in saturation: negative values are blue-dominant, positive red-dominant.
        let (n, p) = (diverging(-0.7, 1.0), diverging(0.7, 1.0));
        assert!(n[2] > n[0] && p[0] > p[2]);
    }

    #[test]
    fn jet_endpoints_and_centre() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        // t = 0.5: red (0.5-0.35)/0.31, green 1, blue 1-(0.5-0.34)/0.31.
        assert_eq!(jet(0.5), [123, 255, 123]);
        assert_eq!(jet(0.11), [0, 0, 255]);
        assert_eq!(jet(-1.0), jet(0.0));
        assert_eq!(jet(2.0), jet(1.0));
        assert_eq!(jet(f64::NAN), NAN_COLOR);
    }
}

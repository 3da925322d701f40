//! Activation maps over generated images, and the best-match gallery built from them.

use super::colormap::jet;
use super::grid::gray_to_u8;
use super::heatmap::{Anchor, Scene};

/// Resizes a `h` x `w` map (row-major) to `out_h` x `out_w` by bilinear interpolation with
/// half-pixel centres (`align_corners=False`, as PyTorch's `interpolate`, OpenCV's
/// `INTER_LINEAR` and PIL's bilinear upscaling).
///
/// Output pixel `x` samples the source at `sx = max((x + 0.5) * w / out_w - 0.5, 0)`, between
/// `x0 = floor(sx)` and `x1 = min(x0 + 1, w - 1)` with weight `sx - x0` (likewise in y).
/// Panics if `src.len() != h * w` or `h` or `w` is 0.
pub fn resize_bilinear(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    assert!(h > 0 && w > 0, "resize_bilinear: empty {h} x {w} source");
    assert_eq!(src.len(), h * w, "resize_bilinear: source is not {h} x {w}");
    // Per output coordinate: (lower index, upper index, weight of the upper one).
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f64)> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f64)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, out_h), taps(w, out_w));
    let at = |y: usize, x: usize| src[y * w + x] as f64;
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, fy) in &ty {
        for &(x0, x1, fx) in &tx {
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            out.push((top * (1.0 - fy) + bottom * fy) as f32);
        }
    }
    out
}

/// One panel of a best-match figure: a unit's activation map over the generated image.
///
/// `image`: `side * side` pixels in [-1, 1] (the generator's tanh output); `map`: the unit's
/// `mh * mw` activation map; `alpha`: weight of the colour (0: image only, 1: map only;
/// clamped to [0, 1], NaN is 0).
///
/// The map is resized to `side` x `side` ([`resize_bilinear`]) and min-max normalised,
/// `m = (a - min) / (max - min)` (a constant map, or one without finite values, is all 0; NaN
/// is 0). Returns `(overlay, raw)`:
/// - `overlay`, RGB, `side * side * 3`: `round((1 - alpha) * grey(image) + alpha * jet(m))` per
///   channel, with `grey(v) = round((v + 1) / 2 * 255)`;
/// - `raw`, grey, `side * side`: `round(255 m)` (the map's minimum black, maximum white).
///
/// Why: the overlay shows *where* in the image a unit fires; the raw map shows its shape
/// without the image. Panics if the buffer lengths do not match the sizes.
pub fn overlay_panel(
    image: &[f32],
    side: usize,
    map: &[f32],
    mh: usize,
    mw: usize,
    alpha: f32,
) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(
        image.len(),
        side * side,
        "overlay_panel: image is not {side} x {side}"
    );
    let m = resize_bilinear(map, mh, mw, side, side);
    let finite = || m.iter().copied().filter(|v| v.is_finite());
    let lo = finite().fold(f32::INFINITY, f32::min);
    let hi = finite().fold(f32::NEG_INFINITY, f32::max);
    let range = hi - lo;
    let norm = |v: f32| {
        if range > 0.0 && range.is_finite() && v.is_finite() {
            ((v - lo) / range).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let a = if alpha.is_nan() {
        0.0
    } else {
        alpha.clamp(0.0, 1.0)
    };
    let mut overlay = Vec::with_capacity(side * side * 3);
    let mut raw = Vec::with_capacity(side * side);
    for (&px, &v) in image.iter().zip(&m) {
        let t = norm(v);
        let g = gray_to_u8(px) as f32;
        let c = jet(t as f64);
        overlay.extend(c.map(|c| ((1.0 - a) * g + a * c as f32).round().clamp(0.0, 255.0) as u8));
        raw.push((t * 255.0).round() as u8);
    }
    (overlay, raw)
}

/// One square panel of a gallery row, `side * side` pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Panel {
    /// 8-bit grey, `side * side` bytes.
    Gray(Vec<u8>),
    /// 8-bit RGB, `side * side * 3` bytes.
    Rgb(Vec<u8>),
}

impl Panel {
    /// A generated image (values in [-1, 1]) as a grey panel, `round((v + 1) / 2 * 255)`.
    pub fn from_image(image: &[f32]) -> Panel {
        Panel::Gray(image.iter().map(|&v| gray_to_u8(v)).collect())
    }

    /// Colour of pixel `k` (row-major), or `None` when the buffer is too short.
    fn rgb(&self, k: usize) -> Option<[u8; 3]> {
        match self {
            Panel::Gray(b) => b.get(k).map(|&g| [g, g, g]),
            Panel::Rgb(b) => b.get(3 * k..3 * k + 3).map(|s| [s[0], s[1], s[2]]),
        }
    }
}

/// One row of a gallery: a title (e.g. "A block1#3 <-> B block1#7, r = 0.83") above its panels.
#[derive(Clone, Debug, PartialEq)]
pub struct GalleryRow {
    /// Text above the row.
    pub title: String,
    /// The panels, left to right (usually six: A image, A overlay, A raw map, B image,
    /// B overlay, B raw map).
    pub panels: Vec<Panel>,
}

/// White space around and between panels, in pixels.
const PAD: usize = 8;
/// Extra space after every third panel (separates network A's panels from B's).
const GROUP_GAP: usize = 16;
/// Height of the caption band above the first row and of each row's title band.
const CAPTION_H: usize = 24;
const TITLE_H: usize = 22;
const TEXT_PX: f64 = 14.0;

/// Top-left pixel of panel `c` of row `r` for panels of `p` x `p` pixels.
fn panel_origin(r: usize, c: usize, p: usize) -> (usize, usize) {
    let x = PAD + c * (p + PAD) + (c / 3) * GROUP_GAP;
    let y = CAPTION_H + r * (TITLE_H + p + PAD) + TITLE_H;
    (x, y)
}

/// A gallery of matched unit pairs as an RGB PNG: one row per pair, each row's title above
/// it, each panel `side` x `side` upscaled `scale` times by nearest neighbour, and `captions`
/// (one per panel column, e.g. "A image", "A overlay", "A map", ...) above the first row.
/// Panels come in groups of three with a wider gap between groups.
///
/// Why: the matching's numbers say units correspond; the gallery lets a reader see whether
/// matched units fire on the same parts of the same images.
pub fn gallery_png(
    rows: &[GalleryRow],
    side: usize,
    scale: usize,
    captions: &[&str],
) -> Result<Vec<u8>, String> {
    if rows.is_empty() {
        return Err("gallery: no rows".to_string());
    }
    if side == 0 || scale == 0 {
        return Err(format!(
            "gallery: side {side} and scale {scale} must be positive"
        ));
    }
    let ncols = rows
        .iter()
        .map(|r| r.panels.len())
        .max()
        .unwrap_or(0)
        .max(captions.len())
        .max(1);
    let p = side * scale;
    for (r, row) in rows.iter().enumerate() {
        for (c, panel) in row.panels.iter().enumerate() {
            let (len, want) = match panel {
                Panel::Gray(b) => (b.len(), side * side),
                Panel::Rgb(b) => (b.len(), side * side * 3),
            };
            if len != want {
                return Err(format!(
                    "gallery: row {r} panel {c} has {len} bytes, expected {want}"
                ));
            }
        }
    }
    let (last_x, _) = panel_origin(0, ncols - 1, p);
    let (_, last_y) = panel_origin(rows.len() - 1, 0, p);
    let (width, height) = ((last_x + p + PAD).max(240), last_y + p + PAD);
    let mut sc = Scene::new(width, height);
    for (c, cap) in captions.iter().enumerate().take(ncols) {
        let (x, _) = panel_origin(0, c, p);
        sc.text(
            (x + p / 2) as f64,
            CAPTION_H as f64 / 2.0 + 2.0,
            cap,
            TEXT_PX,
            Anchor::Middle,
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let (_, y) = panel_origin(r, 0, p);
        sc.text(
            PAD as f64,
            y as f64 - TITLE_H as f64 / 2.0,
            &row.title,
            TEXT_PX,
            Anchor::Start,
        );
        for (c, panel) in row.panels.iter().enumerate() {
            let (x0, y0) = panel_origin(r, c, p);
            for k in 0..side * side {
                let rgb = panel.rgb(k).expect("panel length checked above");
                sc.rect(
                    x0 + (k % side) * scale,
                    y0 + (k / side) * scale,
                    scale,
                    scale,
                    rgb,
                );
            }
        }
    }
    sc.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matches_half_pixel_reference() {
        // PyTorch: F.interpolate([[0, 1], [2, 3]], size=4, mode="bilinear", align_corners=False).
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        let want = [
            0.0, 0.25, 0.75, 1.0, //
            0.5, 0.75, 1.25, 1.5, //
            1.5, 1.75, 2.25, 2.5, //
            2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(out, want);
        // Same size: identity; 1 x 1: constant.
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(resize_bilinear(&src, 2, 3, 2, 3), src);
        assert_eq!(resize_bilinear(&[7.0], 1, 1, 3, 3), vec![7.0; 9]);
    }

    #[test]
    fn hot_corner_pixel_is_the_hottest_jet_colour_there() {
        let side = 16;
        let image: Vec<f32> = (0..side * side)
            .map(|k| (k % 7) as f32 / 3.0 - 1.0)
            .collect();
        let mut map = vec![0.0f32; 16];
        map[0] = 5.0; // top-left of a 4 x 4 map
        let (ov, raw) = overlay_panel(&image, side, &map, 4, 4, 1.0);
        assert_eq!((ov.len(), raw.len()), (side * side * 3, side * side));
        assert_eq!(&ov[..3], &jet(1.0), "corner is the hottest colour");
        assert_eq!(raw[0], 255);
        let last = side * side - 1;
        assert_eq!(&ov[3 * last..], &jet(0.0));
        assert_eq!(raw[last], 0);
        // Every pixel at full heat lies in the top-left quarter.
        for (k, &v) in raw.iter().enumerate() {
            if v == 255 {
                assert!(k % side < side / 4 && k / side < side / 4, "pixel {k}");
            }
        }
        // Heat decreases away from the corner along the top row.
        assert!(raw[2] > raw[4] && raw[4] > raw[6]);
    }

    #[test]
    fn alpha_zero_is_the_grey_image_and_constant_maps_are_zero() {
        let side = 5;
        let image: Vec<f32> = (0..25).map(|k| k as f32 / 12.0 - 1.0).collect();
        let map: Vec<f32> = (0..9).map(|k| k as f32).collect();
        let (ov, _) = overlay_panel(&image, side, &map, 3, 3, 0.0);
        for (k, &v) in image.iter().enumerate() {
            let g = gray_to_u8(v);
            assert_eq!(&ov[3 * k..3 * k + 3], &[g, g, g]);
        }
        let (ov, raw) = overlay_panel(&image, side, &[2.0; 4], 2, 2, 1.0);
        assert!(raw.iter().all(|&v| v == 0));
        assert!(ov.chunks(3).all(|c| c == jet(0.0)));
        // Half-way blend of a black pixel (-1) and a constant map's colour jet(0) = [0, 0, 128].
        let (ov, _) = overlay_panel(&[-1.0], 1, &[1.0], 1, 1, 0.5);
        assert_eq!(ov, vec![0, 0, 64]);
    }

    #[test]
    fn gallery_places_panels_and_checks_lengths() {
        let (side, scale) = (4, 3);
        let gray = |g: u8| Panel::Gray(vec![g; side * side]);
        let rgb = |c: [u8; 3]| Panel::Rgb(c.repeat(side * side));
        let row = |t: &str| GalleryRow {
            title: t.to_string(),
            panels: vec![
                gray(10),
                rgb([200, 0, 0]),
                gray(60),
                gray(90),
                rgb([0, 0, 200]),
                gray(150),
            ],
        };
        let rows = vec![row("A block1#3 <-> B block1#7, r = 0.83"), row("second")];
        let caps = [
            "A image",
            "A overlay",
            "A map",
            "B image",
            "B overlay",
            "B map",
        ];
        let png = gallery_png(&rows, side, scale, &caps).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        let p = side * scale;
        let (right, _) = panel_origin(0, 5, p);
        let (_, bottom) = panel_origin(1, 0, p);
        assert!(img.width() as usize >= right + p && img.height() as usize >= bottom + p);
        let want = [
            [10; 3],
            [200, 0, 0],
            [60; 3],
            [90; 3],
            [0, 0, 200],
            [150; 3],
        ];
        for r in 0..2 {
            for (c, w) in want.iter().enumerate() {
                let (x, y) = panel_origin(r, c, p);
                for (dx, dy) in [
                    (0, 0),
                    (p - 1, 0),
                    (0, p - 1),
                    (p - 1, p - 1),
                    (p / 2, p / 2),
                ] {
                    let got = img.get_pixel((x + dx) as u32, (y + dy) as u32).0;
                    assert_eq!(&got, w, "row {r} panel {c} at +({dx}, {dy})");
                }
                // Just outside the panel is background.
                assert_eq!(
                    img.get_pixel((x + p) as u32, (y + p / 2) as u32).0,
                    [255; 3]
                );
            }
        }
        // Upscaling is nearest neighbour: each source pixel is a scale x scale block.
        let mut one = vec![0u8; side * side];
        one[side + 1] = 255; // source pixel (row 1, col 1)
        let g = GalleryRow {
            title: "t".into(),
            panels: vec![Panel::Gray(one)],
        };
        let img = image::load_from_memory(&gallery_png(&[g], side, scale, &[]).unwrap())
            .unwrap()
            .to_rgb8();
        let (x, y) = panel_origin(0, 0, p);
        for d in 0..scale {
            assert_eq!(
                img.get_pixel((x + scale + d) as u32, (y + scale + d) as u32)
                    .0,
                [255; 3]
            );
        }
        assert_eq!(
            img.get_pixel((x + scale - 1) as u32, (y + scale) as u32).0,
            [0; 3]
        );
        // Wrong panel length and empty input are errors.
        let bad = GalleryRow {
            title: "t".into(),
            panels: vec![Panel::Rgb(vec![0; 5])],
        };
        assert!(
            gallery_png(&[bad], side, scale, &[])
                .unwrap_err()
                .contains("row 0 panel 0")
        );
        assert!(gallery_png(&[], side, scale, &[]).is_err());
        assert_eq!(Panel::from_image(&[-1.0, 1.0]), Panel::Gray(vec![0, 255]));
    }
}

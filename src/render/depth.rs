//! Per-unit scores against depth: one point per unit, in unit order (layer by layer), with
//! layer boundaries, optional null band, and NaN gaps.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::grid::encode_png_rgb;
use super::heatmap::LayerSpan;
use super::plot::{PALETTE, ensure_font};

/// Size of [`DepthCurve::png`] and [`DepthCurve::svg`], in pixels.
pub const DEPTH_SIZE: (u32, u32) = (960, 440);

/// Fill of the band behind the curve (light grey).
const BAND_FILL: RGBColor = RGBColor(215, 215, 215);
/// Colour of the dashed layer boundaries.
const BOUNDARY: RGBColor = RGBColor(90, 90, 90);

/// A chart of one score per unit against the unit's position (depth), e.g. each unit of A's
/// best-match score in B.
///
/// Why: shows at a glance whether units match better in early or late layers, and, with a
/// band, where the observed scores leave the null model's range.
pub struct DepthCurve<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// One score per unit, in unit order; NaN (or infinite) scores are gaps.
    pub scores: &'a [f64],
    /// Layers along the units: dashed lines at their boundaries, names at the top. The curve
    /// is not joined across a boundary.
    pub spans: &'a [LayerSpan],
    /// Per unit `(lo, hi)`, e.g. the null mean ± 2 sd, drawn as a light grey band behind the
    /// curve; must have one entry per score. Non-finite entries are gaps.
    pub band: Option<&'a [(f64, f64)]>,
    /// Label of the y axis, e.g. "best-match r".
    pub y_label: &'a str,
}

/// The polyline pieces of a depth curve: points `(unit, score)` split at non-finite scores and
/// at layer boundaries (every span's start and end), so no line joins two layers or jumps a gap.
pub fn depth_segments(scores: &[f64], spans: &[LayerSpan]) -> Vec<Vec<(f64, f64)>> {
    let cuts: Vec<usize> = spans.iter().flat_map(|s| [s.start, s.end()]).collect();
    let mut out = vec![];
    let mut cur: Vec<(f64, f64)> = vec![];
    for (i, &v) in scores.iter().enumerate() {
        if (!v.is_finite() || cuts.contains(&i)) && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if v.is_finite() {
            cur.push((i as f64, v));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The band split the same way as [`depth_segments`]: runs of `(unit, lo, hi)`.
fn band_segments(band: &[(f64, f64)], spans: &[LayerSpan]) -> Vec<Vec<(f64, f64, f64)>> {
    let cuts: Vec<usize> = spans.iter().flat_map(|s| [s.start, s.end()]).collect();
    let mut out = vec![];
    let mut cur = vec![];
    for (i, &(lo, hi)) in band.iter().enumerate() {
        let ok = lo.is_finite() && hi.is_finite();
        if (!ok || cuts.contains(&i)) && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if ok {
            cur.push((i as f64, lo.min(hi), lo.max(hi)));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl DepthCurve<'_> {
    fn check(&self) -> Result<(), String> {
        let n = self.scores.len();
        if n == 0 {
            return Err("depth curve: no scores".to_string());
        }
        if let Some(b) = self.band
            && b.len() != n
        {
            return Err(format!(
                "depth curve: band has {} entries for {n} scores",
                b.len()
            ));
        }
        for s in self.spans {
            if s.end() > n {
                return Err(format!(
                    "depth curve: layer '{}' covers units {}..{} but there are {n} scores",
                    s.name,
                    s.start,
                    s.end()
                ));
            }
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let n = self.scores.len();
        let band_vals = self
            .band
            .unwrap_or(&[])
            .iter()
            .flat_map(|&(lo, hi)| [lo, hi]);
        let (mut y0, mut y1) = (f64::MAX, f64::MIN);
        for v in self
            .scores
            .iter()
            .copied()
            .chain(band_vals)
            .filter(|v| v.is_finite())
        {
            y0 = y0.min(v);
            y1 = y1.max(v);
        }
        if y0 > y1 {
            (y0, y1) = (0.0, 1.0);
        }
        // Room above the data for the layer names (12% of the range), 5% below.
        let span = (y1 - y0).max(1e-6);
        let (ylo, yhi) = (y0 - 0.05 * span, y1 + 0.14 * span);
        let (xlo, xhi) = (-0.5, n as f64 - 0.5);
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("unit (layer by layer, channel by channel)")
            .y_desc(self.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        // Band behind everything; a one-unit run becomes a narrow bar so it stays visible.
        if let Some(band) = self.band {
            for run in band_segments(band, self.spans) {
                if let [(x, lo, hi)] = run[..] {
                    let bar = Rectangle::new([(x - 0.3, lo), (x + 0.3, hi)], BAND_FILL.filled());
                    chart.draw_series(std::iter::once(bar)).map_err(e)?;
                } else {
                    let poly = Polygon::new(super::plot::band_polygon(&run), BAND_FILL.filled());
                    chart.draw_series(std::iter::once(poly)).map_err(e)?;
                }
            }
        }
        if ylo < 0.0 && yhi > 0.0 {
            let zero = [(xlo, 0.0), (xhi, 0.0)];
            chart
                .draw_series(LineSeries::new(zero, RGBColor(170, 170, 170)))
                .map_err(e)?;
        }
        // Layer boundaries (dashed, between the last unit of one layer and the first of the
        // next) and names (top of the plot, centred on each layer).
        let mut cuts: Vec<usize> = self
            .spans
            .iter()
            .flat_map(|s| [s.start, s.end()])
            .filter(|&k| k > 0 && k < n)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        for k in cuts {
            let x = k as f64 - 0.5;
            let line = DashedLineSeries::new([(x, ylo), (x, yhi)], 6, 4, BOUNDARY.stroke_width(1));
            chart.draw_series(line).map_err(e)?;
        }
        let name_style = ("sans-serif", 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        let top = yhi - 0.02 * (yhi - ylo);
        for s in self.spans.iter().filter(|s| s.len > 0) {
            let x = s.start as f64 + s.len as f64 / 2.0 - 0.5;
            let text = Text::new(s.name.clone(), (x, top), name_style.clone());
            chart.draw_series(std::iter::once(text)).map_err(e)?;
        }
        // The curve, and dots where it is short enough to read point by point or a point is
        // isolated (no line through it).
        let color = PALETTE[0];
        let segs = depth_segments(self.scores, self.spans);
        for seg in &segs {
            chart
                .draw_series(LineSeries::new(seg.iter().copied(), color.stroke_width(2)))
                .map_err(e)?;
        }
        let dots = segs.iter().filter(|s| n <= 100 || s.len() == 1).flatten();
        chart
            .draw_series(dots.map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(e)?;
        root.present().map_err(e)
    }

    /// The chart as an RGB PNG of [`DEPTH_SIZE`].
    pub fn png(&self) -> Result<Vec<u8>, String> {
        self.check()?;
        ensure_font();
        let (w, h) = DEPTH_SIZE;
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            self.draw(root)?;
        }
        Ok(encode_png_rgb(&buf, w, h))
    }

    /// The chart as an SVG document of [`DEPTH_SIZE`].
    pub fn svg(&self) -> Result<String, String> {
        self.check()?;
        ensure_font();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, DEPTH_SIZE).into_drawing_area();
            self.draw(root)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::heatmap::spans_from_sizes;

    #[test]
    fn segments_break_at_gaps_and_layers() {
        let scores = [0.1, 0.2, f64::NAN, 0.4, 0.5, 0.6, 0.7];
        let spans = spans_from_sizes(&[("a", 5), ("b", 1), ("c", 1)]);
        let segs = depth_segments(&scores, &spans);
        assert_eq!(
            segs,
            vec![
                vec![(0.0, 0.1), (1.0, 0.2)],
                vec![(3.0, 0.4), (4.0, 0.5)],
                vec![(5.0, 0.6)],
                vec![(6.0, 0.7)],
            ]
        );
        assert_eq!(
            depth_segments(&[f64::NAN, f64::NAN], &[]),
            Vec::<Vec<(f64, f64)>>::new()
        );
        let band = band_segments(&[(0.0, 1.0), (2.0, 1.0), (f64::NAN, 0.0)], &[]);
        assert_eq!(
            band,
            vec![vec![(0.0, 0.0, 1.0), (1.0, 1.0, 2.0)]],
            "lo <= hi"
        );
    }

    fn count(img: &image::RgbImage, c: RGBColor) -> usize {
        img.pixels().filter(|p| p.0 == [c.0, c.1, c.2]).count()
    }

    #[test]
    fn depth_png_draws_curve_band_and_names() {
        let scores: Vec<f64> = (0..49)
            .map(|i| {
                if i == 10 {
                    f64::NAN
                } else {
                    (i as f64 * 0.3).sin() * 0.4
                }
            })
            .collect();
        let band: Vec<(f64, f64)> = (0..49).map(|_| (-0.1, 0.1)).collect();
        let spans = spans_from_sizes(&[("block1", 32), ("block2", 16), ("out", 1)]);
        let curve = DepthCurve {
            title: "best match of each unit of A in B",
            scores: &scores,
            spans: &spans,
            band: Some(&band),
            y_label: "best-match r",
        };
        let img = image::load_from_memory(&curve.png().unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), DEPTH_SIZE);
        assert!(count(&img, PALETTE[0]) > 200, "curve drawn");
        assert!(count(&img, BAND_FILL) > 2000, "band drawn");
        let without = DepthCurve {
            band: None,
            ..curve
        };
        let img2 = image::load_from_memory(&without.png().unwrap())
            .unwrap()
            .to_rgb8();
        // (Anti-aliased text may hit the band's grey on a few pixels.)
        assert!(count(&img2, BAND_FILL) < 100, "no band without one");
        let svg = curve.svg().unwrap();
        assert!(svg.contains("<svg"));
        for s in [
            "block1",
            "block2",
            "out",
            "best-match r",
            "best match of each unit",
        ] {
            assert!(svg.contains(s), "{s} in svg");
        }
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn depth_rejects_mismatched_inputs_and_survives_all_nan() {
        let spans = spans_from_sizes(&[("a", 3)]);
        let c = DepthCurve {
            title: "t",
            scores: &[0.0, 1.0],
            spans: &spans,
            band: None,
            y_label: "y",
        };
        assert!(c.png().unwrap_err().contains("'a'"));
        let c = DepthCurve {
            spans: &[],
            band: Some(&[(0.0, 1.0)]),
            ..c
        };
        assert!(c.svg().is_err());
        let c = DepthCurve {
            band: None,
            scores: &[f64::NAN; 4],
            ..c
        };
        assert!(c.png().is_ok());
    }
}

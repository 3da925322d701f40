//! Line plots (PNG through plotters' bitmap backend, SVG through its SVG backend).

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::grid::encode_png_rgb;
use crate::train::EpochStats;

static FONT: Once = Once::new();
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded DejaVu Sans as plotters' "sans-serif", once per process.
pub(crate) fn ensure_font() {
    FONT.call_once(|| {
        // The embedded font is known to be valid; a failure would only lose text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
}

/// A titled chart of named (x, y) series, each with an optional shaded band.
///
/// Non-finite points break a series' line (gaps), they are not drawn.
pub(crate) struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// `bands[i]`, when present, is series i's band as `(x, lo, hi)` points, drawn as a light
    /// fill of the series' colour behind all lines (e.g. mean ± 2 sd of a null model). Shorter
    /// than `series` (or empty) means no band for the remaining series.
    pub bands: Vec<Option<Vec<(f64, f64, f64)>>>,
}

/// Series colours (matplotlib's tab10), in order.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Splits points into maximal runs of consecutive finite points (a non-finite point is a gap).
pub(crate) fn finite_runs<T: Copy>(points: &[T], finite: impl Fn(&T) -> bool) -> Vec<Vec<T>> {
    let mut runs = vec![];
    let mut cur = vec![];
    for p in points {
        if finite(p) {
            cur.push(*p);
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

/// The closed outline of a band `(x, lo, hi)`: along `hi` left to right, back along `lo`.
pub(crate) fn band_polygon(band: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
    let upper = band.iter().map(|&(x, _, hi)| (x, hi));
    let lower = band.iter().rev().map(|&(x, lo, _)| (x, lo));
    upper.chain(lower).collect()
}

fn finite_xy(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

fn finite_band(p: &(f64, f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite() && p.2.is_finite()
}

impl LineChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let bands = self.bands.iter().flatten().flatten();
        let band_pts = bands.flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
        let pts = self
            .series
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .chain(band_pts);
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in pts {
            if x.is_finite() && y.is_finite() {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        for (i, band) in self.bands.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            for run in finite_runs(band.as_deref().unwrap_or(&[]), finite_band) {
                let poly = Polygon::new(band_polygon(&run), color.mix(0.18).filled());
                chart.draw_series(std::iter::once(poly)).map_err(e)?;
            }
        }
        for (i, (name, s)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let runs = finite_runs(s, finite_xy);
            for (k, run) in runs.iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                    .map_err(e)?;
                if k == 0 {
                    drawn.label(name.as_str()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                }
            }
            let dots = s.len() <= 60 || runs.iter().any(|r| r.len() == 1);
            if dots {
                let small = s.len() > 60;
                let pts: Vec<_> = runs
                    .iter()
                    .filter(|r| !small || r.len() == 1)
                    .flatten()
                    .collect();
                chart
                    .draw_series(pts.into_iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(e)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)
    }

    /// The chart as an RGB PNG of `w` x `h` pixels.
    pub fn png(&self, w: u32, h: u32) -> Result<Vec<u8>, String> {
        ensure_font();
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            self.draw(root)?;
        }
        Ok(encode_png_rgb(&buf, w, h))
    }

    /// The chart as an SVG document (text as SVG text).
    pub fn svg(&self, w: u32, h: u32) -> Result<String, String> {
        ensure_font();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
            self.draw(root)?;
        }
        Ok(out)
    }
}

fn loss_chart(history: &[EpochStats]) -> LineChart<'static> {
    let pick = |f: fn(&EpochStats) -> f64| history.iter().map(|s| (s.epoch as f64, f(s))).collect();
    LineChart {
        title: "Training losses (mean per epoch)",
        x_label: "epoch",
        y_label: "BCE loss",
        series: vec![
            ("generator".to_string(), pick(|s| s.g_loss)),
            ("discriminator".to_string(), pick(|s| s.d_loss)),
        ],
        bands: Vec::new(),
    }
}

/// The generator and discriminator loss curves over epochs, as a PNG.
pub fn loss_plot_png(history: &[EpochStats]) -> Result<Vec<u8>, String> {
    loss_chart(history).png(800, 480)
}

/// The same loss curves as an SVG document.
pub fn loss_plot_svg(history: &[EpochStats]) -> Result<String, String> {
    loss_chart(history).svg(800, 480)
}

/// A chart of one line per named series of `(x, y)` points, e.g. "similarity vs epoch, one line
/// per layer pair", as an 800 x 480 PNG. Non-finite points leave gaps.
pub fn evolution_png(
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<Vec<u8>, String> {
    evolution_chart(series, title, x_label, y_label).png(800, 480)
}

/// The same multi-series chart as [`evolution_png`], as an SVG document.
pub fn evolution_svg(
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<String, String> {
    evolution_chart(series, title, x_label, y_label).svg(800, 480)
}

fn evolution_chart<'a>(
    series: &[(String, Vec<(f64, f64)>)],
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
) -> LineChart<'a> {
    LineChart {
        title,
        x_label,
        y_label,
        series: series.to_vec(),
        bands: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(epoch: usize, g: f64, d: f64) -> EpochStats {
        EpochStats {
            epoch,
            g_loss: g,
            d_loss: d,
            d_real_acc: 0.5,
            d_fake_acc: 0.5,
            seconds: 1.0,
            img_per_s: 1.0,
        }
    }

    #[test]
    fn loss_plot_decodes_and_has_ink() {
        let h = vec![
            stats(1, 0.9, 0.6),
            stats(2, 0.8, 0.65),
            stats(3, 0.78, 0.65),
        ];
        let png = loss_plot_png(&h).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (800, 480));
        // Both series colours appear somewhere on the canvas.
        let has = |c: [u8; 3]| img.pixels().any(|p| p.0 == c);
        assert!(has([31, 119, 180]), "generator curve drawn");
        assert!(has([214, 39, 40]), "discriminator curve drawn");
        let svg = loss_plot_svg(&h).unwrap();
        assert!(svg.contains("<svg") && svg.contains("generator"));
    }

    #[test]
    fn evolution_chart_draws_every_series_band_and_survives_gaps() {
        let series = vec![
            (
                "block1 x block1".to_string(),
                vec![(1.0, 0.1), (2.0, 0.2), (3.0, 0.3)],
            ),
            (
                "out x out".to_string(),
                vec![(1.0, 0.5), (2.0, f64::NAN), (3.0, 0.4)],
            ),
            (
                "block2 x block2".to_string(),
                vec![(1.0, 0.0), (2.0, 0.05), (3.0, 0.1)],
            ),
        ];
        let png = evolution_png(&series, "similarity vs epoch", "epoch", "mean r").unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (800, 480));
        for c in &PALETTE[..3] {
            assert!(
                img.pixels().any(|p| p.0 == [c.0, c.1, c.2]),
                "series colour {c:?}"
            );
        }
        let svg = evolution_svg(&series, "similarity vs epoch", "epoch", "mean r").unwrap();
        assert!(svg.contains("out x out") && !svg.contains("NaN"));
        // A band: filled with a light tint of the series colour.
        let chart = LineChart {
            title: "t",
            x_label: "x",
            y_label: "y",
            series: series[..1].to_vec(),
            bands: vec![Some(vec![(1.0, -1.0, 1.0), (3.0, -1.0, 1.0)])],
        };
        let img = image::load_from_memory(&chart.png(400, 300).unwrap())
            .unwrap()
            .to_rgb8();
        let tint = |c: u8| (255.0 * 0.82 + c as f64 * 0.18).round() as i32;
        let p = PALETTE[0];
        let want = [tint(p.0), tint(p.1), tint(p.2)];
        let near = |q: [u8; 3]| (0..3).all(|k| (q[k] as i32 - want[k]).abs() <= 2);
        assert!(
            img.pixels().filter(|q| near(q.0)).count() > 1000,
            "band filled"
        );
    }
}

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

/// A titled chart of named (x, y) series.
pub(crate) struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

impl LineChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let pts = self.series.iter().flat_map(|(_, s)| s.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
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
        for (i, (name, s)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
                .map_err(e)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            if s.len() <= 60 {
                chart
                    .draw_series(s.iter().map(|&p| Circle::new(p, 3, color.filled())))
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
}

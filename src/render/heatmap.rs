//! Heatmaps of a unit x unit (or layer x layer) score table, with layer boundaries and a colour
//! bar, as PNG (pixel-exact cells) or SVG (one rect per cell).
//!
//! Both outputs are drawn from one list of primitives ([`Scene`]), so they show the same
//! figure. The geometry is fixed by [`heatmap_layout`], so tests (and readers) can find the
//! pixel of any cell.

use ndarray::{Array2, ArrayView2};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::{DIVERGING_NAME, diverging};
use super::grid::encode_png_rgb;
use super::plot::ensure_font;

/// A layer's contiguous range of units along one axis of a table: units `start..start + len`.
///
/// Tables are laid out layer by layer, channel by channel, so a list of spans is all a figure
/// needs to draw layer boundaries and names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpan {
    /// The layer's name, drawn next to its range.
    pub name: String,
    /// Index of the layer's first unit along the axis.
    pub start: usize,
    /// Number of units (channels) in the layer.
    pub len: usize,
}

impl LayerSpan {
    /// One past the layer's last unit: `start + len`.
    pub fn end(&self) -> usize {
        self.start + self.len
    }
}

/// Consecutive spans from `(name, units)` in axis order: the first starts at 0, each next one
/// where the previous ends.
pub fn spans_from_sizes<S: AsRef<str>>(layers: &[(S, usize)]) -> Vec<LayerSpan> {
    let mut start = 0;
    layers
        .iter()
        .map(|(name, len)| {
            let s = LayerSpan {
                name: name.as_ref().to_string(),
                start,
                len: *len,
            };
            start += len;
            s
        })
        .collect()
}

/// Spans of one unit each, in the order of `spans`, with the same names: the axes of a
/// layer x layer table such as [`block_values`]' output.
pub fn block_spans(spans: &[LayerSpan]) -> Vec<LayerSpan> {
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| LayerSpan {
            name: s.name.clone(),
            start: i,
            len: 1,
        })
        .collect()
}

/// Largest side of the matrix area, in pixels, before cells shrink to 1 px.
const MAX_MATRIX: usize = 900;
/// Largest cell side, in pixels (small tables would otherwise get huge cells).
const MAX_CELL: usize = 80;
/// Room left of the matrix: the rotated row label and the row layer names.
const LEFT: usize = 140;
/// Room above the matrix: the title.
const TOP: usize = 56;
/// Room below the matrix: two lanes of column layer names and the column label.
const BOTTOM: usize = 72;
/// Gap between the matrix and the colour bar, and the bar's width.
const BAR_GAP: usize = 24;
const BAR_W: usize = 22;
/// Room right of the colour bar: tick labels and the rotated bar label.
const RIGHT: usize = 120;
/// The colour bar is at least this tall, even next to a small matrix.
const MIN_BAR_H: usize = 160;
/// The figure is at least this wide, so a title has room.
const MIN_WIDTH: usize = 560;
/// Font sizes (pixels) of the title, axis labels and tick/layer names.
const TITLE_PX: f64 = 20.0;
const LABEL_PX: f64 = 15.0;
const NAME_PX: f64 = 13.0;

/// Pixel geometry of a heatmap figure (all in pixels, origin at the top-left of the image).
///
/// Cell `(i, j)` covers `x in origin_x + j * cell .. origin_x + (j + 1) * cell` and
/// `y in origin_y + i * cell .. origin_y + (i + 1) * cell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeatmapLayout {
    /// Left edge of the matrix (column 0).
    pub origin_x: usize,
    /// Top edge of the matrix (row 0).
    pub origin_y: usize,
    /// Side of one cell.
    pub cell: usize,
    /// `cols * cell`.
    pub matrix_w: usize,
    /// `rows * cell`.
    pub matrix_h: usize,
    /// Left edge of the colour bar.
    pub bar_x: usize,
    /// Top edge of the colour bar (level with the matrix).
    pub bar_y: usize,
    /// Width of the colour bar.
    pub bar_w: usize,
    /// Height of the colour bar: `max(matrix_h, 160)`.
    pub bar_h: usize,
    /// Width of the whole image.
    pub width: usize,
    /// Height of the whole image.
    pub height: usize,
}

/// The geometry of a `rows` x `cols` heatmap: the cell side is
/// `clamp(floor(900 / max(rows, cols)), 1, 80)` pixels, so the matrix fits in about 900 px
/// (193 units: 4 px per cell), small tables get readable cells (2 x 2: 80 px), and a table of
/// more than 900 units still gets 1 px per cell.
pub fn heatmap_layout(rows: usize, cols: usize) -> HeatmapLayout {
    let cell = (MAX_MATRIX / rows.max(cols).max(1)).clamp(1, MAX_CELL);
    let (matrix_w, matrix_h) = (cols * cell, rows * cell);
    let (origin_x, origin_y) = (LEFT, TOP);
    let bar_h = matrix_h.max(MIN_BAR_H);
    let bar_x = origin_x + matrix_w + BAR_GAP;
    HeatmapLayout {
        origin_x,
        origin_y,
        cell,
        matrix_w,
        matrix_h,
        bar_x,
        bar_y: origin_y,
        bar_w: BAR_W,
        bar_h,
        width: (bar_x + BAR_W + RIGHT).max(MIN_WIDTH),
        height: origin_y + matrix_h.max(bar_h) + BOTTOM,
    }
}

/// A heatmap figure of a score table: rows and columns are units (or layers), each cell
/// coloured by [`diverging`] (`RdBu_r`, centred on 0).
///
/// Why: the whole A x B table at a glance, with layer blocks outlined, shows whether high
/// scores concentrate on a diagonal, in some layer pairs, or nowhere.
pub struct Heatmap<'a> {
    /// The table, `[rows, cols]`; NaN cells are drawn mid grey.
    pub values: ArrayView2<'a, f64>,
    /// Layer spans along the rows (may be empty: no boundaries or names).
    pub rows: &'a [LayerSpan],
    /// Layer spans along the columns (may be empty).
    pub cols: &'a [LayerSpan],
    /// Title above the figure.
    pub title: &'a str,
    /// Axis label of the rows (drawn rotated, left of the matrix), e.g. "GAN A units".
    pub row_label: &'a str,
    /// Axis label of the columns (below the matrix), e.g. "GAN B units".
    pub col_label: &'a str,
    /// Colour limit: `-limit` is full blue, `+limit` full red. `None`: the largest finite
    /// |value| (at least 1e-12).
    pub limit: Option<f64>,
}

/// Horizontal anchor of a text primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

/// One drawing primitive of a [`Scene`].
#[derive(Clone, Debug)]
pub(crate) enum Prim {
    /// A filled block of whole pixels.
    Rect {
        x: usize,
        y: usize,
        w: usize,
        h: usize,
        rgb: [u8; 3],
    },
    /// Black text, vertically centred on `y`; `vertical`: rotated to read bottom to top.
    Text {
        x: i32,
        y: i32,
        text: String,
        px: f64,
        anchor: Anchor,
        vertical: bool,
    },
}

/// A white canvas with primitives drawn in order, renderable as PNG or SVG.
pub(crate) struct Scene {
    pub width: usize,
    pub height: usize,
    pub prims: Vec<Prim>,
}

/// Rough width of `text` in DejaVu Sans at `px` pixels (0.6 em per character), used only to
/// keep labels from overlapping.
fn text_width(text: &str, px: f64) -> f64 {
    0.6 * px * text.chars().count() as f64
}

/// Escapes text for SVG character data and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

impl Scene {
    pub(crate) fn new(width: usize, height: usize) -> Self {
        Scene {
            width,
            height,
            prims: Vec::new(),
        }
    }

    pub(crate) fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        self.prims.push(Prim::Rect { x, y, w, h, rgb });
    }

    pub(crate) fn text(&mut self, x: f64, y: f64, text: &str, px: f64, anchor: Anchor) {
        self.push_text(x, y, text, px, anchor, false);
    }

    pub(crate) fn vtext(&mut self, x: f64, y: f64, text: &str, px: f64) {
        self.push_text(x, y, text, px, Anchor::Middle, true);
    }

    fn push_text(&mut self, x: f64, y: f64, text: &str, px: f64, anchor: Anchor, vertical: bool) {
        if text.is_empty() {
            return;
        }
        let (x, y) = (x.round() as i32, y.round() as i32);
        self.prims.push(Prim::Text {
            x,
            y,
            text: text.to_string(),
            px,
            anchor,
            vertical,
        });
    }

    /// The scene as an RGB PNG: rects are filled pixel by pixel (clipped to the canvas), text
    /// is drawn with plotters' bitmap backend in the embedded DejaVu Sans.
    pub(crate) fn png(&self) -> Result<Vec<u8>, String> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 {
            return Err("empty figure".to_string());
        }
        let mut buf = vec![255u8; w * h * 3];
        for p in &self.prims {
            if let Prim::Rect {
                x,
                y,
                w: rw,
                h: rh,
                rgb,
            } = *p
            {
                for yy in y..(y + rh).min(h) {
                    for xx in x..(x + rw).min(w) {
                        let o = (yy * w + xx) * 3;
                        buf[o..o + 3].copy_from_slice(&rgb);
                    }
                }
            }
        }
        ensure_font();
        {
            let root =
                BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
            for p in &self.prims {
                if let Prim::Text {
                    x,
                    y,
                    text,
                    px,
                    anchor,
                    vertical,
                } = p
                {
                    let hpos = match anchor {
                        Anchor::Start => HPos::Left,
                        Anchor::Middle => HPos::Center,
                        Anchor::End => HPos::Right,
                    };
                    let mut style = ("sans-serif", *px)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(hpos, VPos::Center));
                    if *vertical {
                        style = style.transform(FontTransform::Rotate270);
                    }
                    root.draw_text(text, &style, (*x, *y))
                        .map_err(|e| e.to_string())?;
                }
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(encode_png_rgb(&buf, w as u32, h as u32))
    }

    /// The scene as a standalone SVG document (`crispEdges` rects, `sans-serif` text).
    pub(crate) fn svg(&self) -> String {
        use std::fmt::Write;
        let (w, h) = (self.width, self.height);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#
        );
        let _ = writeln!(
            s,
            r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#
        );
        let _ = writeln!(s, r#"<g shape-rendering="crispEdges">"#);
        for p in &self.prims {
            if let Prim::Rect {
                x,
                y,
                w,
                h,
                rgb: [r, g, b],
            } = *p
            {
                let _ = writeln!(
                    s,
                    r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="#{r:02x}{g:02x}{b:02x}"/>"##
                );
            }
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(
            s,
            r#"<g font-family="DejaVu Sans, sans-serif" fill="black">"#
        );
        for p in &self.prims {
            if let Prim::Text {
                x,
                y,
                text,
                px,
                anchor,
                vertical,
            } = p
            {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                let rot = if *vertical {
                    format!(r#" transform="rotate(-90 {x} {y})""#)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    r#"<text x="{x}" y="{y}" font-size="{px}" text-anchor="{anchor}" dominant-baseline="central"{rot}>{}</text>"#,
                    xml_escape(text)
                );
            }
        }
        let _ = writeln!(s, "</g>\n</svg>");
        s
    }
}

/// A tick label for a colour limit: up to 3 decimals without trailing zeros for ordinary
/// magnitudes, scientific notation for very small or large ones.
fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if (1e-2..1e4).contains(&a) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// Assigns each interval `(lo, hi)` (in axis order) to the first lane whose previous interval
/// ends before `lo`, out of `lanes`; when none is free, the lane that frees up first.
fn lanes(intervals: &[(f64, f64)], lanes: usize) -> Vec<usize> {
    let mut ends = vec![f64::NEG_INFINITY; lanes.max(1)];
    intervals
        .iter()
        .map(|&(lo, hi)| {
            let lane = ends.iter().position(|&e| e + 2.0 <= lo).unwrap_or_else(|| {
                // Every lane is busy: take the one that frees first (labels may overlap).
                (0..ends.len())
                    .min_by(|&a, &b| ends[a].total_cmp(&ends[b]))
                    .unwrap_or(0)
            });
            ends[lane] = hi;
            lane
        })
        .collect()
}

/// Checks that every span lies inside an axis of `n` units.
fn check_spans(spans: &[LayerSpan], n: usize, axis: &str) -> Result<(), String> {
    for s in spans {
        if s.end() > n {
            return Err(format!(
                "{axis} layer '{}' covers units {}..{} but the table has {n} {axis}",
                s.name,
                s.start,
                s.end()
            ));
        }
    }
    Ok(())
}

/// Interior boundaries of `spans` (every start and end strictly inside `0..n`), sorted.
fn boundaries(spans: &[LayerSpan], n: usize) -> Vec<usize> {
    let mut b: Vec<usize> = spans
        .iter()
        .flat_map(|s| [s.start, s.end()])
        .filter(|&k| k > 0 && k < n)
        .collect();
    b.sort_unstable();
    b.dedup();
    b
}

impl Heatmap<'_> {
    /// The colour limit in use: `limit`, or the largest finite |value| (at least 1e-12).
    pub fn resolved_limit(&self) -> Result<f64, String> {
        match self.limit {
            Some(l) if l.is_finite() && l > 0.0 => Ok(l),
            Some(l) => Err(format!(
                "heatmap colour limit must be positive and finite, got {l}"
            )),
            None => Ok(self
                .values
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f64, |m, v| m.max(v.abs()))
                .max(1e-12)),
        }
    }

    /// The figure as primitives laid out by [`heatmap_layout`].
    fn scene(&self) -> Result<Scene, String> {
        let (nr, nc) = self.values.dim();
        if nr == 0 || nc == 0 {
            return Err(format!("cannot draw an empty {nr} x {nc} table"));
        }
        check_spans(self.rows, nr, "rows")?;
        check_spans(self.cols, nc, "columns")?;
        let limit = self.resolved_limit()?;
        let l = heatmap_layout(nr, nc);
        let (ox, oy, c) = (l.origin_x, l.origin_y, l.cell);
        let mut sc = Scene::new(l.width, l.height);
        // Cells.
        for ((i, j), &v) in self.values.indexed_iter() {
            sc.rect(ox + j * c, oy + i * c, c, c, diverging(v, limit));
        }
        // Layer boundaries, 1 px black, on the first pixel row/column of the next layer.
        const K: [u8; 3] = [0, 0, 0];
        for b in boundaries(self.rows, nr) {
            sc.rect(ox, oy + b * c, l.matrix_w, 1, K);
        }
        for b in boundaries(self.cols, nc) {
            sc.rect(ox + b * c, oy, 1, l.matrix_h, K);
        }
        // Frame, just outside the matrix so no cell is covered.
        sc.rect(ox - 1, oy - 1, l.matrix_w + 2, 1, K);
        sc.rect(ox - 1, oy + l.matrix_h, l.matrix_w + 2, 1, K);
        sc.rect(ox - 1, oy - 1, 1, l.matrix_h + 2, K);
        sc.rect(ox + l.matrix_w, oy - 1, 1, l.matrix_h + 2, K);
        // Title.
        sc.text(
            l.width as f64 / 2.0,
            24.0,
            self.title,
            TITLE_PX,
            Anchor::Middle,
        );
        // Row layer names, right-aligned left of the matrix, in up to two lanes.
        let half = NAME_PX * 0.6;
        let centre = |s: &LayerSpan| (s.start as f64 + s.len as f64 / 2.0) * c as f64;
        let row_iv: Vec<_> = self
            .rows
            .iter()
            .map(|s| (centre(s) - half, centre(s) + half))
            .collect();
        let lane_w = self
            .rows
            .iter()
            .map(|s| text_width(&s.name, NAME_PX))
            .fold(0.0, f64::max)
            + 8.0;
        for (s, lane) in self.rows.iter().zip(lanes(&row_iv, 2)) {
            let x = ox as f64 - 6.0 - lane as f64 * lane_w;
            sc.text(x, oy as f64 + centre(s), &s.name, NAME_PX, Anchor::End);
        }
        // Column layer names, centred below the matrix, in up to two lanes.
        let col_iv: Vec<_> = self
            .cols
            .iter()
            .map(|s| {
                let hw = text_width(&s.name, NAME_PX) / 2.0;
                (centre(s) - hw, centre(s) + hw)
            })
            .collect();
        let below = (oy + l.matrix_h) as f64;
        for (s, lane) in self.cols.iter().zip(lanes(&col_iv, 2)) {
            let y = below + 14.0 + lane as f64 * 17.0;
            sc.text(ox as f64 + centre(s), y, &s.name, NAME_PX, Anchor::Middle);
        }
        // Axis labels.
        let mid_y = oy as f64 + l.matrix_h as f64 / 2.0;
        sc.vtext(18.0, mid_y, self.row_label, LABEL_PX);
        sc.text(
            ox as f64 + l.matrix_w as f64 / 2.0,
            below + 56.0,
            self.col_label,
            LABEL_PX,
            Anchor::Middle,
        );
        // Colour bar: row y shows v = limit * (1 - 2 (y + 0.5) / bar_h), +limit at the top.
        let (bx, by, bw, bh) = (l.bar_x, l.bar_y, l.bar_w, l.bar_h);
        for y in 0..bh {
            let v = limit * (1.0 - 2.0 * (y as f64 + 0.5) / bh as f64);
            sc.rect(bx, by + y, bw, 1, diverging(v, limit));
        }
        sc.rect(bx - 1, by - 1, bw + 2, 1, K);
        sc.rect(bx - 1, by + bh, bw + 2, 1, K);
        sc.rect(bx - 1, by - 1, 1, bh + 2, K);
        sc.rect(bx + bw, by - 1, 1, bh + 2, K);
        for (y, v) in [(by, limit), (by + bh / 2, 0.0), (by + bh - 1, -limit)] {
            sc.rect(bx + bw, y, 5, 1, K);
            sc.text(
                (bx + bw + 8) as f64,
                y as f64,
                &tick_label(v),
                NAME_PX,
                Anchor::Start,
            );
        }
        let label = format!("colour map: {DIVERGING_NAME}");
        sc.vtext(
            (bx + bw + 8 + 80) as f64,
            by as f64 + bh as f64 / 2.0,
            &label,
            LABEL_PX,
        );
        Ok(sc)
    }

    /// The heatmap as an RGB PNG of `heatmap_layout(rows, cols)`'s `width` x `height`.
    pub fn png(&self) -> Result<Vec<u8>, String> {
        self.scene()?.png()
    }

    /// The same heatmap as a standalone SVG document (one `<rect>` per cell).
    pub fn svg(&self) -> Result<String, String> {
        Ok(self.scene()?.svg())
    }
}

/// Permutes rows and columns so that the assigned pairs `(row i, col j)` lie on the leading
/// diagonal, in the order given, followed by the unassigned rows (and columns) in their
/// original order.
///
/// Why: after a one-to-one matching, a strong assignment shows as a bright diagonal.
/// Returns `(permuted, row_order, col_order)` with `permuted[[a, b]] =
/// values[[row_order[a], col_order[b]]]`. Pairs are expected one-to-one; a pair whose row or
/// column is out of range or already used by an earlier pair is skipped (both of its indices),
/// so the diagonal stays aligned.
pub fn reorder_by_assignment(
    values: ArrayView2<'_, f64>,
    pairs: &[(usize, usize)],
) -> (Array2<f64>, Vec<usize>, Vec<usize>) {
    let (nr, nc) = values.dim();
    let (mut row_used, mut col_used) = (vec![false; nr], vec![false; nc]);
    let (mut ro, mut co) = (Vec::with_capacity(nr), Vec::with_capacity(nc));
    for &(i, j) in pairs {
        if i < nr && j < nc && !row_used[i] && !col_used[j] {
            row_used[i] = true;
            col_used[j] = true;
            ro.push(i);
            co.push(j);
        }
    }
    ro.extend((0..nr).filter(|&i| !row_used[i]));
    co.extend((0..nc).filter(|&j| !col_used[j]));
    let out = Array2::from_shape_fn((nr, nc), |(a, b)| values[[ro[a], co[b]]]);
    (out, ro, co)
}

/// How [`block_values`] summarises the cells of one layer pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStat {
    /// Mean of all cells of the block.
    Mean,
    /// Largest cell of the block.
    Max,
    /// Mean over the row layer's units of each unit's best score in the column layer:
    /// `mean_i max_j v[i, j]` (the mean best-match score of the row layer).
    MeanRowMax,
}

/// Summarises a unit x unit table into a layer x layer table: cell `(a, b)` is `how` over the
/// block `rows[a] x cols[b]`.
///
/// Why: one number per layer pair (e.g. the mean best-match score) is the figure that shows
/// which layers of A correspond to which layers of B. NaN cells are ignored; a block with no
/// finite cell (or an empty span) is NaN; for `MeanRowMax`, a row with no finite cell is left
/// out of the mean. Spans reaching past the table are cut at its edge. Draw the result with
/// [`Heatmap`] and [`block_spans`] as both axes' spans.
pub fn block_values(
    values: ArrayView2<'_, f64>,
    rows: &[LayerSpan],
    cols: &[LayerSpan],
    how: BlockStat,
) -> Array2<f64> {
    let (nr, nc) = values.dim();
    let range = |s: &LayerSpan, n: usize| s.start.min(n)..s.end().min(n);
    Array2::from_shape_fn((rows.len(), cols.len()), |(a, b)| {
        let (ri, ci) = (range(&rows[a], nr), range(&cols[b], nc));
        let finite_max = |i: usize| {
            ci.clone()
                .map(|j| values[[i, j]])
                .filter(|v| !v.is_nan())
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        let mean = |it: &mut dyn Iterator<Item = f64>| {
            let (s, n) = it.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            if n == 0 { f64::NAN } else { s / n as f64 }
        };
        match how {
            BlockStat::Mean => mean(
                &mut ri
                    .clone()
                    .flat_map(|i| ci.clone().map(move |j| (i, j)))
                    .map(|(i, j)| values[[i, j]])
                    .filter(|v| !v.is_nan()),
            ),
            BlockStat::Max => ri.clone().filter_map(finite_max).fold(f64::NAN, f64::max),
            BlockStat::MeanRowMax => mean(&mut ri.clone().filter_map(finite_max)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn decode(png: &[u8]) -> image::RgbImage {
        image::load_from_memory(png).unwrap().to_rgb8()
    }

    fn px(img: &image::RgbImage, x: usize, y: usize) -> [u8; 3] {
        img.get_pixel(x as u32, y as u32).0
    }

    #[test]
    fn layout_cell_sizes() {
        assert_eq!(heatmap_layout(193, 193).cell, 4);
        assert!(heatmap_layout(2, 2).cell >= 40);
        assert_eq!(heatmap_layout(2000, 3).cell, 1, "at least 1 px per cell");
        let l = heatmap_layout(49, 49);
        assert!(l.matrix_w <= 900 && l.matrix_w == 49 * l.cell);
        assert!(l.bar_x >= l.origin_x + l.matrix_w && l.bar_x + l.bar_w < l.width);
        assert!(l.origin_y + l.matrix_h < l.height);
    }

    #[test]
    fn hot_cell_is_red_and_the_rest_is_the_centre_colour() {
        let v = array![[0.0, 1.0], [0.0, 0.0]];
        let spans = spans_from_sizes(&[("L0", 1), ("L1", 1)]);
        let h = Heatmap {
            values: v.view(),
            rows: &spans,
            cols: &spans,
            title: "hot",
            row_label: "A",
            col_label: "B",
            limit: None,
        };
        let img = decode(&h.png().unwrap());
        let l = heatmap_layout(2, 2);
        assert_eq!(img.dimensions(), (l.width as u32, l.height as u32));
        let centre = |i: usize, j: usize| {
            px(
                &img,
                l.origin_x + j * l.cell + l.cell / 2,
                l.origin_y + i * l.cell + l.cell / 2,
            )
        };
        assert_eq!(centre(0, 1), diverging(1.0, 1.0));
        assert_eq!(centre(0, 1), [103, 0, 31]);
        for (i, j) in [(0, 0), (1, 0), (1, 1)] {
            assert_eq!(centre(i, j), diverging(0.0, 1.0), "cell ({i}, {j})");
        }
        // The colour bar: +limit colour at its top, -limit colour at its bottom.
        let bx = l.bar_x + l.bar_w / 2;
        // Row y shows v = limit * (1 - 2 (y + 0.5) / bar_h): half a row short of +-limit.
        let bar_v = |y: usize| 1.0 - 2.0 * (y as f64 + 0.5) / l.bar_h as f64;
        assert_eq!(px(&img, bx, l.bar_y), diverging(bar_v(0), 1.0));
        assert_eq!(
            px(&img, bx, l.bar_y + l.bar_h - 1),
            diverging(bar_v(l.bar_h - 1), 1.0)
        );
        let near = |p: [u8; 3], q: [u8; 3]| (0..3).all(|k| p[k].abs_diff(q[k]) <= 3);
        assert!(
            near(px(&img, bx, l.bar_y), [103, 0, 31]),
            "top is near +limit"
        );
        assert!(
            near(px(&img, bx, l.bar_y + l.bar_h - 1), [5, 48, 97]),
            "bottom near -limit"
        );
        // An explicit limit halves the saturation of the hot cell.
        let h2 = Heatmap {
            limit: Some(2.0),
            ..h
        };
        let img2 = decode(&h2.png().unwrap());
        let c = px(
            &img2,
            l.origin_x + l.cell + l.cell / 2,
            l.origin_y + l.cell / 2,
        );
        assert_eq!(c, diverging(1.0, 2.0));
    }

    #[test]
    fn layer_boundary_line_is_black_across_the_matrix() {
        let v = Array2::<f64>::zeros((4, 4));
        let rows = spans_from_sizes(&[("first", 1), ("rest", 3)]);
        let h = Heatmap {
            values: v.view(),
            rows: &rows,
            cols: &[],
            title: "boundaries",
            row_label: "rows",
            col_label: "cols",
            limit: Some(1.0),
        };
        let img = decode(&h.png().unwrap());
        let l = heatmap_layout(4, 4);
        assert_eq!(img.dimensions(), (l.width as u32, l.height as u32));
        let y = l.origin_y + l.cell;
        for x in l.origin_x..l.origin_x + l.matrix_w {
            assert_eq!(px(&img, x, y), [0, 0, 0], "boundary at x = {x}");
            assert_eq!(px(&img, x, y - 1), [247, 247, 247]);
            assert_eq!(px(&img, x, y + 1), [247, 247, 247]);
        }
        // No other boundary inside the matrix (the last span ends at the edge).
        for k in 2..4 {
            assert_eq!(
                px(&img, l.origin_x + 3, l.origin_y + k * l.cell),
                [247, 247, 247]
            );
        }
    }

    #[test]
    fn svg_has_cells_names_and_colour_map() {
        let v = array![[0.5, -0.5, 0.0], [0.1, 0.2, f64::NAN]];
        let rows = spans_from_sizes(&[("block1", 2)]);
        let cols = spans_from_sizes(&[("block2", 2), ("out", 1)]);
        let h = Heatmap {
            values: v.view(),
            rows: &rows,
            cols: &cols,
            title: "A x B <r>",
            row_label: "GAN A",
            col_label: "GAN B",
            limit: None,
        };
        let svg = h.svg().unwrap();
        assert!(svg.contains("<svg"));
        for s in [
            "block1",
            "block2",
            "out",
            "RdBu_r",
            "GAN A",
            "GAN B",
            "A x B &lt;r&gt;",
        ] {
            assert!(svg.contains(s), "{s} in svg");
        }
        assert!(svg.contains("#808080"), "NaN cell is mid grey");
        assert!(
            svg.contains(">-0.5<") && svg.contains(">0.5<"),
            "limit ticks"
        );
        let l = heatmap_layout(2, 3);
        assert!(svg.contains(&format!(r#"width="{}" height="{}""#, l.width, l.height)));
        assert!(svg.matches("<rect").count() > 6);
    }

    #[test]
    fn spans_out_of_range_and_empty_tables_are_errors() {
        let v = Array2::<f64>::zeros((2, 2));
        let rows = spans_from_sizes(&[("big", 3)]);
        let h = Heatmap {
            values: v.view(),
            rows: &rows,
            cols: &[],
            title: "",
            row_label: "",
            col_label: "",
            limit: None,
        };
        assert!(h.png().unwrap_err().contains("big"));
        let e = Array2::<f64>::zeros((0, 2));
        let h = Heatmap {
            values: e.view(),
            rows: &[],
            ..h
        };
        assert!(h.svg().is_err());
    }

    #[test]
    fn reorder_puts_assigned_pairs_on_the_diagonal() {
        // 3 x 4 table, v[i, j] = 10 i + j.
        let v = Array2::from_shape_fn((3, 4), |(i, j)| (10 * i + j) as f64);
        let (m, ro, co) = reorder_by_assignment(v.view(), &[(2, 1), (0, 3)]);
        assert_eq!(ro, vec![2, 0, 1]);
        assert_eq!(co, vec![1, 3, 0, 2]);
        assert_eq!(m[[0, 0]], 21.0);
        assert_eq!(m[[1, 1]], 3.0);
        assert_eq!(m[[2, 2]], 10.0);
        assert_eq!(m[[2, 3]], 12.0);
        assert_eq!(m[[0, 3]], 22.0);
        // Duplicates and out-of-range pairs are skipped whole.
        let (_, ro, co) = reorder_by_assignment(v.view(), &[(1, 1), (1, 2), (5, 0), (0, 2)]);
        assert_eq!(ro, vec![1, 0, 2]);
        assert_eq!(co, vec![1, 2, 0, 3]);
    }

    #[test]
    fn block_values_by_hand() {
        // Rows: a = units 0..2, b = unit 2. Columns: x = units 0..1, y = units 1..3.
        let v = array![
            [1.0, 2.0, 3.0],
            [4.0, f64::NAN, -1.0],
            [f64::NAN, f64::NAN, f64::NAN],
        ];
        let rows = spans_from_sizes(&[("a", 2), ("b", 1)]);
        let cols = spans_from_sizes(&[("x", 1), ("y", 2)]);
        let mean = block_values(v.view(), &rows, &cols, BlockStat::Mean);
        assert_eq!(mean.dim(), (2, 2));
        assert_eq!(mean[[0, 0]], 2.5); // (1 + 4) / 2
        assert_eq!(mean[[0, 1]], 4.0 / 3.0); // (2 + 3 - 1) / 3, NaN ignored
        assert!(mean[[1, 0]].is_nan() && mean[[1, 1]].is_nan());
        let max = block_values(v.view(), &rows, &cols, BlockStat::Max);
        assert_eq!(max[[0, 0]], 4.0);
        assert_eq!(max[[0, 1]], 3.0);
        assert!(max[[1, 1]].is_nan());
        let mrm = block_values(v.view(), &rows, &cols, BlockStat::MeanRowMax);
        assert_eq!(mrm[[0, 0]], 2.5); // rows: max(1) = 1, max(4) = 4
        assert_eq!(mrm[[0, 1]], 1.0); // rows: max(2, 3) = 3, max(NaN, -1) = -1
        assert!(mrm[[1, 0]].is_nan());
        // The layer x layer table draws with one-unit spans.
        let bs = block_spans(&rows);
        assert_eq!(
            bs[1],
            LayerSpan {
                name: "b".into(),
                start: 1,
                len: 1
            }
        );
        let cs = block_spans(&cols);
        let h = Heatmap {
            values: mrm.view(),
            rows: &bs,
            cols: &cs,
            title: "mean best match",
            row_label: "A",
            col_label: "B",
            limit: Some(1.0),
        };
        let img = decode(&h.png().unwrap());
        let l = heatmap_layout(2, 2);
        let c = px(&img, l.origin_x + l.cell / 2, l.origin_y + l.cell / 2);
        assert_eq!(c, diverging(2.5, 1.0), "saturates beyond the limit");
        let c = px(
            &img,
            l.origin_x + l.cell / 2,
            l.origin_y + l.cell + l.cell / 2,
        );
        assert_eq!(c, [128, 128, 128], "NaN block is grey");
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(1.0), "1");
        assert_eq!(tick_label(-0.4567), "-0.457");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(1e-5), "1.00e-5");
    }
}

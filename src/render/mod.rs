//! Figures: pure functions from numbers to image bytes (PNG, GIF, SVG).
//!
//! - `sample_grid_png(images, side, cols, pad)` tiles generated images; `gif_from_pngs(frames,
//!   delay)` animates them; `loss_plot_png(history)` draws the training curves;
//!   `evolution_png(series, ...)` draws one line per series (e.g. similarity vs epoch, one line
//!   per layer pair).
//! - `colormap`: matplotlib's `RdBu_r` (`diverging`, signed scores) and `jet` (activation maps).
//! - `Heatmap` draws a unit x unit (or layer x layer) table with layer boundaries and a colour
//!   bar (pixel geometry from `heatmap_layout`); `reorder_by_assignment` puts a matching on the
//!   diagonal; `block_values` summarises a table per layer pair.
//! - `DepthCurve` draws one score per unit against depth, with an optional null band.
//! - `overlay_panel` colours a unit's activation map over a generated image; `gallery_png` lays
//!   matched pairs out row by row.
//!
//! Text uses the embedded DejaVu Sans font, so rendering needs no system font configuration.

mod colormap;
mod depth;
mod grid;
mod heatmap;
mod overlay;
mod plot;

pub use colormap::{DIVERGING_NAME, JET_NAME, NAN_COLOR, diverging, jet};
pub use depth::{DEPTH_SIZE, DepthCurve, depth_segments};
pub use grid::{gif_from_pngs, gray_to_u8, sample_grid_png};
pub use heatmap::{
    BlockStat, Heatmap, HeatmapLayout, LayerSpan, block_spans, block_values, heatmap_layout,
    reorder_by_assignment, spans_from_sizes,
};
pub use overlay::{GalleryRow, Panel, gallery_png, overlay_panel, resize_bilinear};
pub(crate) use plot::LineChart;
pub use plot::{evolution_png, evolution_svg, loss_plot_png, loss_plot_svg};

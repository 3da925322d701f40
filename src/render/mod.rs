//! Figures: pure functions from numbers to image bytes (PNG, GIF, SVG).
//!
//! `sample_grid_png(images, side, cols, pad)` tiles generated images; `gif_from_pngs(frames,
//! delay)` animates them; `loss_plot_png(history)` draws the training curves. Text uses the
//! embedded DejaVu Sans font, so rendering needs no system font configuration.

mod grid;
mod plot;

pub use grid::{gif_from_pngs, gray_to_u8, sample_grid_png};
pub use plot::{loss_plot_png, loss_plot_svg};

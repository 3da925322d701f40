//! Image grids and animations.

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::png::PngEncoder;
use image::{Delay, Frame, ImageEncoder, RgbaImage};

/// Maps a value in [-1, 1] to a grey level: `round((v + 1) / 2 * 255)`, clamped.
pub fn gray_to_u8(v: f32) -> u8 {
    (((v + 1.0) * 0.5 * 255.0).round()).clamp(0.0, 255.0) as u8
}

/// Tiles `n` square grey images (`[n, side, side]` flattened, values in [-1, 1]) into a grid
/// of `cols` columns with `pad` pixels of white between them, and encodes it as an 8-bit PNG.
pub fn sample_grid_png(images: &[f32], side: usize, cols: usize, pad: usize) -> Vec<u8> {
    let per = side * side;
    let n = images.len() / per;
    let cols = cols.max(1).min(n.max(1));
    let rows = n.div_ceil(cols).max(1);
    let w = cols * (side + pad) + pad;
    let h = rows * (side + pad) + pad;
    let mut buf = vec![255u8; w * h];
    for k in 0..n {
        let (r, c) = (k / cols, k % cols);
        let (y0, x0) = (pad + r * (side + pad), pad + c * (side + pad));
        for y in 0..side {
            for x in 0..side {
                buf[(y0 + y) * w + x0 + x] = gray_to_u8(images[k * per + y * side + x]);
            }
        }
    }
    encode_png_gray(&buf, w as u32, h as u32)
}

/// Encodes an 8-bit grey buffer as PNG.
pub(crate) fn encode_png_gray(buf: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(buf, w, h, image::ExtendedColorType::L8)
        .expect("in-memory PNG encoding cannot fail for a consistent buffer");
    out
}

/// Encodes an 8-bit RGB buffer as PNG.
pub(crate) fn encode_png_rgb(buf: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(buf, w, h, image::ExtendedColorType::Rgb8)
        .expect("in-memory PNG encoding cannot fail for a consistent buffer");
    out
}

/// An animated, looping GIF of PNG frames (all the same size), `delay_cs` hundredths of a
/// second per frame, the last frame held three times as long.
pub fn gif_from_pngs(frames: &[Vec<u8>], delay_cs: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut out, 10);
        enc.set_repeat(Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        for (i, png) in frames.iter().enumerate() {
            let img: RgbaImage = image::load_from_memory(png)
                .map_err(|e| format!("frame {i}: {e}"))?
                .to_rgba8();
            let hold = if i + 1 == frames.len() { 3 } else { 1 };
            let delay = Delay::from_numer_denom_ms(delay_cs * 10 * hold, 1);
            enc.encode_frame(Frame::from_parts(img, 0, 0, delay))
                .map_err(|e| format!("frame {i}: {e}"))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_each_image_at_its_cell() {
        // Three 2x2 images: -1 (black), 0 (mid grey), 1 (white); 2 columns, pad 1.
        let mut imgs = vec![-1.0f32; 4];
        imgs.extend([0.0; 4]);
        imgs.extend([1.0; 4]);
        let png = sample_grid_png(&imgs, 2, 2, 1);
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (7, 7));
        assert_eq!(img.get_pixel(1, 1).0[0], 0);
        assert_eq!(img.get_pixel(4, 2).0[0], 128);
        assert_eq!(img.get_pixel(1, 4).0[0], 255);
        assert_eq!(img.get_pixel(0, 0).0[0], 255, "padding is white");
        assert_eq!(img.get_pixel(4, 4).0[0], 255, "empty cell is white");
    }

    #[test]
    fn gif_has_one_frame_per_png() {
        use image::AnimationDecoder;
        let a = sample_grid_png(&[0.5f32; 16], 4, 1, 0);
        let b = sample_grid_png(&[-0.5f32; 16], 4, 1, 0);
        let gif = gif_from_pngs(&[a, b], 20).unwrap();
        let dec = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(gif)).unwrap();
        let frames = dec.into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].buffer().dimensions(), (4, 4));
    }

    #[test]
    fn gray_mapping_endpoints() {
        assert_eq!(gray_to_u8(-1.0), 0);
        assert_eq!(gray_to_u8(1.0), 255);
        assert_eq!(gray_to_u8(3.0), 255);
        assert_eq!(gray_to_u8(0.0), 128);
    }
}

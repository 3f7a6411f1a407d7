//! Resampling an image through a homography: each output pixel centre is mapped back into
//! the source and sampled bilinearly; whatever comes from outside the source is grey 114,
//! the fill Ultralytics' `random_perspective` uses, so augmented borders look the same.
//!
//! Written here rather than taken from imageproc: it is 50 lines, and imageproc would add
//! its own dependency tree to every build for one function.

use super::geometry::{invert, Mat3};
use crate::image_io::RgbImage;

pub const BORDER: u8 = 114;

/// The source warped by `m` (source -> output coordinates, see [`super::geometry`]) into an
/// image of the same size; `None` when `m` cannot be inverted.
pub fn warp(src: &RgbImage, m: &Mat3) -> Option<RgbImage> {
    let inv = invert(m)?;
    let (w, h) = (src.width, src.height);
    let mut data = vec![BORDER; w * h * 3];
    for v in 0..h {
        let row = &mut data[v * w * 3..(v + 1) * w * 3];
        let y = v as f64 + 0.5;
        for u in 0..w {
            let x = u as f64 + 0.5;
            let pw = inv[2][0] * x + inv[2][1] * y + inv[2][2];
            if pw <= 1e-9 {
                continue;
            }
            // Back to pixel-index space, where pixel i sits at i.
            let sx = (inv[0][0] * x + inv[0][1] * y + inv[0][2]) / pw - 0.5;
            let sy = (inv[1][0] * x + inv[1][1] * y + inv[1][2]) / pw - 0.5;
            sample(src, sx, sy, &mut row[u * 3..u * 3 + 3]);
        }
    }
    Some(RgbImage { width: w, height: h, data })
}

/// Bilinear sample at pixel-index coordinates; neighbours outside the image count as the
/// border colour (OpenCV's BORDER_CONSTANT), so edges fade into the fill over one pixel.
fn sample(src: &RgbImage, x: f64, y: f64, out: &mut [u8]) {
    if !(x > -1.0 && y > -1.0 && x < src.width as f64 && y < src.height as f64) {
        return; // all four neighbours are outside: leave the border colour
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let px = |xi: isize, yi: isize, c: usize| -> f64 {
        if xi < 0 || yi < 0 || xi >= src.width as isize || yi >= src.height as isize {
            BORDER as f64
        } else {
            src.data[(yi as usize * src.width + xi as usize) * 3 + c] as f64
        }
    };
    for (c, o) in out.iter_mut().enumerate() {
        let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
        let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
        *o = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::super::geometry::{Warp, IDENTITY};
    use super::*;

    fn ramp(w: usize, h: usize) -> RgbImage {
        let data = (0..w * h * 3).map(|i| ((i * 7) % 251) as u8).collect();
        RgbImage { width: w, height: h, data }
    }

    #[test]
    fn identity_and_flip_are_exact() {
        let img = ramp(7, 5);
        assert_eq!(warp(&img, &IDENTITY).unwrap(), img);
        let flip = Warp { flip: true, degrees: 0.0, scale: 1.0, perspective: [0.0; 2] }.matrix(7.0, 5.0);
        let out = warp(&img, &flip).unwrap();
        for y in 0..5 {
            for x in 0..7 {
                let (a, b) = ((y * 7 + x) * 3, (y * 7 + 6 - x) * 3);
                assert_eq!(out.data[a..a + 3], img.data[b..b + 3]);
            }
        }
    }

    #[test]
    fn half_pixel_shift_averages_and_outside_is_grey() {
        // One row: 0, 100, 200. Shifting right by half a pixel samples halfway between
        // neighbours; the first output pixel mixes the border (114) with 0.
        let img = RgbImage { width: 3, height: 1, data: [0, 100, 200].iter().flat_map(|&v| [v; 3]).collect() };
        let m = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let out = warp(&img, &m).unwrap();
        assert_eq!(out.data.iter().step_by(3).copied().collect::<Vec<_>>(), vec![57, 50, 150]);
        // Shrunk to a quarter, the corners show the fill.
        let m = Warp { flip: false, degrees: 0.0, scale: 0.25, perspective: [0.0; 2] }.matrix(8.0, 8.0);
        let out = warp(&ramp(8, 8), &m).unwrap();
        assert_eq!(out.data[..3], [BORDER; 3]);
    }
}

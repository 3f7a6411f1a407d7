//! Ultralytics `LetterBox` and `scale_boxes`, reproduced to the pixel.
//!
//! The arithmetic follows ultralytics 8.4 (`data/augment.py`, `utils/ops.py`) step by
//! step, including Python's round-half-to-even and the `- 0.1` / `+ 0.1` that put the odd
//! padding pixel at the bottom/right; getting any of it wrong shifts boxes by a pixel.

use crate::image_io::RgbImage;
use crate::resize::resize_linear_u8c3;

/// Ultralytics pads with grey 114.
pub const PAD_VALUE: u8 = 114;

/// Where an image lands inside the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Letterbox {
    /// Source image `(height, width)`.
    pub src: (usize, usize),
    /// Resized image `(height, width)` before padding.
    pub unpad: (usize, usize),
    pub top: usize,
    pub left: usize,
    /// Model input `(height, width)` after padding.
    pub out: (usize, usize),
}

impl Letterbox {
    /// `target` is `(height, width)`. With `auto` (dynamic models), padding is reduced to
    /// the smallest multiple of `stride`, as Ultralytics does for rectangular inference.
    pub fn new(src: (usize, usize), target: (usize, usize), auto: bool, stride: usize) -> Letterbox {
        let (h, w) = (src.0 as f64, src.1 as f64);
        let r = (target.0 as f64 / h).min(target.1 as f64 / w);
        let unpad_w = ((w * r).round_ties_even() as usize).max(1);
        let unpad_h = ((h * r).round_ties_even() as usize).max(1);
        let (mut dw, mut dh) = (target.1 as f64 - unpad_w as f64, target.0 as f64 - unpad_h as f64);
        if auto {
            dw = dw.rem_euclid(stride as f64);
            dh = dh.rem_euclid(stride as f64);
        }
        dw /= 2.0;
        dh /= 2.0;
        let py_round = |v: f64| v.round_ties_even().max(0.0) as usize;
        let (top, bottom) = (py_round(dh - 0.1), py_round(dh + 0.1));
        let (left, right) = (py_round(dw - 0.1), py_round(dw + 0.1));
        Letterbox { src, unpad: (unpad_h, unpad_w), top, left, out: (unpad_h + top + bottom, unpad_w + left + right) }
    }

    /// Resizes and pads `img` into a `3 x out.0 x out.1` planar float tensor scaled to 0..1.
    pub(crate) fn apply(&self, img: &RgbImage, chw: &mut Vec<f32>) {
        debug_assert_eq!((img.height, img.width), self.src);
        let resized;
        let pixels: &[u8] = if self.unpad == self.src {
            &img.data
        } else {
            resized = resize_linear_u8c3(&img.data, img.width, img.height, self.unpad.1, self.unpad.0);
            &resized
        };
        let (oh, ow) = self.out;
        let plane = oh * ow;
        // The same float32 division as `tensor.float().div_(255)`.
        let pad = f32::from(PAD_VALUE) / 255.0;
        chw.clear();
        chw.resize(3 * plane, pad);
        let (uh, uw) = self.unpad;
        let (rs, rest) = chw.split_at_mut(plane);
        let (gs, bs) = rest.split_at_mut(plane);
        for y in 0..uh {
            let at = (y + self.top) * ow + self.left;
            let row = &pixels[y * uw * 3..][..uw * 3];
            crate::kernels::planes::row(row, &mut rs[at..][..uw], &mut gs[at..][..uw], &mut bs[at..][..uw]);
        }
    }

    /// Maps a box from model-input pixels back to source pixels, clipped to the image,
    /// exactly as `ultralytics.utils.ops.scale_boxes` does (gain recomputed from the shapes).
    pub fn unscale(&self, b: [f32; 4]) -> [f32; 4] {
        let (h0, w0) = (self.src.0 as f64, self.src.1 as f64);
        let (h1, w1) = (self.out.0 as f64, self.out.1 as f64);
        let gain = (h1 / h0).min(w1 / w0);
        let new_h = ((h0 * gain).round_ties_even()).max(1.0);
        let new_w = ((w0 * gain).round_ties_even()).max(1.0);
        let (gain_y, gain_x) = ((new_h / h0) as f32, (new_w / w0) as f32);
        let pad_x = ((w1 - new_w) / 2.0 - 0.1).round_ties_even() as f32;
        let pad_y = ((h1 - new_h) / 2.0 - 0.1).round_ties_even() as f32;
        let (wf, hf) = (self.src.1 as f32, self.src.0 as f32);
        [
            ((b[0] - pad_x) / gain_x).clamp(0.0, wf),
            ((b[1] - pad_y) / gain_y).clamp(0.0, hf),
            ((b[2] - pad_x) / gain_x).clamp(0.0, wf),
            ((b[3] - pad_y) / gain_y).clamp(0.0, hf),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values worked by hand from Ultralytics' formulas (and checked in Python with
    // ultralytics.data.augment.LetterBox(...).get_params on the same shapes).
    #[test]
    fn landscape_into_square() {
        // 810x1080 (h x w) -> 640: r = 0.5926, unpad 1080*r = 640, 810*r = 480; dh = 160/2 = 80.
        let lb = Letterbox::new((810, 1080), (640, 640), false, 32);
        assert_eq!(lb.unpad, (480, 640));
        assert_eq!((lb.top, lb.left, lb.out), (80, 0, (640, 640)));
    }

    #[test]
    fn odd_padding_goes_bottom_right() {
        // 23x37 -> 320: r = 320/37 = 8.6486, unpad h = round(198.92) = 199; dh = 121 / 2 = 60.5
        // top = round(60.4) = 60, bottom = round(60.6) = 61.
        let lb = Letterbox::new((23, 37), (320, 320), false, 32);
        assert_eq!(lb.unpad, (199, 320));
        assert_eq!((lb.top, lb.left), (60, 0));
        assert_eq!(lb.out, (320, 320));
    }

    #[test]
    fn python_rounds_half_to_even() {
        // 3x5 -> 10x10: r = 2, unpad (6, 10): dh = 4/2 = 2 -> top round(1.9)=2, bottom round(2.1)=2.
        let lb = Letterbox::new((3, 5), (10, 10), false, 32);
        assert_eq!((lb.unpad, lb.top), ((6, 10), 2));
        // 7x2 -> 5x5: r = 5/7, w*r = 1.4286 -> 1; h -> 5. dw = 4/2 = 2 -> left round(1.9) = 2.
        let lb = Letterbox::new((7, 2), (5, 5), false, 32);
        assert_eq!((lb.unpad, lb.left, lb.out), ((5, 1), 2, (5, 5)));
        // 1x4 -> 2: r = 0.5, unpad w = 2, h = round(0.5) = 0 (half to even) -> at least 1.
        let lb = Letterbox::new((1, 4), (2, 2), false, 32);
        assert_eq!(lb.unpad, (1, 2));
        // 5x1 -> 2: r = 0.4, h = round(2.0) = 2, w = round(0.4) = 0 -> 1; dw = 1 / 2 = 0.5:
        // left = round(0.4) = 0, right = round(0.6) = 1.
        let lb = Letterbox::new((5, 1), (2, 2), false, 32);
        assert_eq!((lb.unpad, lb.left, lb.out), ((2, 1), 0, (2, 2)));
    }

    #[test]
    fn auto_pads_to_stride_multiple() {
        // 480x640 -> 640 with auto: unpad (480, 640), dh = 160 % 32 = 0: input 480x640.
        let lb = Letterbox::new((480, 640), (640, 640), true, 32);
        assert_eq!((lb.out, lb.top), ((480, 640), 0));
        // 500x375 -> 640: r = 1.28, unpad (640, 480): dw = 160 % 32 = 0.
        let lb = Letterbox::new((500, 375), (640, 640), true, 32);
        assert_eq!(lb.out, (640, 480));
        // 300x500 -> 640: r = 1.28, unpad (384, 640); dh = 256 % 32 = 0.
        // 333x500 -> 640: unpad h = round(426.24) = 426; dh = 214 % 32 = 22 -> 11 each side.
        let lb = Letterbox::new((333, 500), (640, 640), true, 32);
        assert_eq!((lb.unpad, lb.top, lb.out), ((426, 640), 11, (448, 640)));
    }

    #[test]
    fn unscale_inverts_the_letterbox_and_clips() {
        let lb = Letterbox::new((810, 1080), (640, 640), false, 32);
        // A box at input (64, 80+48, 128, 80+96) is source (108, 81, 216, 162) at gain 0.5926.
        let b = lb.unscale([64.0, 128.0, 128.0, 176.0]);
        let want = [108.0, 81.0, 216.0, 162.0];
        for (g, w) in b.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{b:?}");
        }
        // Outside the image: clipped to [0, w] x [0, h].
        assert_eq!(lb.unscale([-10.0, 0.0, 700.0, 700.0]), [0.0, 0.0, 1080.0, 810.0]);
    }

    #[test]
    fn apply_places_pixels_and_pads_with_114() {
        let img = RgbImage { width: 2, height: 1, data: vec![0, 51, 255, 255, 0, 102] };
        let lb = Letterbox::new((1, 2), (2, 2), false, 32);
        assert_eq!((lb.unpad, lb.top, lb.out), ((1, 2), 0, (2, 2)));
        let mut chw = Vec::new();
        lb.apply(&img, &mut chw);
        let p = 114.0 / 255.0;
        assert_eq!(chw, vec![0.0, 1.0, p, p, 0.2, 0.0, p, p, 1.0, 0.4, p, p]);
    }
}

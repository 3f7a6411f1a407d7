//! The model input val builds (not predict's letterbox) and the label boxes carried into it.

use crate::image_io::RgbImage;
use crate::letterbox::Letterbox;
use crate::resize::resize_linear_u8c3;

use crate::formats::yolo::GtLabel;

/// Rectangular val batches pad by half a stride (`build_yolo_dataset`, mode="val").
const RECT_PAD: f64 = 0.5;

/// Where Ultralytics' val dataloader puts an image inside the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValGeometry {
    /// Source `(height, width)` after EXIF orientation.
    pub src: (usize, usize),
    /// After `load_image`: the long side at `imgsz`, the other rounded up.
    pub loaded: (usize, usize),
    /// `LetterBox(new_shape, scaleup=False)` applied to the loaded image (`src` = `loaded`).
    pub letterbox: Letterbox,
    /// LetterBox's scale (at most 1).
    pub ratio: f64,
}

impl ValGeometry {
    /// `load_image(rect_mode=True)` to `imgsz`, then `LetterBox(input, scaleup=False)`.
    pub fn new(src: (usize, usize), input: (usize, usize), imgsz: usize) -> ValGeometry {
        let (h0, w0) = src;
        let r = imgsz as f64 / h0.max(w0) as f64;
        let loaded = if r != 1.0 {
            let up = |v: usize| ((v as f64 * r).ceil() as usize).clamp(1, imgsz);
            (up(h0), up(w0))
        } else {
            src
        };
        let (h1, w1) = (loaded.0 as f64, loaded.1 as f64);
        let ratio = (input.0 as f64 / h1).min(input.1 as f64 / w1).min(1.0);
        let unpad_w = ((w1 * ratio).round_ties_even() as usize).max(1);
        let unpad_h = ((h1 * ratio).round_ties_even() as usize).max(1);
        let dw = (input.1 as f64 - unpad_w as f64) / 2.0;
        let dh = (input.0 as f64 - unpad_h as f64) / 2.0;
        let py_round = |v: f64| v.round_ties_even().max(0.0) as usize;
        let (top, bottom) = (py_round(dh - 0.1), py_round(dh + 0.1));
        let (left, right) = (py_round(dw - 0.1), py_round(dw + 0.1));
        let letterbox = Letterbox {
            src: loaded,
            unpad: (unpad_h, unpad_w),
            top,
            left,
            out: (unpad_h + top + bottom, unpad_w + left + right),
        };
        ValGeometry { src, loaded, letterbox, ratio }
    }

    /// Model input size `(height, width)`.
    pub fn input(&self) -> (usize, usize) {
        self.letterbox.out
    }

    /// The planar 0..1 input tensor, resized with OpenCV's INTER_LINEAR as Ultralytics does.
    pub fn prepare(&self, img: &RgbImage) -> Vec<f32> {
        debug_assert_eq!((img.height, img.width), self.src);
        let mut chw = Vec::new();
        if self.letterbox.unpad == self.loaded {
            // LetterBox does not resize: one resize, src -> loaded, then padding.
            Letterbox { src: self.src, unpad: self.loaded, ..self.letterbox }.apply(img, &mut chw);
        } else {
            // A non-square input can shrink the loaded image once more: two resizes, as in Python.
            let (h, w) = self.loaded;
            let loaded =
                RgbImage { width: w, height: h, data: resize_linear_u8c3(&img.data, img.width, img.height, w, h) };
            self.letterbox.apply(&loaded, &mut chw);
        }
        chw
    }

    /// A label's box in model-input pixels, through the same float32 steps as Ultralytics:
    /// `xywh2xyxy`, `denormalize` to the loaded image, `scale`, `add_padding` (LetterBox),
    /// `xyxy2xywh` and a division by the input size (Format), `xywh2xyxy` times the input size
    /// (_prepare_batch). Python scalars meet float32 arrays as float32 (NumPy 2 promotion).
    pub fn label_box(&self, l: &GtLabel) -> [f32; 4] {
        let [cx, cy, w, h] = l.xywh;
        let xyxy = |cx: f32, cy: f32, w: f32, h: f32| {
            let (hw, hh) = (w / 2.0, h / 2.0);
            [cx - hw, cy - hh, cx + hw, cy + hh]
        };
        let b = xyxy(cx, cy, w, h);
        let (lw, lh) = (self.loaded.1 as f32, self.loaded.0 as f32);
        let r = self.ratio as f32;
        let (pl, pt) = (self.letterbox.left as f32, self.letterbox.top as f32);
        let b = [b[0] * lw * r + pl, b[1] * lh * r + pt, b[2] * lw * r + pl, b[3] * lh * r + pt];
        // Format normalizes in torch by division (`bboxes[:, [0, 2]] /= w`).
        let (iw, ih) = (self.letterbox.out.1 as f32, self.letterbox.out.0 as f32);
        let n = [(b[0] + b[2]) / 2.0 / iw, (b[1] + b[3]) / 2.0 / ih, (b[2] - b[0]) / iw, (b[3] - b[1]) / ih];
        let b = xyxy(n[0], n[1], n[2], n[3]);
        [b[0] * iw, b[1] * ih, b[2] * iw, b[3] * ih]
    }
}

/// The rectangular input Ultralytics' val uses for a dynamic model with `batch=1`
/// (`BaseDataset.set_rectangle`): the aspect ratio kept, each side rounded up to a stride
/// multiple after adding half a stride.
pub fn rect_input(src: (usize, usize), imgsz: usize, stride: usize) -> (usize, usize) {
    let ar = src.0 as f64 / src.1 as f64;
    let shape = if ar < 1.0 {
        [ar, 1.0]
    } else if ar > 1.0 {
        [1.0, 1.0 / ar]
    } else {
        [1.0, 1.0]
    };
    let side = |s: f64| ((s * imgsz as f64 / stride as f64 + RECT_PAD).ceil() as usize) * stride;
    (side(shape[0]), side(shape[1]))
}

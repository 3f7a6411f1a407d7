//! Annotated images for `--save-img`: a box and a "label score" tag per detection.
//!
//! Text uses the public-domain 8x8 bitmap font from `font8x8`, so the binary carries no
//! font file and draws the same on every box.

use font8x8::UnicodeFonts;

use crate::image_io::RgbImage;
use crate::postprocess::Detection;

/// Ultralytics' default palette (`ultralytics.utils.plotting.Colors`), so classes keep
/// the colours users know from `yolo predict`.
const PALETTE: [[u8; 3]; 20] = [
    [0x04, 0x2A, 0xFF],
    [0x0B, 0xDB, 0xEB],
    [0xF3, 0xF3, 0xF3],
    [0x00, 0xDF, 0xB7],
    [0x11, 0x1F, 0x68],
    [0xFF, 0x6F, 0xDD],
    [0xFF, 0x44, 0x4F],
    [0xCC, 0xED, 0x00],
    [0x00, 0xF3, 0x44],
    [0xBD, 0x00, 0xFF],
    [0x00, 0xB4, 0xFF],
    [0xDD, 0x00, 0xBA],
    [0x00, 0xFF, 0xFF],
    [0x26, 0xC0, 0x00],
    [0x01, 0xFF, 0xB3],
    [0x7D, 0x24, 0xFF],
    [0x7B, 0x00, 0x68],
    [0xFF, 0x1B, 0x6C],
    [0xFC, 0x6D, 0x2F],
    [0xA2, 0xFF, 0x0B],
];

pub fn class_color(class: usize) -> [u8; 3] {
    PALETTE[class % PALETTE.len()]
}

/// Draws every detection onto `img`; `label` gives the text for a detection.
pub fn annotate(img: &mut RgbImage, dets: &[Detection], label: impl Fn(&Detection) -> String) {
    annotate_tagged(img, dets.iter().map(|d| (d, label(d))));
}

/// Draws each detection with its text onto `img`.
pub fn annotate_tagged<'a>(img: &mut RgbImage, tagged: impl IntoIterator<Item = (&'a Detection, String)>) {
    let thickness = ((img.width + img.height) as f32 * 0.002).round().max(1.0) as usize;
    let scale = if img.width.min(img.height) >= 600 { 2 } else { 1 };
    for (d, text) in tagged {
        let color = class_color(d.class);
        let [x1, y1, x2, y2] = d.bbox.map(|v| v.max(0.0).round() as usize);
        draw_rect(img, x1, y1, x2, y2, thickness, color);
        let (tw, th) = (text.chars().count() * 8 * scale + 2, 8 * scale + 2);
        // Tag above the box when there is room, inside it otherwise.
        let ty = if y1 >= th { y1 - th } else { y1 };
        // Shifted left near the right edge so the tag stays readable.
        let tx = x1.min(img.width.saturating_sub(tw));
        fill_rect(img, tx, ty, tx + tw, ty + th, color);
        let ink = if luminance(color) > 140.0 { [0, 0, 0] } else { [255, 255, 255] };
        draw_text(img, tx + 1, ty + 1, &text, scale, ink);
    }
}

fn luminance(c: [u8; 3]) -> f32 {
    0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32
}

fn put(img: &mut RgbImage, x: usize, y: usize, c: [u8; 3]) {
    if x < img.width && y < img.height {
        let i = (y * img.width + x) * 3;
        img.data[i..i + 3].copy_from_slice(&c);
    }
}

fn fill_rect(img: &mut RgbImage, x1: usize, y1: usize, x2: usize, y2: usize, c: [u8; 3]) {
    for y in y1..y2.min(img.height) {
        for x in x1..x2.min(img.width) {
            put(img, x, y, c);
        }
    }
}

fn draw_rect(img: &mut RgbImage, x1: usize, y1: usize, x2: usize, y2: usize, t: usize, c: [u8; 3]) {
    fill_rect(img, x1, y1, x2 + 1, y1 + t, c);
    fill_rect(img, x1, y2.saturating_sub(t - 1), x2 + 1, y2 + 1, c);
    fill_rect(img, x1, y1, x1 + t, y2 + 1, c);
    fill_rect(img, x2.saturating_sub(t - 1), y1, x2 + 1, y2 + 1, c);
}

fn draw_text(img: &mut RgbImage, x0: usize, y0: usize, text: &str, scale: usize, c: [u8; 3]) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::LATIN_FONTS.get(ch)).unwrap_or([0xFF; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(img, x0 + (i * 8 + col) * scale + dx, y0 + row * scale + dy, c);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_outline_is_drawn_in_the_class_colour() {
        let mut img = RgbImage { width: 100, height: 100, data: vec![0; 30000] };
        let d = Detection { bbox: [20.0, 30.0, 60.0, 70.0], score: 0.5, class: 1 };
        annotate(&mut img, &[d], |_| "a".into());
        let px = |x: usize, y: usize| img.data[(y * 100 + x) * 3..(y * 100 + x) * 3 + 3].to_vec();
        assert_eq!(px(40, 70), PALETTE[1].to_vec()); // bottom edge
        assert_eq!(px(60, 50), PALETTE[1].to_vec()); // right edge
        assert_eq!(px(40, 50), vec![0, 0, 0]); // inside untouched
    }
}

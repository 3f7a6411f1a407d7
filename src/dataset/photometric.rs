//! Colour and texture augmentations on 8-bit RGB: brightness/contrast, hue/saturation,
//! Gaussian blur and additive Gaussian noise. None of them moves a pixel, so boxes stay.

use super::rng::Rng;
use crate::image_io::RgbImage;

/// `v -> contrast * (v - 127.5) + 127.5 + brightness`, through a lookup table; contrast
/// pivots on mid-grey so it does not also brighten or darken the image.
pub fn brightness_contrast(img: &mut RgbImage, contrast: f64, brightness: f64) {
    let lut: Vec<u8> = (0..256).map(|v| to_u8(contrast * (v as f64 - 127.5) + 127.5 + brightness)).collect();
    for p in img.data.iter_mut() {
        *p = lut[*p as usize];
    }
}

/// Turns the hue by `degrees` and multiplies the saturation by `gain` (HSV, as OpenCV's
/// `COLOR_RGB2HSV` defines it, in floating point so a zero change is an exact no-op).
pub fn hue_saturation(img: &mut RgbImage, degrees: f64, gain: f64) {
    if degrees == 0.0 && gain == 1.0 {
        return;
    }
    for px in img.data.chunks_exact_mut(3) {
        let [h, s, v] = rgb_to_hsv([px[0], px[1], px[2]].map(|c| c as f64 / 255.0));
        let rgb = hsv_to_rgb([(h + degrees).rem_euclid(360.0), (s * gain).clamp(0.0, 1.0), v]);
        for (o, c) in px.iter_mut().zip(rgb) {
            *o = to_u8(c * 255.0);
        }
    }
}

fn rgb_to_hsv([r, g, b]: [f64; 3]) -> [f64; 3] {
    let max = r.max(g).max(b);
    let d = max - r.min(g).min(b);
    let s = if max > 0.0 { d / max } else { 0.0 };
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    [h, s, max]
}

fn hsv_to_rgb([h, s, v]: [f64; 3]) -> [f64; 3] {
    let c = v * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp.rem_euclid(2.0) - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

/// Separable Gaussian blur, kernel radius 3 sigma, edges replicated.
pub fn gaussian_blur(img: &mut RgbImage, sigma: f64) {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let mut k: Vec<f64> = (-radius..=radius).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let (w, h) = (img.width as isize, img.height as isize);
    let at = |x: isize, y: isize| (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) as usize * 3;
    let mut tmp = vec![0f64; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let acc: f64 =
                    k.iter().enumerate().map(|(i, kv)| kv * img.data[at(x + i as isize - radius, y) + c] as f64).sum();
                tmp[at(x, y) + c] = acc;
            }
        }
    }
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let acc: f64 = k.iter().enumerate().map(|(i, kv)| kv * tmp[at(x, y + i as isize - radius) + c]).sum();
                img.data[at(x, y) + c] = to_u8(acc);
            }
        }
    }
}

/// Adds independent Gaussian noise of `sigma` levels to every channel value.
pub fn gaussian_noise(img: &mut RgbImage, sigma: f64, rng: &mut Rng) {
    for p in img.data.iter_mut() {
        *p = to_u8(*p as f64 + sigma * rng.normal());
    }
}

fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(pixels: &[[u8; 3]]) -> RgbImage {
        RgbImage { width: pixels.len(), height: 1, data: pixels.concat() }
    }

    #[test]
    fn brightness_and_contrast() {
        let mut i = img(&[[0, 100, 255]]);
        brightness_contrast(&mut i, 1.0, 20.0);
        assert_eq!(i.data, vec![20, 120, 255]);
        let mut i = img(&[[0, 127, 255]]);
        // Contrast 0.5 about 127.5: 0 -> 63.75, 127 -> 127.25, 255 -> 191.25.
        brightness_contrast(&mut i, 0.5, 0.0);
        assert_eq!(i.data, vec![64, 127, 191]);
    }

    #[test]
    fn hue_turns_and_saturation_scales() {
        let mut i = img(&[[255, 0, 0], [0, 0, 255], [200, 100, 50]]);
        hue_saturation(&mut i, 120.0, 1.0);
        // Red -> green, blue -> red; (200,100,50) has hue 20 -> 140: (50, 200, 100).
        assert_eq!(i.data, vec![0, 255, 0, 255, 0, 0, 50, 200, 100]);
        let mut i = img(&[[200, 100, 50]]);
        hue_saturation(&mut i, 0.0, 0.0);
        assert_eq!(i.data, vec![200, 200, 200]);
        let mut i = img(&[[200, 100, 50]]);
        // s = 0.75 -> 0.375, v = 200: min = 200 * (1 - 0.375) = 125, hue 20 keeps the order.
        hue_saturation(&mut i, 0.0, 0.5);
        assert_eq!(i.data, vec![200, 150, 125]);
        // Every colour survives a zero turn through HSV and back.
        let all: Vec<[u8; 3]> =
            (0..4096u32).map(|i| [(i * 37 % 256) as u8, (i * 101 % 256) as u8, (i * 7 % 256) as u8]).collect();
        let mut i = img(&all);
        hue_saturation(&mut i, 360.0, 1.0);
        assert_eq!(i.data, all.concat());
    }

    #[test]
    fn blur_spreads_a_dot_and_keeps_flat_areas() {
        let mut i = RgbImage { width: 9, height: 9, data: vec![0; 243] };
        i.data[(4 * 9 + 4) * 3] = 255;
        gaussian_blur(&mut i, 1.0);
        // The centre keeps (g(0) / sum g)^2 of the dot, sum over -3..3 of exp(-i^2 / 2)
        // = 2.505948: (1 / 2.505948)^2 * 255 = 40.61.
        assert_eq!(i.data[(4 * 9 + 4) * 3], 41);
        // Symmetric neighbours, and the other channels stay black.
        assert_eq!(i.data[(4 * 9 + 3) * 3], i.data[(4 * 9 + 5) * 3]);
        assert_eq!(i.data[(3 * 9 + 4) * 3], i.data[(4 * 9 + 3) * 3]);
        assert!(i.data.iter().skip(1).step_by(3).all(|&v| v == 0));
        let mut flat = RgbImage { width: 5, height: 4, data: vec![77; 60] };
        gaussian_blur(&mut flat, 1.5);
        assert!(flat.data.iter().all(|&v| v == 77));
    }

    #[test]
    fn noise_has_the_asked_spread() {
        let mut i = RgbImage { width: 100, height: 100, data: vec![128; 30000] };
        gaussian_noise(&mut i, 5.0, &mut Rng::for_item(0, "noise", 0));
        let d: Vec<f64> = i.data.iter().map(|&v| v as f64 - 128.0).collect();
        let sd = (d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64).sqrt();
        assert!((sd - 5.0).abs() < 0.1, "{sd}");
    }
}

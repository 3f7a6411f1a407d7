//! The letterbox's last step: one row of interleaved RGB bytes into the three float planes,
//! `v / 255` as `tensor.float().div_(255)` computes it (an f32 division, exact on any
//! vector width), compiled again for AVX-512 and AVX2 (`x86_64::widest!`).

/// `r[x], g[x], b[x] = rgb[3x] / 255, rgb[3x + 1] / 255, rgb[3x + 2] / 255`; the same floats
/// as [`row_scalar`].
pub fn row(rgb: &[u8], r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(()) =
        super::x86_64::widest!((rgb: &[u8], r: &mut [f32], g: &mut [f32], b: &mut [f32]) -> () => row_body)
    {
        return;
    }
    row_body(rgb, r, g, b)
}

/// The portable twin of [`row`] (for the tests).
#[cfg(test)]
pub fn row_scalar(rgb: &[u8], r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    row_body(rgb, r, g, b)
}

#[inline(always)]
fn row_body(rgb: &[u8], r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    for (((px, r), g), b) in rgb.chunks_exact(3).zip(r.iter_mut()).zip(g.iter_mut()).zip(b.iter_mut()) {
        *r = f32::from(px[0]) / 255.0;
        *g = f32::from(px[1]) / 255.0;
        *b = f32::from(px[2]) / 255.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value in every channel, rows around the vector widths: the same bits as
    /// the twin, and as the definition.
    #[test]
    fn row_equals_its_portable_twin() {
        let rgb: Vec<u8> = (0..3 * 301).map(|i| (i * 7 % 256) as u8).collect();
        for n in [1, 7, 16, 17, 64, 301] {
            let mut simd = vec![vec![0f32; n]; 3];
            let mut twin = vec![vec![1f32; n]; 3];
            let [r, g, b] = &mut simd[..] else { unreachable!() };
            row(&rgb[..3 * n], r, g, b);
            let [r, g, b] = &mut twin[..] else { unreachable!() };
            row_scalar(&rgb[..3 * n], r, g, b);
            assert_eq!(simd, twin, "{n} pixels");
            assert_eq!(twin[1][n - 1].to_bits(), (f32::from(rgb[3 * n - 2]) / 255.0).to_bits());
        }
    }
}

//! The vertical pass of `resize.rs`'s OpenCV-exact bilinear resize: two horizontally
//! resampled rows into one output row, OpenCV's `VResizeLinearVec_32s8u` steps. Integer
//! arithmetic the compiler vectorizes once it may use AVX2 or AVX-512 (`x86_64::widest!`);
//! the baseline x86_64 build, without a 32-bit vector multiply, had it at about 0.6 ms of a
//! COCO photo's 1.4 ms letterbox.

/// `out[i] = clamp(((b0 * s0[i]) >> 16) + ((b1 * s1[i]) >> 16) + 2) >> 2, 0, 255)`, on the
/// widest vectors this CPU has; the same bytes as [`row_scalar`].
pub fn row(s0: &[i16], s1: &[i16], b0: i16, b1: i16, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(()) =
        super::x86_64::widest!((s0: &[i16], s1: &[i16], b0: i16, b1: i16, out: &mut [u8]) -> () => row_body)
    {
        return;
    }
    row_body(s0, s1, b0, b1, out)
}

/// The portable twin of [`row`] (for the tests).
#[cfg(test)]
pub fn row_scalar(s0: &[i16], s1: &[i16], b0: i16, b1: i16, out: &mut [u8]) {
    row_body(s0, s1, b0, b1, out)
}

#[inline(always)]
fn row_body(s0: &[i16], s1: &[i16], b0: i16, b1: i16, out: &mut [u8]) {
    // OpenCV multiplies 16 x 16 bits keeping the high half, adds, rounds by +2 >> 2 and
    // saturates to u8. Its saturating 16-bit adds never saturate (the sum is at most about
    // 2 * 1020), so i32 intermediates give the same bits.
    let (b0, b1) = (i32::from(b0), i32::from(b1));
    for ((o, &a), &b) in out.iter_mut().zip(s0).zip(s1) {
        let v = ((b0 * i32::from(a)) >> 16) + ((b1 * i32::from(b)) >> 16);
        *o = ((v + 2) >> 2).clamp(0, 255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every weight split OpenCV makes (fractions of 2048, the rounded-off 2049 included) on
    /// rows spanning i16, lengths around the vector widths: the same bytes as the twin.
    #[test]
    fn row_equals_its_portable_twin() {
        let len = 197;
        let s0: Vec<i16> = (0..len).map(|i| (i * 331 % 32641) as i16).collect();
        let s1: Vec<i16> = (0..len).map(|i| (32640 - i * 977 % 32641) as i16).collect();
        let mut varied = 0;
        for b1 in (0..=2049i16).step_by(7).chain([2048, 2049]) {
            let b0 = 2048 - b1.min(2048);
            for n in [1, 15, 16, 33, len] {
                let (mut simd, mut twin) = (vec![0u8; n], vec![7u8; n]);
                row(&s0[..n], &s1[..n], b0, b1, &mut simd);
                row_scalar(&s0[..n], &s1[..n], b0, b1, &mut twin);
                assert_eq!(simd, twin, "weights {b0} {b1}, {n} values");
                varied += usize::from(twin.iter().any(|&v| v != twin[0]));
            }
        }
        assert!(varied > 1000, "{varied} rows vary");
    }
}

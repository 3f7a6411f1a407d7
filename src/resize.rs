//! Pixel-exact port of `cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR)`
//! for 8-bit, 3-channel interleaved images, as the opencv-python 5.0.0.93 wheel on
//! x86-64 computes it.
//!
//! Ultralytics' `LetterBox` resizes every input with exactly this call. A bilinear
//! resize that is merely "close" moves pixel values by ±1 here and there, which is
//! enough to change low-confidence scores and NMS ties, so detections could not be
//! compared with Ultralytics' output byte for byte. This module therefore copies
//! OpenCV's fixed-point arithmetic step by step rather than doing textbook
//! bilinear interpolation.
//!
//! What OpenCV does for `CV_8UC3` + `INTER_LINEAR` (checked against the wheel with
//! `tools/fixtures/make_resize_golden.py`):
//!
//! * Same size: plain copy.
//! * IPP is present in the wheel but rejects 8-bit linear resize unless
//!   `cv2.ipp.setUseIPP_NotExact(True)` has been called (off by default), and
//!   `INTER_LINEAR` is *not* rerouted to `INTER_LINEAR_EXACT`; the generic
//!   separable resampler (`resizeGeneric_` in `imgproc/src/resize.cpp`) runs.
//! * An exact 2x downscale in both axes is switched to `INTER_AREA`; with
//!   weights 1024/1024 the linear arithmetic below gives the same
//!   `(a + b + c + d + 2) >> 2`, so no special case is needed.
//! * Source coordinate per destination index: `(d + 0.5) * scale - 0.5` in
//!   `f64`, with `scale = 1 / (dst / src)`, then rounded to `f32`; integer part
//!   by floor, fraction in `f32`. Weights are `round_half_even((1 - f) * 2048)`
//!   and `round_half_even(f * 2048)` (`INTER_RESIZE_COEF_BITS` = 11).
//! * Horizontal pass: `h = p0 * a0 + p1 * a1` per channel, in `int`. Columns
//!   left of the image are clamped to column 0 with weights (2048, 0); columns at
//!   or beyond the last one use the last column with weights (2048, 0).
//! * Vertical pass: rows are clamped into the image but the weights are *not*
//!   reset at the borders (they still multiply two copies of the same row). The
//!   combination is the one of OpenCV's SIMD kernel `VResizeLinearVec_32s8u`,
//!   `(((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2`, used for
//!   every pixel including the scalar tail of each row. The textbook
//!   `(b0 * h0 + b1 * h1 + (1 << 21)) >> 22` (`FixedPtCast`) disagrees with the
//!   wheel on about 12 % of the bytes of a random image, and `INTER_LINEAR_EXACT`
//!   on a similar share, so neither is what `INTER_LINEAR` runs.

/// OpenCV's `INTER_RESIZE_COEF_BITS`: weights are fractions of 2^11.
const COEF_SCALE: f32 = (1 << 11) as f32;
const CN: usize = 3;

/// Horizontal tap for one destination column: byte offset of the left source
/// pixel in a row (the right one follows it, or is the same pixel at the right
/// edge) and the fixed-point weights of the two.
#[derive(Clone, Copy)]
struct XTap {
    lo: usize,
    w0: i32,
    w1: i32,
}

/// Vertical tap for one destination row: the two (already clamped) source rows
/// and their fixed-point weights.
#[derive(Clone, Copy)]
struct YTap {
    r0: usize,
    r1: usize,
    b0: i16,
    b1: i16,
}

/// `saturate_cast<short>(float)`: OpenCV rounds with `cvRound`, which on x86-64
/// is `cvtss2si` under the default rounding mode, i.e. ties to even.
fn fixed_weight(v: f32) -> i32 {
    v.round_ties_even().clamp(i16::MIN as f32, i16::MAX as f32) as i32
}

/// Integer source index and `f32` fraction for each destination index, computed
/// with OpenCV's exact mix of `f64` and `f32` steps: taking the fraction before
/// the rounding to `f32` changes about 1.5 % of the weights by one unit.
fn source_positions(src_len: usize, dst_len: usize) -> impl Iterator<Item = (i64, f32)> {
    let inv_scale = dst_len as f64 / src_len as f64;
    let scale = 1.0 / inv_scale;
    (0..dst_len).map(move |d| {
        let pos = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let ipos = pos.floor();
        (ipos as i64, pos - ipos)
    })
}

fn x_taps(sw: usize, dw: usize) -> Vec<XTap> {
    source_positions(sw, dw)
        .map(|(s, f)| {
            // Outside [0, sw - 2] OpenCV pins the fraction to 0, so the column
            // reduces to `p * 2048` of the nearest edge pixel.
            let (s, f) = if s < 0 {
                (0, 0.0)
            } else if s as usize >= sw - 1 {
                (sw - 1, 0.0)
            } else {
                (s as usize, f)
            };
            XTap { lo: s * CN, w0: fixed_weight((1.0 - f) * COEF_SCALE), w1: fixed_weight(f * COEF_SCALE) }
        })
        .collect()
}

fn y_taps(sh: usize, dh: usize) -> Vec<YTap> {
    let last = sh as i64 - 1;
    source_positions(sh, dh)
        .map(|(s, f)| {
            // Unlike columns, the fraction is kept at the borders: the vertical
            // formula truncates each product separately, so b0/b1 still matter
            // when both rows are the same clamped row.
            let b0 = fixed_weight((1.0 - f) * COEF_SCALE) as i16;
            let b1 = fixed_weight(f * COEF_SCALE) as i16;
            let (mut r0, mut r1) = (s.clamp(0, last) as usize, (s + 1).clamp(0, last) as usize);
            // A zero weight adds exactly `(0 * x) >> 16 = 0`, so that row need not
            // be resampled; every row of an integer-factor downscale hits this.
            if b1 == 0 {
                r1 = r0;
            } else if b0 == 0 {
                r0 = r1;
            }
            YTap { r0, r1, b0, b1 }
        })
        .collect()
}

fn hresize_row(src_row: &[u8], taps: &[XTap], out: &mut [i16]) {
    // Taps whose second pixel exists read one 6-byte window (one bounds check);
    // the clamped taps at the right edge (weight 2048, 0) read only the edge
    // pixel. Taps clamped at the left edge have weights (2048, 0) too, so
    // reading pixel 1 alongside pixel 0 there does not change the sum.
    let edge = src_row.len() - CN;
    let split = taps.partition_point(|t| t.lo < edge);
    let (inner, right) = taps.split_at(split);
    let (out_inner, out_right) = out.split_at_mut(split * CN);
    for (t, o) in inner.iter().zip(out_inner.chunks_exact_mut(CN)) {
        let w = &src_row[t.lo..t.lo + 2 * CN];
        for c in 0..CN {
            o[c] = h_value(w[c], w[c + CN], t.w0, t.w1);
        }
    }
    for (t, o) in right.iter().zip(out_right.chunks_exact_mut(CN)) {
        let p = &src_row[t.lo..t.lo + CN];
        for c in 0..CN {
            o[c] = h_value(p[c], p[c], t.w0, t.w1);
        }
    }
}

/// One horizontally interpolated value, stored already shifted right by 4: the
/// vertical pass never looks at the low four bits (OpenCV shifts them out before
/// its 16-bit multiply), and the shifted value fits in i16 (the two weights sum
/// to 2048, so at most 255 * 2048 >> 4 = 32640; a round-off 2049 would still
/// fit), which also halves the row buffers.
#[inline(always)]
fn h_value(p0: u8, p1: u8, w0: i32, w1: i32) -> i16 {
    ((i32::from(p0) * w0 + i32::from(p1) * w1) >> 4) as i16
}

/// Resizes an interleaved 3-channel 8-bit image (`sw` x `sh`, rows packed without
/// padding) to `dw` x `dh` with bilinear interpolation, returning exactly the
/// bytes `cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR)` returns.
///
/// # Panics
///
/// If any size is zero or `src.len() != sw * sh * 3`.
pub fn resize_linear_u8c3(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    assert!(sw > 0 && sh > 0 && dw > 0 && dh > 0, "resize_linear_u8c3: zero size ({sw}x{sh} -> {dw}x{dh})");
    assert_eq!(
        Some(src.len()),
        sw.checked_mul(sh).and_then(|n| n.checked_mul(CN)),
        "resize_linear_u8c3: buffer length does not match {sw}x{sh}x3"
    );
    if sw == dw && sh == dh {
        return src.to_vec();
    }

    let src_stride = sw * CN;
    let dst_stride = dw * CN;
    let xtab = x_taps(sw, dw);
    let ytab = y_taps(sh, dh);
    let mut dst = vec![0u8; dst_stride * dh];

    // Two horizontally resampled rows, tagged with the source row they hold.
    // Consecutive output rows mostly share a source row (always, when
    // upscaling), so a row is resampled only the first time it is needed.
    let mut rows = [vec![0i16; dst_stride], vec![0i16; dst_stride]];
    let mut held = [usize::MAX; 2];
    let src_row = |r: usize| &src[r * src_stride..(r + 1) * src_stride];

    for (t, out) in ytab.iter().zip(dst.chunks_exact_mut(dst_stride)) {
        let i0 = match held.iter().position(|&h| h == t.r0) {
            Some(i) => i,
            None => {
                let i = usize::from(held[0] == t.r1);
                hresize_row(src_row(t.r0), &xtab, &mut rows[i]);
                held[i] = t.r0;
                i
            }
        };
        let i1 = if t.r1 == t.r0 {
            i0
        } else {
            match held.iter().position(|&h| h == t.r1) {
                Some(i) => i,
                None => {
                    let i = 1 - i0;
                    hresize_row(src_row(t.r1), &xtab, &mut rows[i]);
                    held[i] = t.r1;
                    i
                }
            }
        };
        crate::kernels::vresize::row(&rows[i0], &rows[i1], t.b0, t.b1, out);
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::resize_linear_u8c3;
    use std::path::Path;

    /// Golden file layout (little-endian), written by
    /// `tools/fixtures/make_resize_golden.py`:
    /// `b"QRSZ"`, u8 version (1), u8 source kind (0 = raw bytes follow,
    /// 1 = gradient generated by [`gradient`]), u16 reserved, u32 sw, sh, dw, dh,
    /// then the source bytes if raw, then the `dw * dh * 3` bytes cv2 produced.
    struct Golden {
        sw: usize,
        sh: usize,
        dw: usize,
        dh: usize,
        src: Vec<u8>,
        expected: Vec<u8>,
    }

    /// Smooth test image that both the generator and this test can rebuild
    /// from its size alone, so large gradient cases cost no source bytes.
    fn gradient(w: usize, h: usize) -> Vec<u8> {
        let mut img = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                img.push((x * 256 / w) as u8);
                img.push((y * 256 / h) as u8);
                img.push(((x + y) * 256 / (w + h)) as u8);
            }
        }
        img
    }

    fn parse(bytes: &[u8]) -> Golden {
        assert_eq!(&bytes[..4], b"QRSZ", "bad magic");
        assert_eq!(bytes[4], 1, "unknown golden version");
        let kind = bytes[5];
        let word = |i: usize| u32::from_le_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().unwrap()) as usize;
        let (sw, sh, dw, dh) = (word(0), word(1), word(2), word(3));
        let mut rest = &bytes[24..];
        let src = match kind {
            0 => {
                let (s, r) = rest.split_at(sw * sh * 3);
                rest = r;
                s.to_vec()
            }
            1 => gradient(sw, sh),
            k => panic!("unknown source kind {k}"),
        };
        assert_eq!(rest.len(), dw * dh * 3, "truncated golden file");
        Golden { sw, sh, dw, dh, src, expected: rest.to_vec() }
    }

    #[test]
    fn matches_opencv_goldens() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/resize");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        paths.sort();
        assert!(paths.len() >= 15, "expected the golden set, found {} files", paths.len());

        let mut failures = Vec::new();
        for path in &paths {
            let g = parse(&std::fs::read(path).unwrap());
            let got = resize_linear_u8c3(&g.src, g.sw, g.sh, g.dw, g.dh);
            if got != g.expected {
                let bad = got.iter().zip(&g.expected).filter(|(a, b)| a != b).count();
                let first = got.iter().zip(&g.expected).position(|(a, b)| a != b).unwrap();
                let px = first / 3;
                failures.push(format!(
                    "{}: {bad} of {} bytes differ, first at x={} y={} c={} (got {}, want {})",
                    path.file_name().unwrap().to_string_lossy(),
                    got.len(),
                    px % g.dw,
                    px / g.dw,
                    first % 3,
                    got[first],
                    g.expected[first]
                ));
            }
        }
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    }

    #[test]
    fn same_size_is_a_copy() {
        let src: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
        assert_eq!(resize_linear_u8c3(&src, 5, 4, 5, 4), src);
    }

    #[test]
    #[should_panic(expected = "buffer length")]
    fn rejects_wrong_length() {
        resize_linear_u8c3(&[0; 10], 2, 2, 4, 4);
    }
}

//! Max pooling with stride 1 on uint8 `[C][H][W]` planes, as two passes of running maxima
//! (across rows, then down columns). Quantization is monotonic, so pooling the quantized
//! tensor gives exactly the quantized pool of the floats when both use the same scale and
//! zero point, which is what the SPPF block of a QDQ model does.

/// `out[c][y][x] = max` over the `kh x kw` window at `(y - pad[0], x - pad[1])` of `x` (`c`
/// planes of `h x w`); padding never wins (ONNX pads with -inf). The output is
/// `(h + pad[0] + pad[2] - kh + 1) x (w + pad[1] + pad[3] - kw + 1)` per plane.
///
/// # Panics
/// If a window holds no input pixel, or `x` / `out` have the wrong sizes.
pub fn max_pool_u8(
    x: &[u8],
    c: usize,
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    pad: [usize; 4],
    out: &mut [u8],
) {
    let (oh, ow) = (h + pad[0] + pad[2] + 1 - kh, w + pad[1] + pad[3] + 1 - kw);
    assert!(
        kh > pad[0].max(pad[2]) && kw > pad[1].max(pad[3]),
        "a {kh}x{kw} window with padding {pad:?} can miss the image"
    );
    assert!(x.len() == c * h * w && out.len() == c * oh * ow, "max pool of {} values into {}", x.len(), out.len());
    let mut rows = vec![0u8; h * ow];
    for (plane, o) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        // Across each row, one window column at a time over whole slices (vectorized): column
        // `kx` of output `ox` is input `ox + kx - pad[1]`, where that is inside the row. 0
        // never wins over a real value, and every window holds one (asserted).
        for (src, dst) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
            dst.fill(0);
            for kx in 0..kw {
                let (lo, hi) = (pad[1].saturating_sub(kx), (w + pad[1]).saturating_sub(kx).min(ow));
                if lo >= hi {
                    continue;
                }
                let from = lo + kx - pad[1];
                for (d, &v) in dst[lo..hi].iter_mut().zip(&src[from..from + (hi - lo)]) {
                    *d = (*d).max(v);
                }
            }
        }
        // Down each column, over whole rows at a time.
        for (oy, dst) in o.chunks_exact_mut(ow).enumerate() {
            let (y0, y1) = (oy.saturating_sub(pad[0]), (oy + kh - pad[0]).min(h));
            dst.copy_from_slice(&rows[y0 * ow..][..ow]);
            for r in rows[(y0 + 1) * ow..y1 * ow].chunks_exact(ow) {
                for (d, &v) in dst.iter_mut().zip(r) {
                    *d = (*d).max(v);
                }
            }
        }
    }
}

/// [`max_pool_u8`] over groups of channels on the kernels' team: the SPPF's pools were
/// serial between parallel convolutions.
pub fn max_pool_u8_parallel(
    x: &[u8],
    c: usize,
    (h, w): (usize, usize),
    k: (usize, usize),
    pad: [usize; 4],
    out: &mut [u8],
) {
    let (oh, ow) = (h + pad[0] + pad[2] + 1 - k.0, w + pad[1] + pad[3] + 1 - k.1);
    assert!(x.len() == c * h * w && out.len() == c * oh * ow, "max pool of {} values into {}", x.len(), out.len());
    let n = super::threads::channel_chunk(c);
    if c == 0 || h * w == 0 || oh * ow == 0 {
        return max_pool_u8(x, c, (h, w), k, pad, out);
    }
    let items: Vec<_> = x.chunks(n * h * w).zip(out.chunks_mut(n * oh * ow)).collect();
    super::threads::for_each_item(items, |(x, o)| max_pool_u8(x, x.len() / (h * w), (h, w), k, pad, o));
}

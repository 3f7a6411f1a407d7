//! Nearest upsampling by whole factors on uint8 `[C][H][W]` planes: the neck's upsamplings
//! of a QDQ model, whose input and output share a scale and zero point, so that copying
//! bytes is exactly the quantized upsampling of the floats.

/// Nearest-neighbour upsampling of uint8 `[C][H][W]` planes by whole factors `(sh, sw)`:
/// `out[c][y][x] = x[c][y / sh][x / sw]` (ONNX Resize, nearest, asymmetric coordinates,
/// floor), each output row built once and copied `sh` times.
///
/// # Panics
/// If `x` or `out` have the wrong sizes.
pub fn upsample_nearest_u8(x: &[u8], c: usize, (h, w): (usize, usize), (sh, sw): (usize, usize), out: &mut [u8]) {
    let ow = w * sw;
    assert!(x.len() == c * h * w && out.len() == c * h * sh * ow, "upsampling {} values into {}", x.len(), out.len());
    for (src, dst) in x.chunks_exact(w).zip(out.chunks_exact_mut(sh * ow)) {
        let (first, rest) = dst.split_at_mut(ow);
        if sw == 2 {
            // Fixed-size pairs (the usual factor): the compiler interleaves them with vector
            // unpacks, where a `fill` per value was a call each.
            for (d, &v) in first.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&[v, v]);
            }
        } else {
            for (d, &v) in first.chunks_exact_mut(sw).zip(src) {
                d.fill(v);
            }
        }
        for r in rest.chunks_exact_mut(ow) {
            r.copy_from_slice(first);
        }
    }
}

/// [`upsample_nearest_u8`] over groups of channels on the kernels' team.
pub fn upsample_nearest_u8_parallel(x: &[u8], c: usize, (h, w): (usize, usize), s: (usize, usize), out: &mut [u8]) {
    let n = super::threads::channel_chunk(c);
    let (plane, out_plane) = (h * w, h * s.0 * w * s.1);
    assert!(x.len() == c * plane && out.len() == c * out_plane, "upsampling {} values into {}", x.len(), out.len());
    if c == 0 || plane == 0 || out_plane == 0 {
        return upsample_nearest_u8(x, c, (h, w), s, out);
    }
    let items: Vec<_> = x.chunks(n * plane).zip(out.chunks_mut(n * out_plane)).collect();
    super::threads::for_each_item(items, |(x, o)| upsample_nearest_u8(x, x.len() / plane, (h, w), s, o));
}

//! The uint8 max pool and nearest upsampling against their definitions and one thread.

use super::*;

/// The uint8 pool and upsampling split over groups of channels on two threads equal one
/// call over all channels (odd channel counts: a partial last group).
#[test]
fn parallel_pool_and_upsampling_equal_one_call() {
    let _team = crate::tests::team();
    use crate::kernels::maxpool::{max_pool_u8, max_pool_u8_parallel};
    use crate::kernels::upsample::{upsample_nearest_u8, upsample_nearest_u8_parallel};
    let _ = crate::kernels::threads::set_threads(2);
    let mut rng = Rng::for_item(59, "parallel-pool", 0);
    for (c, h, w) in [(1, 5, 4), (37, 9, 11), (128, 20, 20)] {
        let x: Vec<u8> = (0..c * h * w).map(|_| (rng.uniform() * 256.0) as u8).collect();
        let (mut a, mut b) = (vec![0u8; c * h * w], vec![1u8; c * h * w]);
        max_pool_u8(&x, c, (h, w), (5, 5), [2; 4], &mut a);
        max_pool_u8_parallel(&x, c, (h, w), (5, 5), [2; 4], &mut b);
        assert_eq!(a, b, "pool of {c} x {h} x {w}");
        let (mut a, mut b) = (vec![0u8; c * h * w * 6], vec![1u8; c * h * w * 6]);
        upsample_nearest_u8(&x, c, (h, w), (2, 3), &mut a);
        upsample_nearest_u8_parallel(&x, c, (h, w), (2, 3), &mut b);
        assert_eq!(a, b, "upsampling of {c} x {h} x {w}");
    }
}

/// The uint8 max pool against the definition, window by window (SPPF's 5x5 with padding 2,
/// and an asymmetric case), and against pooling the floats then quantizing them.
#[test]
fn max_pool_u8_equals_the_definition_and_commutes_with_quantization() {
    let _team = crate::tests::team();
    use crate::kernels::maxpool::max_pool_u8;
    let mut rng = Rng::for_item(47, "maxpool", 0);
    for ((c, h, w), (kh, kw), pad) in
        [((3, 9, 11), (5, 5), [2, 2, 2, 2]), ((2, 6, 7), (3, 2), [1, 0, 2, 1]), ((1, 20, 20), (5, 5), [2; 4])]
    {
        let xf: Vec<f32> = (0..c * h * w).map(|_| (rng.uniform() as f32 - 0.3) * 10.0).collect();
        let mut x = vec![0u8; xf.len()];
        crate::kernels::quantize::quantize_scalar(&xf, 0.05, 60, &mut x);
        let (oh, ow) = (h + pad[0] + pad[2] + 1 - kh, w + pad[1] + pad[3] + 1 - kw);
        let mut got = vec![0u8; c * oh * ow];
        max_pool_u8(&x, c, (h, w), (kh, kw), pad, &mut got);
        let mut pooled_f = vec![0f32; got.len()];
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut m, mut mf) = (0u8, f32::NEG_INFINITY);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (iy, ix) = ((oy + ky) as isize - pad[0] as isize, (ox + kx) as isize - pad[1] as isize);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let i = (ch * h + iy as usize) * w + ix as usize;
                                m = m.max(x[i]);
                                mf = mf.max(xf[i]);
                            }
                        }
                    }
                    let o = (ch * oh + oy) * ow + ox;
                    assert_eq!(got[o], m, "plane {ch} at ({oy}, {ox})");
                    pooled_f[o] = mf;
                }
            }
        }
        let mut want = vec![0u8; got.len()];
        crate::kernels::quantize::quantize_scalar(&pooled_f, 0.05, 60, &mut want);
        assert_eq!(got, want, "pooling the quantized tensor equals quantizing the pooled floats");
    }
}

/// Nearest upsampling of uint8 planes against ONNX Resize's definition for nearest,
/// asymmetric coordinates and floor: `out[y][x] = in[floor(y / sh)][floor(x / sw)]`.
#[test]
fn upsample_nearest_u8_equals_the_definition() {
    let _team = crate::tests::team();
    use crate::kernels::upsample::upsample_nearest_u8;
    let mut rng = Rng::for_item(53, "upsample", 0);
    for ((c, h, w), (sh, sw)) in [((3, 5, 7), (2, 2)), ((2, 4, 3), (3, 1)), ((1, 1, 1), (2, 4))] {
        let x = pixels(&mut rng, c * h * w);
        let mut got = vec![0u8; c * h * sh * w * sw];
        upsample_nearest_u8(&x, c, (h, w), (sh, sw), &mut got);
        for ch in 0..c {
            for y in 0..h * sh {
                for xx in 0..w * sw {
                    let src = (ch * h + (y as f32 / sh as f32).floor() as usize) * w
                        + (xx as f32 / sw as f32).floor() as usize;
                    assert_eq!(got[(ch * h * sh + y) * w * sw + xx], x[src], "plane {ch} at ({y}, {xx})");
                }
            }
        }
    }
}

//! The float loops: QuantizeLinear, SiLU, the DFL softmax and the DFL decode, SIMD against
//! scalar and against their definitions.

use super::*;

/// QuantizeLinear: the SIMD compilations against the portable one, and all against the ONNX
/// formula with a true division, over scales from 1e-4 to 10, values spread over the whole
/// uint8 range and beyond, values a few ulp around every rounding tie (where the reciprocal
/// shortcut must fall back to dividing), and non-finite ones.
#[test]
fn quantize_simd_equals_scalar() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(17, "quantize", 0);
    for round in 0..60 {
        let scale = if round == 0 { 0.037f32 } else { 10f32.powf(rng.uniform() as f32 * 5.0 - 4.0) };
        let mut x: Vec<f32> = (0..4_000).map(|_| (rng.uniform() as f32 - 0.3) * 400.0 * scale).collect();
        for k in -300..300 {
            let tie = (k as f32 + 0.5) * scale;
            let mut v = tie;
            for _ in 0..3 {
                v = v.next_down();
            }
            for _ in 0..7 {
                x.push(v);
                v = v.next_up();
            }
        }
        x.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.0, -0.0]);
        for zp in [0u8, 7, 128, 255] {
            let (mut a, mut b) = (vec![0u8; x.len()], vec![0u8; x.len()]);
            crate::kernels::quantize::quantize(&x, scale, zp, &mut a);
            crate::kernels::quantize::quantize_scalar(&x, scale, zp, &mut b);
            assert_eq!(a, b, "scale {scale}, zero point {zp}");
            for (i, &v) in x.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let want = ((v / scale).round_ties_even() + f32::from(zp)).clamp(0.0, 255.0) as u8;
                assert_eq!(a[i], want, "{v} / {scale} + {zp}");
            }
        }
    }
}

/// The epilogue's SiLU (the SIMD epilogues are held to it bit for bit in the epilogue tests)
/// within 4 ulp (relative 5e-7) of `y / (1 + exp(-y))` computed in f64, from -80 to 100; below, where the
/// true value is subnormal, within 1e-30 of 0. Fused (AVX2, AVX-512, NEON) and unfused (SSE).
#[test]
fn silu_is_accurate_fused_and_unfused() {
    let _team = crate::tests::team();
    let mut v: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-4).collect();
    v.extend([-1e30f32, 1e30, 0.0, -0.0, f32::MIN_POSITIVE]);
    let fused: Vec<f32> = v.iter().map(|&y| crate::kernels::silu::silu_one::<true>(y)).collect();
    let unfused: Vec<f32> = v.iter().map(|&y| crate::kernels::silu::silu_one::<false>(y)).collect();
    assert_ne!(fused, unfused, "the two differ somewhere: the test sees both");
    for a in [fused, unfused] {
        silu_is_accurate(&v, &a);
    }
}

fn silu_is_accurate(v: &[f32], a: &[f32]) {
    for (&y, &got) in v.iter().zip(a).filter(|(y, _)| **y < -80.0) {
        assert!(got.abs() < 1e-30, "silu({y}) = {got}");
    }
    for (&y, &got) in v.iter().zip(a).filter(|(y, _)| (-80.0..=100.0).contains(*y)) {
        let want = (f64::from(y) / (1.0 + (-f64::from(y)).exp())) as f32;
        let tol = 5e-7 * want.abs().max(1e-30);
        assert!((got - want).abs() <= tol, "silu({y}) = {got}, want {want}");
    }
}

/// The DFL softmax kernel: the SIMD compilation equal to the portable one bit for bit, the
/// pool's parallel blocks equal to one thread, and every value within 1e-6 (absolute) of the
/// softmax computed in f64, on logits like a detect head's (16 bins, spread over -30..30,
/// one block with a -1000 outlier that must come out 0).
#[test]
fn softmax_simd_equals_scalar_and_is_accurate() {
    let _team = crate::tests::team();
    use crate::kernels::softmax::{block, block_scalar, softmax};
    let mut rng = Rng::for_item(37, "softmax", 0);
    let (outer, n, inner) = (4, 16, 1003);
    let mut x: Vec<f32> = (0..outer * n * inner).map(|_| (rng.uniform() as f32 - 0.5) * 60.0).collect();
    x[5] = -1000.0;
    let (mut a, mut b) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    for ((xb, ab), bb) in x.chunks(n * inner).zip(a.chunks_mut(n * inner)).zip(b.chunks_mut(n * inner)) {
        block(xb, n, inner, ab);
        block_scalar(xb, n, inner, bb);
    }
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "SIMD and scalar differ");
    assert_eq!(a[5], 0.0);
    let _ = crate::kernels::threads::set_threads(2);
    let mut par = vec![0f32; x.len()];
    softmax(&x, n, inner, &mut par);
    assert!(par.iter().zip(&a).all(|(p, q)| p.to_bits() == q.to_bits()), "parallel blocks differ");
    for o in 0..outer {
        for i in 0..inner {
            let col: Vec<f64> = (0..n).map(|k| f64::from(x[(o * n + k) * inner + i])).collect();
            let m = col.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = col.iter().map(|v| (v - m).exp()).sum();
            for (k, v) in col.iter().enumerate() {
                let want = (v - m).exp() / sum;
                let got = f64::from(a[(o * n + k) * inner + i]);
                assert!((got - want).abs() < 1e-6, "block {o}, bin {k}, column {i}: {got} vs {want}");
            }
        }
    }
}

/// The one-pass DFL decode: every compilation and the parallel split equal to the portable
/// twin bit for bit, and within 2e-5 bins of the expected bin computed in f64 from the
/// softmax's definition, on head-like logits (4 sides x 16 bins, spread over -30..30; one
/// anchor with a -1000 outlier, one with all bins equal, whose expectation is 7.5), over
/// 2100 + 37 anchors (a partial pass and a partial parallel item).
#[test]
fn dfl_simd_equals_scalar_and_matches_the_definition() {
    let _team = crate::tests::team();
    use crate::kernels::dfl::{dfl, side, side_scalar};
    let mut rng = Rng::for_item(53, "dfl", 0);
    let (sides, bins, anchors) = (4, 16, 2137);
    let mut x: Vec<f32> = (0..sides * bins * anchors).map(|_| (rng.uniform() as f32 - 0.5) * 60.0).collect();
    x[3 * anchors + 11] = -1000.0;
    for i in 0..bins {
        x[(2 * bins + i) * anchors + 100] = 4.25;
    }
    let (mut a, mut b) = (vec![0f32; sides * anchors], vec![0f32; sides * anchors]);
    for ((xs, sa), sb) in x.chunks(bins * anchors).zip(a.chunks_mut(anchors)).zip(b.chunks_mut(anchors)) {
        side(xs, bins, anchors, 0, sa);
        side_scalar(xs, bins, anchors, 0, sb);
    }
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "SIMD and scalar differ");
    let _ = crate::kernels::threads::set_threads(2);
    let mut par = vec![0f32; a.len()];
    dfl(&x, bins, anchors, &mut par);
    assert!(par.iter().zip(&a).all(|(p, q)| p.to_bits() == q.to_bits()), "parallel items differ");
    assert_eq!(a[2 * anchors + 100], 7.5);
    for s in 0..sides {
        for i in 0..anchors {
            let col: Vec<f64> = (0..bins).map(|k| f64::from(x[(s * bins + k) * anchors + i])).collect();
            let m = col.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = col.iter().map(|v| (v - m).exp()).sum();
            let want: f64 = col.iter().enumerate().map(|(k, v)| k as f64 * (v - m).exp() / sum).sum();
            let got = f64::from(a[s * anchors + i]);
            assert!((got - want).abs() < 2e-5, "side {s}, anchor {i}: {got} vs {want}");
        }
    }
}

/// The fp32 convolution's in-place SiLU, on the widest vectors, gives its portable twin's bits.
#[test]
fn silu_in_place_equals_its_twin() {
    let mut v: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-4).collect();
    v.extend([-1e30f32, 1e30, 0.0, -0.0, f32::MIN_POSITIVE, -90.0, 90.0]);
    let (mut simd, mut twin) = (v.clone(), v);
    crate::kernels::silu::silu_in_place(&mut simd);
    crate::kernels::silu::silu_in_place_scalar(&mut twin);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&simd), bits(&twin));
}

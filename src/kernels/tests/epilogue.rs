//! The epilogue: scale, bias, SiLU and requantization, SIMD against the portable twin.

use super::*;
use crate::kernels::epilogue::{row, row_scalar, transpose_scalar, Affine, Dest, Lane};
use crate::kernels::quantize::Quantizer;

/// The float epilogue against the same formula written out: `acc * scale + bias`, then the
/// SiLU of `crate::kernels::silu` (its accuracy is checked below). The kernels' own thread pool
/// is switched on here, so the 40 output rows run as bands in parallel, each writing its rows
/// of every channel (the path of `--threads 2 --inflight 1`). The uint8 output, requantized
/// in the epilogue, must equal QuantizeLinear of the float one.
#[test]
fn float_epilogue_applies_scale_bias_and_silu() {
    let _team = crate::tests::team();
    let _ = crate::kernels::threads::set_threads(2);
    assert_eq!(crate::kernels::threads::threads(), 2);
    let mut rng = Rng::for_item(13, "epilogue", 0);
    let (h, w) = (40, 30);
    let s =
        ConvShape { in_c: 8, in_h: h, in_w: w, out_c: 6, kh: 3, kw: 3, stride: (1, 1), pad: [1; 4], dilation: (1, 1) };
    let x = pixels(&mut rng, 8 * h * w);
    let wq = weights(&mut rng, 6 * s.k(), 63);
    let scale: Vec<f32> = (0..6).map(|c| 1e-4 * (c + 1) as f32).collect();
    let bias: Vec<f32> = (0..6).map(|c| c as f32 * 0.25 - 0.6).collect();
    let acc = reference(&s, &x, 37, &wq);
    for isa in available() {
        let conv = QConv::new(s, &wq, isa);
        for silu in [false, true] {
            let got = conv.run_f32(&x, 37, Epilogue { scale: &scale, bias: &bias, silu });
            assert_eq!(got.len(), acc.len());
            for (i, (&g, &a)) in got.iter().zip(&acc).enumerate() {
                let c = i / (h * w);
                // Fused where this CPU's epilogues fuse (crate::kernels::madd).
                let fused = crate::kernels::madd::fused();
                let y = if fused { (a as f32).mul_add(scale[c], bias[c]) } else { a as f32 * scale[c] + bias[c] };
                let want = match (silu, fused) {
                    (false, _) => y,
                    (true, true) => crate::kernels::silu::silu_one::<true>(y),
                    (true, false) => crate::kernels::silu::silu_one::<false>(y),
                };
                assert_eq!(g.to_bits(), want.to_bits(), "{isa:?} silu={silu} at {i}");
            }
            // Requantized in the epilogue: QuantizeLinear of those floats, value for value.
            // A quantizer calibrated on these outputs by min/max.
            let (lo, hi) = got.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let q_scale = (hi - lo) / 255.0;
            let q_zp = (-lo / q_scale).round() as u8;
            let mut want = vec![0u8; got.len()];
            crate::kernels::quantize::quantize_scalar(&got, q_scale, q_zp, &mut want);
            let mut fused = vec![0u8; got.len()];
            conv.run_u8_into(&x, 37, Epilogue { scale: &scale, bias: &bias, silu }, (q_scale, q_zp), &mut fused);
            assert_eq!(fused, want, "{isa:?} silu={silu} requantized");
            assert!(want.iter().any(|&v| v < 5) && want.iter().any(|&v| v > 250), "the values span the uint8 range");
        }
    }
}

type RowFn = fn(&[[i32; OC_BLOCK]], &Affine, Dest);

/// Every SIMD epilogue of this CPU: `row` takes the widest; the narrower forms directly.
fn simd_rows() -> Vec<(&'static str, RowFn)> {
    let mut simd: Vec<(&str, RowFn)> = vec![("widest", row)];
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::x86_64::epilogue as x;
        fn avx2(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
            match dest {
                Dest::F32(out) => x::row_f32_avx2(acc, f, out),
                Dest::U8 { out, stride, q } => x::row_u8_avx2(acc, f, &q, out, stride),
            }
        }
        if x::avx2_available() {
            simd.push(("avx2", avx2));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use crate::kernels::aarch64::epilogue as a;
        fn neon(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
            match dest {
                Dest::F32(out) => a::row_f32(acc, f, out),
                Dest::U8 { out, stride, q } => a::row_u8(acc, f, &q, out, stride),
            }
        }
        simd.push(("neon", neon));
    }
    simd
}

/// SiLU on for odd pixel counts: the far quotients go through it both ways.
fn far_silu(n: usize) -> bool {
    n % 2 == 1
}

/// Accumulators, constants and quantizer of one test case on `n` pixels.
fn case_input(case: usize, n: usize, rng: &mut Rng) -> (Vec<[i32; OC_BLOCK]>, Affine, Quantizer) {
    let acc: Vec<[i32; OC_BLOCK]> =
        (0..n).map(|_| std::array::from_fn(|_| rng.below(1 << 24) as i32 - (1 << 23))).collect();
    match case {
        // Floats from -100 to 100.
        0 | 1 => (
            acc,
            Affine {
                scale: std::array::from_fn(|_| 1.2e-5),
                bias: std::array::from_fn(|_| rng.uniform() as f32 - 0.5),
                silu: case == 1,
            },
            Quantizer::new(0.4, 100),
        ),
        // `(m + 0.5) * 0.1`, rounded, over 0.1: within an ulp or so of a rounding tie,
        // where the reciprocal shortcut must give way to the division.
        2 => (
            acc.iter().map(|a| a.map(|v| 50 + 100 * (v % 120))).collect(),
            Affine { scale: [1e-3; OC_BLOCK], bias: [0.0; OC_BLOCK], silu: false },
            Quantizer::new(0.1, 128),
        ),
        3 => (
            acc,
            Affine { scale: std::array::from_fn(|_| rng.uniform() as f32 * 1e-3), bias: [0.5; OC_BLOCK], silu: true },
            Quantizer::new(1e-39, 0),
        ),
        // Quotients far past the byte range, either side of 2^30 and 2^31: they saturate.
        _ => {
            let far = [3e12, -3e12, 6e8, -6e8, 1.2e9, -1.2e9, 2e5, -2e5];
            (
                acc,
                Affine { scale: [1.0; OC_BLOCK], bias: std::array::from_fn(|o| far[o % 8]), silu: far_silu(n) },
                Quantizer::new(0.5, 7),
            )
        }
    }
}

/// The transposes from pixel-major tiles to channel rows, floats and bytes, on `n` pixels.
fn check_transposes(n: usize, rng: &mut Rng) {
    fn check<T: Lane + PartialEq + std::fmt::Debug>(t: &[T], n: usize, channels: usize) {
        let (mut simd, mut twin) = (vec![vec![T::default(); n]; channels], vec![vec![T::default(); n]; channels]);
        T::transpose(t, &mut simd.iter_mut().map(|r| r.as_mut_slice()).collect::<Vec<_>>());
        transpose_scalar(t, &mut twin.iter_mut().map(|r| r.as_mut_slice()).collect::<Vec<_>>());
        assert_eq!(simd, twin, "{n} pixels, {channels} channels");
        assert_eq!(twin[channels - 1][n - 1], t[OC_BLOCK * (n - 1) + channels - 1]);
    }
    let t: Vec<f32> = (0..n * OC_BLOCK).map(|_| rng.uniform() as f32).collect();
    let bytes: Vec<u8> = (0..n * OC_BLOCK).map(|_| rng.below(256) as u8).collect();
    for channels in [1usize, 5, 8, 9, 16] {
        check(&t, n, channels);
        check(&bytes, n, channels);
    }
}

/// The epilogue on the widest vectors of this CPU against its portable twin, bit for bit:
/// floats and requantized bytes, with and without SiLU, for accumulators whose floats span
/// SiLU's whole range (-100 to 100, past its -87 cut-off), for quotients all within an ulp
/// or so of a rounding tie (`(m + 0.5) * 0.1` over 0.1), and a
/// subnormal quantizer scale (no reciprocal). Also the transposes from pixel-major tiles to
/// channel rows, for row lengths around the 8- and 16-pixel steps and partial channel blocks.
#[test]
fn epilogue_simd_equals_scalar() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(23, "epilogue-simd", 0);
    let simd = simd_rows();
    let mut ties = 0;
    for n in [1usize, 7, 8, 9, 15, 16, 17, 40, 83] {
        for case in 0..5 {
            let (acc, affine, q) = case_input(case, n, &mut rng);
            let (mut b, mut qb) = (vec![[0f32; OC_BLOCK]; n], vec![[0u8; OC_BLOCK]; n]);
            row_scalar(&acc, &affine, Dest::F32(&mut b));
            row_scalar(&acc, &affine, Dest::U8 { out: qb.as_flattened_mut(), stride: OC_BLOCK, q });
            let bits = |v: &[[f32; OC_BLOCK]]| v.as_flattened().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (name, simd) in &simd {
                let (mut a, mut qa) = (vec![[0f32; OC_BLOCK]; n], vec![[0u8; OC_BLOCK]; n]);
                simd(&acc, &affine, Dest::F32(&mut a));
                simd(&acc, &affine, Dest::U8 { out: qa.as_flattened_mut(), stride: OC_BLOCK, q });
                assert_eq!(bits(&a), bits(&b), "{name} floats, case {case}, {n} pixels");
                assert_eq!(qa, qb, "{name} bytes, case {case}, {n} pixels");
                // Straight into the pixels of a channels-last image of 40 channels.
                let stride = 40;
                let mut image = vec![0xAAu8; (n - 1) * stride + OC_BLOCK + 5];
                simd(&acc, &affine, Dest::U8 { out: &mut image, stride, q });
                for (j, px) in image.chunks(stride).enumerate() {
                    assert_eq!(px[..OC_BLOCK], qb[j], "{name} pixel {j} of the image");
                    assert!(px[OC_BLOCK..].iter().all(|&v| v == 0xAA), "{name} wrote past pixel {j}'s 16 bytes");
                }
            }
            // In two steps (floats, then quantized, for blocks with several uint8 outputs):
            // the same bytes as the fused path, on every width.
            let mut two_step = vec![0u8; n * OC_BLOCK];
            crate::kernels::epilogue::quantize_pixels_scalar(&b, &q, &mut two_step, OC_BLOCK);
            assert_eq!(two_step, qb.as_flattened(), "two steps, case {case}");
            let mut widest = vec![0u8; n * OC_BLOCK];
            crate::kernels::epilogue::quantize_pixels(&b, &q, &mut widest, OC_BLOCK);
            assert_eq!(widest, two_step, "widest two steps, case {case}");
            #[cfg(target_arch = "x86_64")]
            if crate::kernels::x86_64::epilogue::avx2_available() {
                crate::kernels::x86_64::epilogue::quantize_avx2(&b, &q, &mut widest, OC_BLOCK);
                assert_eq!(widest, two_step, "avx2 two steps, case {case}");
            }
            if case == 2 {
                ties += b.len() * OC_BLOCK;
            }
        }
        check_transposes(n, &mut rng);
    }
    assert!(ties > 1000, "{ties} ties");
}

/// The SSE4.1 epilogue of CPUs without FMA against the unfused twin, bit for bit, on the
/// cases of [`epilogue_simd_equals_scalar`] (run natively wherever the CPU has SSE4.1, not
/// only where it is the widest).
#[cfg(target_arch = "x86_64")]
#[test]
fn sse_epilogue_equals_its_unfused_twin() {
    use crate::kernels::generic::epilogue::row_with;
    use crate::kernels::x86_64::epilogue_sse as sse;
    assert!(sse::available(), "every x86_64 CPU qdet targets has SSE4.1");
    let mut rng = Rng::for_item(29, "epilogue-sse", 0);
    for n in [1usize, 3, 16, 17, 83] {
        for case in 0..5 {
            let (acc, affine, q) = case_input(case, n, &mut rng);
            let (mut b, mut qb) = (vec![[0f32; OC_BLOCK]; n], vec![[0u8; OC_BLOCK]; n]);
            row_with::<false>(&acc, &affine, Dest::F32(&mut b));
            row_with::<false>(&acc, &affine, Dest::U8 { out: qb.as_flattened_mut(), stride: OC_BLOCK, q });
            let (mut a, mut qa) = (vec![[0f32; OC_BLOCK]; n], vec![[0u8; OC_BLOCK]; n]);
            sse::row(&acc, &affine, Dest::F32(&mut a));
            sse::row(&acc, &affine, Dest::U8 { out: qa.as_flattened_mut(), stride: OC_BLOCK, q });
            let bits = |v: &[[f32; OC_BLOCK]]| v.as_flattened().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "floats, case {case}, {n} pixels");
            assert_eq!(qa, qb, "bytes, case {case}, {n} pixels");
            let mut image = vec![0xAAu8; (n - 1) * 40 + OC_BLOCK + 5];
            sse::quantize(&b, &q, &mut image, 40);
            for (j, px) in image.chunks(40).enumerate() {
                assert_eq!(px[..OC_BLOCK], qb[j], "two steps, pixel {j}, case {case}");
                assert!(px[OC_BLOCK..].iter().all(|&v| v == 0xAA), "wrote past pixel {j}'s 16 bytes");
            }
        }
    }
}

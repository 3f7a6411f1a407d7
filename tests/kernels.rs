//! qdet's integer convolution kernels: every SIMD micro-kernel against its scalar twin on the
//! same packed operands, and every whole convolution against a naive direct convolution in
//! i64, on random shapes (odd channel counts, 1x1 and 3x3, stride 1 and 2, padding, tiny and
//! larger images). Integers must be identical, not close.

use qdet::dataset::rng::Rng;
use qdet::kernels::conv::{ConvShape, Epilogue, QConv};
use qdet::kernels::{pack, tile, Isa, GROUP_BYTES, OC_BLOCK, PX, WGROUP_BYTES};

fn available() -> Vec<Isa> {
    let isas: Vec<Isa> = Isa::all().into_iter().filter(|i| i.available()).collect();
    eprintln!("kernels on this CPU: {isas:?}");
    isas
}

fn weights(rng: &mut Rng, n: usize, max_abs: i32) -> Vec<i8> {
    (0..n).map(|_| (rng.below(2 * max_abs as u64 + 1) as i32 - max_abs) as i8).collect()
}

fn pixels(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.below(256) as u8).collect()
}

/// Direct convolution, zero point subtracted from every tap (padding reads `zp`: real 0).
fn reference(s: &ConvShape, x: &[u8], zp: u8, w: &[i8]) -> Vec<i32> {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut out = vec![0i32; s.out_c * oh * ow];
    for c in 0..s.out_c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i64;
                for ci in 0..s.in_c {
                    for ky in 0..s.kh {
                        for kx in 0..s.kw {
                            let iy = (oy * s.stride.0 + ky * s.dilation.0) as isize - s.pad[0] as isize;
                            let ix = (ox * s.stride.1 + kx * s.dilation.1) as isize - s.pad[1] as isize;
                            let inside = iy >= 0 && ix >= 0 && (iy as usize) < s.in_h && (ix as usize) < s.in_w;
                            let v = if inside { x[(ci * s.in_h + iy as usize) * s.in_w + ix as usize] } else { zp };
                            let wv = w[((c * s.in_c + ci) * s.kh + ky) * s.kw + kx];
                            acc += (i64::from(v) - i64::from(zp)) * i64::from(wv);
                        }
                    }
                }
                out[(c * oh + oy) * ow + ox] = i32::try_from(acc).unwrap();
            }
        }
    }
    out
}

/// Random operands in the layouts of `qdet::kernels::pack`: pixel groups of 4 u8 or 2 u16
/// (below 256), weight groups of 16 x (4 i8 or 2 i16) in `[-max_abs, max_abs]`.
fn layout_bytes(rng: &mut Rng, isa: Isa, n: usize, weights: bool, max_abs: i32) -> Vec<u8> {
    let vb = isa.value_bytes();
    let mut out = vec![0u8; n];
    for v in out.chunks_exact_mut(vb) {
        let value: i32 =
            if weights { rng.below(2 * max_abs as u64 + 1) as i32 - max_abs } else { rng.below(256) as i32 };
        if vb == 2 {
            v.copy_from_slice(&(value as i16).to_le_bytes());
        } else {
            v[0] = value as u8;
        }
    }
    out
}

#[test]
fn simd_tiles_equal_their_scalar_twins() {
    let mut rng = Rng::for_item(7, "tiles", 0);
    for isa in available() {
        let max_abs = [128, 127, 63].into_iter().find(|&m| isa.exact_for(m)).unwrap();
        for groups in [1usize, 2, 3, 7, 64, 145] {
            for n_taps in [1usize, 2, 9] {
                for n in 1..=PX {
                    // Pixels `step` apart (stride 1 or 2), taps anywhere after them.
                    let step = groups * GROUP_BYTES * (1 + rng.below(2) as usize);
                    let span = (n - 1) * step + groups * GROUP_BYTES;
                    let taps: Vec<usize> = (0..n_taps).map(|t| t * span + 4 * rng.below(8) as usize).collect();
                    let base = 4 * rng.below(4) as usize;
                    let len = base + taps.iter().max().unwrap() + span;
                    let mut x = layout_bytes(&mut rng, isa, len, false, 0);
                    let mut w = layout_bytes(&mut rng, isa, n_taps * groups * WGROUP_BYTES, true, max_abs);
                    // The extremes, where a 16-bit intermediate would saturate.
                    let vb = isa.value_bytes();
                    x[base..base + GROUP_BYTES].iter_mut().step_by(vb).for_each(|v| *v = 255);
                    let wmin = (-max_abs.min(128) as i16).to_le_bytes();
                    w[..GROUP_BYTES].chunks_exact_mut(vb).for_each(|v| v.copy_from_slice(&wmin[..vb]));
                    let init: [i32; OC_BLOCK] = std::array::from_fn(|o| o as i32 * 1000 - 7);
                    // Whatever the tiles held before is overwritten.
                    let (mut simd, mut twin) = (vec![[1; OC_BLOCK]; n], vec![[-1; OC_BLOCK]; n]);
                    tile(isa, &x, base, step, &taps, groups, &w, &init, &mut simd);
                    tile(isa.twin(), &x, base, step, &taps, groups, &w, &init, &mut twin);
                    assert_eq!(simd, twin, "{isa:?}, {groups} groups, {n_taps} taps, {n} pixels");
                }
            }
        }
    }
}

#[test]
fn convolutions_equal_a_direct_convolution() {
    let mut rng = Rng::for_item(11, "conv", 0);
    let isas = available();
    let mut cases = 0;
    for &(in_c, out_c) in &[(1usize, 1usize), (3, 16), (5, 7), (16, 33), (17, 4), (32, 64)] {
        for &(kh, kw) in &[(1usize, 1usize), (3, 3), (1, 3)] {
            for stride in [1usize, 2] {
                for &pad in &[[0usize; 4], [1, 1, 1, 1], [0, 1, 2, 0]] {
                    for &(in_h, in_w) in &[(1usize, 1usize), (2, 3), (7, 5), (20, 20), (33, 17)] {
                        if in_h + pad[0] + pad[2] < kh || in_w + pad[1] + pad[3] < kw {
                            continue;
                        }
                        let s = ConvShape {
                            in_c,
                            in_h,
                            in_w,
                            out_c,
                            kh,
                            kw,
                            stride: (stride, stride),
                            pad,
                            dilation: (1, 1),
                        };
                        let x = pixels(&mut rng, in_c * in_h * in_w);
                        let zp = rng.below(256) as u8;
                        for &isa in &isas {
                            let max_abs = if isa.exact_for(127) { 127 } else { 63 };
                            let w = weights(&mut rng, out_c * s.k(), max_abs);
                            let want = reference(&s, &x, zp, &w);
                            let got = QConv::new(s, &w, isa).run_i32(&x, zp);
                            assert_eq!(got, want, "{isa:?} {s:?} zp {zp}");
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 1000, "{cases} cases");
}

/// The float epilogue against the same formula written out: `acc * scale + bias`, then the
/// SiLU of `qdet::kernels::silu` (its accuracy is checked below). The kernels' own thread pool
/// is switched on here, so the 40 output rows run as bands in parallel, each writing its rows
/// of every channel (the path of `--threads 2 --inflight 1`). The uint8 output, requantized
/// in the epilogue, must equal QuantizeLinear of the float one.
#[test]
fn float_epilogue_applies_scale_bias_and_silu() {
    qdet::kernels::threads::set_threads(2);
    assert_eq!(qdet::kernels::threads::threads(), 2);
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
                let y = a as f32 * scale[c] + bias[c];
                let want = if silu {
                    let mut v = [y];
                    qdet::kernels::silu::silu_scalar(&mut v);
                    v[0]
                } else {
                    y
                };
                assert_eq!(g.to_bits(), want.to_bits(), "{isa:?} silu={silu} at {i}");
            }
            // Requantized in the epilogue: QuantizeLinear of those floats, value for value.
            // A quantizer calibrated on these outputs by min/max.
            let (lo, hi) = got.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let q_scale = (hi - lo) / 255.0;
            let q_zp = (-lo / q_scale).round() as u8;
            let mut want = vec![0u8; got.len()];
            qdet::kernels::quantize::quantize_scalar(&got, q_scale, q_zp, &mut want);
            let mut fused = vec![0u8; got.len()];
            conv.run_u8_into(&x, 37, Epilogue { scale: &scale, bias: &bias, silu }, (q_scale, q_zp), &mut fused);
            assert_eq!(fused, want, "{isa:?} silu={silu} requantized");
            assert!(want.iter().any(|&v| v < 5) && want.iter().any(|&v| v > 250), "the values span the uint8 range");
        }
    }
}

/// QuantizeLinear: the SIMD compilations against the portable one, and all against the ONNX
/// formula with a true division, over scales from 1e-4 to 10, values spread over the whole
/// uint8 range and beyond, values a few ulp around every rounding tie (where the reciprocal
/// shortcut must fall back to dividing), and non-finite ones.
#[test]
fn quantize_simd_equals_scalar() {
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
            qdet::kernels::quantize::quantize(&x, scale, zp, &mut a);
            qdet::kernels::quantize::quantize_scalar(&x, scale, zp, &mut b);
            assert_eq!(a, b, "scale {scale}, zero point {zp}");
            for (i, &v) in x.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let want = ((v / scale).round_ties_even() + f32::from(zp)).clamp(0.0, 255.0) as u8;
                assert_eq!(a[i], want, "{v} / {scale} + {zp}");
            }
        }
    }
}

/// The vectorized SiLU: AVX2 compilation equal to the portable one, and both within 4 ulp
/// (relative 5e-7) of `y / (1 + exp(-y))` computed in f64, from -80 to 100; below, where the
/// true value is subnormal, within 1e-30 of 0.
#[test]
fn silu_simd_equals_scalar_and_is_accurate() {
    let mut v: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-4).collect();
    v.extend([-1e30f32, 1e30, 0.0, -0.0, f32::MIN_POSITIVE]);
    let (mut a, mut b) = (v.clone(), v.clone());
    qdet::kernels::silu::silu(&mut a);
    qdet::kernels::silu::silu_scalar(&mut b);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    for (&y, &got) in v.iter().zip(&a).filter(|(y, _)| **y < -80.0) {
        assert!(got.abs() < 1e-30, "silu({y}) = {got}");
    }
    for (&y, &got) in v.iter().zip(&a).filter(|(y, _)| (-80.0..=100.0).contains(*y)) {
        let want = (f64::from(y) / (1.0 + (-f64::from(y)).exp())) as f32;
        let tol = 5e-7 * want.abs().max(1e-30);
        assert!((got - want).abs() <= tol, "silu({y}) = {got}, want {want}");
    }
}

/// The SIMD interleaves of the image layout (SSE2, NEON `ST4`) against their scalar twins.
#[test]
fn simd_interleave_equals_scalar() {
    let mut rng = Rng::for_item(19, "interleave", 0);
    for _ in 0..100 {
        let rows: [[u8; 16]; 4] = std::array::from_fn(|_| std::array::from_fn(|_| rng.below(256) as u8));
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        pack::interleave4([&rows[0], &rows[1], &rows[2], &rows[3]], &mut a);
        pack::interleave4_scalar([&rows[0], &rows[1], &rows[2], &rows[3]], &mut b);
        assert_eq!(a, b);
        pack::interleave2([&rows[0], &rows[1]], &mut a);
        pack::interleave2_scalar([&rows[0], &rows[1]], &mut b);
        assert_eq!(a, b);
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
    use qdet::kernels::epilogue::{row, row_scalar, transpose_scalar, Affine, Dest, Lane};
    use qdet::kernels::quantize::Quantizer;
    let mut rng = Rng::for_item(23, "epilogue-simd", 0);
    type Row = fn(&[[i32; OC_BLOCK]], &Affine, Dest);
    // `row` takes the widest; the narrower SIMD forms are called directly.
    let mut simd: Vec<(&str, Row)> = vec![("widest", row)];
    #[cfg(target_arch = "x86_64")]
    {
        use qdet::kernels::x86_64::epilogue as x;
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
        use qdet::kernels::aarch64::epilogue as a;
        fn neon(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
            match dest {
                Dest::F32(out) => a::row_f32(acc, f, out),
                Dest::U8 { out, stride, q } => a::row_u8(acc, f, &q, out, stride),
            }
        }
        simd.push(("neon", neon));
    }
    let mut ties = 0;
    for n in [1usize, 7, 8, 9, 15, 16, 17, 40, 83] {
        for case in 0..4 {
            let acc: Vec<[i32; OC_BLOCK]> =
                (0..n).map(|_| std::array::from_fn(|_| rng.below(1 << 24) as i32 - (1 << 23))).collect();
            let (affine, q) = match case {
                // Floats from -100 to 100.
                0 | 1 => (
                    Affine {
                        scale: std::array::from_fn(|_| 1.2e-5),
                        bias: std::array::from_fn(|_| rng.uniform() as f32 - 0.5),
                        silu: case == 1,
                    },
                    Quantizer::new(0.4, 100),
                ),
                // `(m + 0.5) * 0.1`, rounded, over 0.1: within an ulp or so of a rounding tie,
                // where the reciprocal shortcut must give way to the division.
                2 => (Affine { scale: [1e-3; OC_BLOCK], bias: [0.0; OC_BLOCK], silu: false }, Quantizer::new(0.1, 128)),
                _ => (
                    Affine {
                        scale: std::array::from_fn(|_| rng.uniform() as f32 * 1e-3),
                        bias: [0.5; OC_BLOCK],
                        silu: true,
                    },
                    Quantizer::new(1e-39, 0),
                ),
            };
            let acc: Vec<[i32; OC_BLOCK]> =
                if case == 2 { acc.iter().map(|a| a.map(|v| 50 + 100 * (v % 120))).collect() } else { acc };
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
            qdet::kernels::epilogue::quantize_pixels_scalar(&b, &q, &mut two_step, OC_BLOCK);
            assert_eq!(two_step, qb.as_flattened(), "two steps, case {case}");
            let mut widest = vec![0u8; n * OC_BLOCK];
            qdet::kernels::epilogue::quantize_pixels(&b, &q, &mut widest, OC_BLOCK);
            assert_eq!(widest, two_step, "widest two steps, case {case}");
            #[cfg(target_arch = "x86_64")]
            if qdet::kernels::x86_64::epilogue::avx2_available() {
                qdet::kernels::x86_64::epilogue::quantize_avx2(&b, &q, &mut widest, OC_BLOCK);
                assert_eq!(widest, two_step, "avx2 two steps, case {case}");
            }
            if case == 2 {
                ties += b.len() * OC_BLOCK;
            }
        }
        let t: Vec<f32> = (0..n * OC_BLOCK).map(|_| rng.uniform() as f32).collect();
        let bytes: Vec<u8> = (0..n * OC_BLOCK).map(|_| rng.below(256) as u8).collect();
        for channels in [1usize, 5, 8, 9, 16] {
            fn check<T: Lane + PartialEq + std::fmt::Debug>(t: &[T], n: usize, channels: usize) {
                let (mut simd, mut twin) =
                    (vec![vec![T::default(); n]; channels], vec![vec![T::default(); n]; channels]);
                T::transpose(t, &mut simd.iter_mut().map(|r| r.as_mut_slice()).collect::<Vec<_>>());
                transpose_scalar(t, &mut twin.iter_mut().map(|r| r.as_mut_slice()).collect::<Vec<_>>());
                assert_eq!(simd, twin, "{n} pixels, {channels} channels");
                assert_eq!(twin[channels - 1][n - 1], t[OC_BLOCK * (n - 1) + channels - 1]);
            }
            check(&t, n, channels);
            check(&bytes, n, channels);
        }
    }
    assert!(ties > 1000, "{ties} ties");
}

/// A requantizing conv writing the next conv's padded channels-last image directly must give
/// that conv the same input as writing `[C][H][W]` uint8 and packing it: the next conv's
/// outputs are compared bit for bit, with 20 channels (a second, partial block of 16) and
/// asymmetric padding.
#[test]
fn packed_handover_equals_repacking() {
    use qdet::kernels::conv::{Input, Output};
    let mut rng = Rng::for_item(29, "handover", 0);
    let sa = ConvShape {
        in_c: 8,
        in_h: 23,
        in_w: 19,
        out_c: 20,
        kh: 3,
        kw: 3,
        stride: (1, 1),
        pad: [1; 4],
        dilation: (1, 1),
    };
    let sb = ConvShape {
        in_c: 20,
        in_h: 23,
        in_w: 19,
        out_c: 7,
        kh: 3,
        kw: 3,
        stride: (2, 2),
        pad: [1, 0, 1, 2],
        dilation: (1, 1),
    };
    let x = pixels(&mut rng, 8 * 23 * 19);
    let scale: Vec<f32> = (0..20).map(|c| 2e-4 * (c + 1) as f32).collect();
    let bias: Vec<f32> = (0..20).map(|c| c as f32 * 0.1 - 1.0).collect();
    let ea = Epilogue { scale: &scale, bias: &bias, silu: true };
    let eb = Epilogue { scale: &scale[..7], bias: &bias[..7], silu: false };
    let q = (0.02f32, 17u8);
    for isa in available() {
        let max_abs = if isa.exact_for(127) { 127 } else { 63 };
        let a = QConv::new(sa, &weights(&mut rng, 20 * sa.k(), max_abs), isa);
        let b = QConv::new(sb, &weights(&mut rng, 7 * sb.k(), max_abs), isa);
        let mut plain = vec![0u8; 20 * 23 * 19];
        a.run(Input::Nchw(&x), 3, ea, Output::U8(&mut plain, q));
        let mut packed = vec![0u8; b.layout().len()];
        a.run(Input::Nchw(&x), 3, ea, Output::Packed(&mut packed, q, b.layout()));
        let want = b.run_f32(&plain, q.1, eb);
        let mut got = vec![0f32; want.len()];
        b.run(Input::Packed(&packed), q.1, eb, Output::F32(&mut got));
        assert!(plain.iter().any(|&v| v != q.1), "the requantized values vary");
        assert!(want.iter().zip(&got).all(|(w, g)| w.to_bits() == g.to_bits()), "{isa:?}");
    }
}

/// Several outputs from one pass (a conv followed by a channel Split, one slice also
/// quantized for the next conv) must equal slicing and quantizing the single float output:
/// 40 channels (a partial third block), a float target over channels 16..40, a uint8 one
/// over 0..16 and a packed one over 16..40 read by a conv with 24 input channels; on two
/// threads, so the targets are split into bands.
#[test]
fn split_targets_equal_slicing_one_output() {
    use qdet::kernels::conv::{Input, Output, Target};
    qdet::kernels::threads::set_threads(2);
    let mut rng = Rng::for_item(31, "split", 0);
    let (h, w) = (21, 18);
    let sa = ConvShape {
        in_c: 12,
        in_h: h,
        in_w: w,
        out_c: 40,
        kh: 1,
        kw: 1,
        stride: (1, 1),
        pad: [0; 4],
        dilation: (1, 1),
    };
    let sb =
        ConvShape { in_c: 24, in_h: h, in_w: w, out_c: 5, kh: 3, kw: 3, stride: (1, 1), pad: [1; 4], dilation: (1, 1) };
    let x = pixels(&mut rng, 12 * h * w);
    let scale: Vec<f32> = (0..40).map(|c| 1e-3 * (c + 1) as f32).collect();
    let bias: Vec<f32> = (0..40).map(|c| c as f32 * 0.05 - 1.0).collect();
    let e = Epilogue { scale: &scale, bias: &bias, silu: true };
    let eb = Epilogue { scale: &scale[..5], bias: &bias[..5], silu: false };
    let q = (0.03f32, 11u8);
    let plane = h * w;
    for isa in available() {
        let max_abs = if isa.exact_for(127) { 127 } else { 63 };
        let a = QConv::new(sa, &weights(&mut rng, 40 * sa.k(), max_abs), isa);
        let b = QConv::new(sb, &weights(&mut rng, 5 * sb.k(), max_abs), isa);
        let whole = a.run_f32(&x, 9, e);
        let mut quantized = vec![0u8; whole.len()];
        qdet::kernels::quantize::quantize_scalar(&whole, q.0, q.1, &mut quantized);
        let (mut tail, mut head, mut packed) =
            (vec![0f32; 24 * plane], vec![0u8; 16 * plane], vec![0u8; b.layout().len()]);
        let targets = vec![
            Target { first: 16, out: Output::F32(&mut tail) },
            Target { first: 0, out: Output::U8(&mut head, q) },
            Target { first: 16, out: Output::Packed(&mut packed, q, b.layout()) },
        ];
        a.run_targets(Input::Nchw(&x), 9, e, None, targets);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&tail), bits(&whole[16 * plane..]), "{isa:?} float slice");
        assert_eq!(head, quantized[..16 * plane], "{isa:?} uint8 slice");
        let want = b.run_f32(&quantized[16 * plane..], q.1, eb);
        let mut got = vec![0f32; want.len()];
        b.run(Input::Packed(&packed), q.1, eb, Output::F32(&mut got));
        assert_eq!(bits(&got), bits(&want), "{isa:?} packed slice read by the next conv");
    }
}

/// The DFL softmax kernel: the SIMD compilation equal to the portable one bit for bit, the
/// pool's parallel blocks equal to one thread, and every value within 1e-6 (absolute) of the
/// softmax computed in f64, on logits like a detect head's (16 bins, spread over -30..30,
/// one block with a -1000 outlier that must come out 0).
#[test]
fn softmax_simd_equals_scalar_and_is_accurate() {
    use qdet::kernels::softmax::{block, block_scalar, softmax};
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
    qdet::kernels::threads::set_threads(2);
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
    use qdet::kernels::dfl::{dfl, side, side_scalar};
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
    qdet::kernels::threads::set_threads(2);
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

/// A residual added in the epilogue (a bottleneck's shortcut Add) equals adding it to the
/// float output afterwards, bit for bit, and its quantized outputs equal quantizing that
/// sum: 40 channels (a partial block), float and packed targets, on two threads.
#[test]
fn residual_epilogue_equals_adding_afterwards() {
    use qdet::kernels::conv::{Input, Output, Target};
    qdet::kernels::threads::set_threads(2);
    let mut rng = Rng::for_item(41, "residual", 0);
    let (h, w) = (13, 22);
    let sa = ConvShape {
        in_c: 20,
        in_h: h,
        in_w: w,
        out_c: 40,
        kh: 3,
        kw: 3,
        stride: (1, 1),
        pad: [1; 4],
        dilation: (1, 1),
    };
    let sb =
        ConvShape { in_c: 40, in_h: h, in_w: w, out_c: 3, kh: 1, kw: 1, stride: (1, 1), pad: [0; 4], dilation: (1, 1) };
    let x = pixels(&mut rng, 20 * h * w);
    let scale: Vec<f32> = (0..40).map(|c| 3e-4 * (c + 1) as f32).collect();
    let bias: Vec<f32> = (0..40).map(|c| c as f32 * 0.02 - 0.4).collect();
    let e = Epilogue { scale: &scale, bias: &bias, silu: true };
    let eb = Epilogue { scale: &scale[..3], bias: &bias[..3], silu: false };
    let residual: Vec<f32> = (0..40 * h * w).map(|_| (rng.uniform() as f32 - 0.5) * 6.0).collect();
    let q = (0.05f32, 120u8);
    for isa in available() {
        let max_abs = if isa.exact_for(127) { 127 } else { 63 };
        let a = QConv::new(sa, &weights(&mut rng, 40 * sa.k(), max_abs), isa);
        let b = QConv::new(sb, &weights(&mut rng, 3 * sb.k(), max_abs), isa);
        let want: Vec<f32> = a.run_f32(&x, 5, e).iter().zip(&residual).map(|(y, r)| y + r).collect();
        let mut want_q = vec![0u8; want.len()];
        qdet::kernels::quantize::quantize_scalar(&want, q.0, q.1, &mut want_q);
        let (mut got, mut packed) = (vec![0f32; want.len()], vec![0u8; b.layout().len()]);
        let targets = vec![
            Target { first: 0, out: Output::F32(&mut got) },
            Target { first: 0, out: Output::Packed(&mut packed, q, b.layout()) },
        ];
        a.run_targets(Input::Nchw(&x), 5, e, Some(&residual), targets);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{isa:?} floats");
        let mut next = vec![0f32; 3 * h * w];
        b.run(Input::Packed(&packed), q.1, eb, Output::F32(&mut next));
        assert_eq!(bits(&next), bits(&b.run_f32(&want_q, q.1, eb)), "{isa:?} packed sum read by the next conv");
    }
}

/// Output tensors are allocated without zeroing: every byte must be written. Memory just
/// freed full of 0xAB is what the allocator hands out next; the outputs (floats, uint8 and a
/// packed image with padding and a partial channel group, 2 threads) must still equal
/// writing into zeroed buffers.
#[test]
fn run_to_tensors_writes_every_byte() {
    use qdet::kernels::conv::{Input, OutKind, OutSpec, Output, Target};
    qdet::kernels::threads::set_threads(2);
    let mut rng = Rng::for_item(43, "uninit", 0);
    let (h, w) = (17, 23);
    let sa =
        ConvShape { in_c: 6, in_h: h, in_w: w, out_c: 37, kh: 3, kw: 3, stride: (1, 1), pad: [1; 4], dilation: (1, 1) };
    let sb = ConvShape {
        in_c: 21,
        in_h: h,
        in_w: w,
        out_c: 4,
        kh: 3,
        kw: 3,
        stride: (1, 1),
        pad: [1, 2, 0, 1],
        dilation: (1, 1),
    };
    let x = pixels(&mut rng, 6 * h * w);
    let scale: Vec<f32> = (0..37).map(|c| 4e-4 * (c + 1) as f32).collect();
    let bias: Vec<f32> = (0..37).map(|c| c as f32 * 0.03 - 0.5).collect();
    let e = Epilogue { scale: &scale, bias: &bias, silu: true };
    let q = (0.04f32, 7u8);
    for isa in available() {
        let max_abs = if isa.exact_for(127) { 127 } else { 63 };
        let a = QConv::new(sa, &weights(&mut rng, 37 * sa.k(), max_abs), isa);
        let layout = QConv::new(sb, &weights(&mut rng, 4 * sb.k(), max_abs), isa).layout();
        let plane = h * w;
        let specs = [
            OutSpec { first: 0, channels: 37, kind: OutKind::F32 },
            OutSpec { first: 16, channels: 21, kind: OutKind::U8(q) },
            OutSpec { first: 16, channels: 21, kind: OutKind::Packed(q, layout) },
        ];
        let (mut f, mut u, mut p) = (vec![0f32; 37 * plane], vec![0u8; 21 * plane], vec![0u8; layout.len()]);
        let targets = vec![
            Target { first: 0, out: Output::F32(&mut f) },
            Target { first: 16, out: Output::U8(&mut u, q) },
            Target { first: 16, out: Output::Packed(&mut p, q, layout) },
        ];
        a.run_targets(Input::Nchw(&x), 3, e, None, targets);
        for _ in 0..3 {
            drop(std::hint::black_box(vec![0xABu8; 4 * 37 * plane + layout.len() + 4096]));
            let got = a.run_to_tensors(Input::Nchw(&x), 3, e, None, &specs).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap()), bits(&f), "{isa:?} floats");
            assert_eq!(got[1].try_as_plain_ram().unwrap().as_slice::<u8>().unwrap(), &u[..], "{isa:?} uint8");
            assert_eq!(got[2].try_as_plain_ram().unwrap().as_slice::<u8>().unwrap(), &p[..], "{isa:?} packed");
        }
    }
}

/// The uint8 pool and upsampling split over groups of channels on two threads equal one
/// call over all channels (odd channel counts: a partial last group).
#[test]
fn parallel_pool_and_upsampling_equal_one_call() {
    use qdet::kernels::maxpool::{
        max_pool_u8, max_pool_u8_parallel, upsample_nearest_u8, upsample_nearest_u8_parallel,
    };
    qdet::kernels::threads::set_threads(2);
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
    use qdet::kernels::maxpool::max_pool_u8;
    let mut rng = Rng::for_item(47, "maxpool", 0);
    for ((c, h, w), (kh, kw), pad) in
        [((3, 9, 11), (5, 5), [2, 2, 2, 2]), ((2, 6, 7), (3, 2), [1, 0, 2, 1]), ((1, 20, 20), (5, 5), [2; 4])]
    {
        let xf: Vec<f32> = (0..c * h * w).map(|_| (rng.uniform() as f32 - 0.3) * 10.0).collect();
        let mut x = vec![0u8; xf.len()];
        qdet::kernels::quantize::quantize_scalar(&xf, 0.05, 60, &mut x);
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
        qdet::kernels::quantize::quantize_scalar(&pooled_f, 0.05, 60, &mut want);
        assert_eq!(got, want, "pooling the quantized tensor equals quantizing the pooled floats");
    }
}

/// Nearest upsampling of uint8 planes against ONNX Resize's definition for nearest,
/// asymmetric coordinates and floor: `out[y][x] = in[floor(y / sh)][floor(x / sw)]`.
#[test]
fn upsample_nearest_u8_equals_the_definition() {
    use qdet::kernels::maxpool::upsample_nearest_u8;
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

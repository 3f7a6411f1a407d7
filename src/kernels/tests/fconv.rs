//! The fp32 convolution: every SIMD micro-kernel against its scalar twin, bit for bit, and
//! whole convolutions (SiLU, a residual, two targets) against a direct convolution in f64.

use super::*;
use crate::kernels::fconv::{ftile, FConv, FIsa, FTarget, Part};

fn fisas() -> Vec<FIsa> {
    let isas: Vec<FIsa> = FIsa::all().into_iter().filter(|i| i.available()).collect();
    eprintln!("fp32 kernels on this CPU: {isas:?}");
    isas
}

fn floats(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.range(-2.0, 2.0) as f32).collect()
}

#[test]
fn simd_fp32_tiles_equal_their_scalar_twin() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(7, "ftiles", 0);
    for isa in fisas() {
        for in_c in [1usize, 3, 16, 37, 128] {
            for n_taps in [1usize, 9] {
                for n in 1..=PX {
                    let step = in_c * (1 + rng.below(2) as usize);
                    let span = (n - 1) * step + in_c;
                    let taps: Vec<usize> = (0..n_taps).map(|t| t * span + rng.below(8) as usize).collect();
                    let base = rng.below(4) as usize;
                    let x = floats(&mut rng, base + taps.iter().max().unwrap() + span);
                    let w = floats(&mut rng, n_taps * in_c * OC_BLOCK);
                    let init: [f32; OC_BLOCK] = std::array::from_fn(|o| o as f32 * 0.25 - 1.0);
                    let (mut simd, mut twin) = (vec![[1.0; OC_BLOCK]; n], vec![[-1.0; OC_BLOCK]; n]);
                    ftile(isa, &x, base, step, &taps, in_c, &w, &init, &mut simd);
                    ftile(isa.twin(), &x, base, step, &taps, in_c, &w, &init, &mut twin);
                    let bits = |t: &[[f32; OC_BLOCK]]| t.as_flattened().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&simd), bits(&twin), "{isa:?}, {in_c} channels, {n_taps} taps, {n} pixels");
                }
            }
        }
    }
}

/// Direct convolution in f64, and per output `sum |x w| + |b|` for the error bound.
fn direct(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (mut out, mut mag) = (vec![0f64; s.out_c * oh * ow], vec![0f64; s.out_c * oh * ow]);
    for c in 0..s.out_c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut acc, mut m) = (f64::from(b[c]), f64::from(b[c]).abs());
                for ci in 0..s.in_c {
                    for ky in 0..s.kh {
                        for kx in 0..s.kw {
                            let iy = (oy * s.stride.0 + ky * s.dilation.0) as isize - s.pad[0] as isize;
                            let ix = (ox * s.stride.1 + kx * s.dilation.1) as isize - s.pad[1] as isize;
                            if iy < 0 || ix < 0 || iy as usize >= s.in_h || ix as usize >= s.in_w {
                                continue;
                            }
                            let v = f64::from(x[(ci * s.in_h + iy as usize) * s.in_w + ix as usize]);
                            let p = v * f64::from(w[((c * s.in_c + ci) * s.kh + ky) * s.kw + kx]);
                            acc += p;
                            m += p.abs();
                        }
                    }
                }
                out[(c * oh + oy) * ow + ox] = acc;
                mag[(c * oh + oy) * ow + ox] = m;
            }
        }
    }
    (out, mag)
}

/// Each output within `(k + 1) * 2^-24 * (sum |x w| + |b|)` of the f64 convolution: the
/// worst-case bound of a `k + 1`-term sum accumulated in f32 with fused multiply-adds (each
/// of the `k` additions rounds once). With SiLU, that error through SiLU's slope (at most
/// 1.1) plus SiLU's own 5e-7 relative error; the residual adds one rounding. Winograd's
/// F(4x4, 3x3), for the 3x3 stride-1 convolutions with 16 or more input channels, is held to
/// the same bound as the direct convolution of the same shape. Every kernel also gives the
/// twin's bits, on each path.
#[test]
fn fp32_convolutions_equal_a_direct_convolution() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(11, "fconv", 0);
    let isas = fisas();
    let (mut cases, mut winograd) = (0, 0);
    for &(in_c, out_c) in &[(1usize, 1usize), (3, 16), (5, 7), (16, 33), (17, 4), (64, 40)] {
        for &(kh, kw, dil) in &[(1usize, 1usize, 1usize), (3, 3, 1), (1, 3, 1), (3, 3, 2)] {
            for stride in [1usize, 2] {
                for &pad in &[[0usize; 4], [1, 1, 1, 1], [0, 1, 2, 0]] {
                    for &(in_h, in_w) in &[(1usize, 1usize), (7, 5), (20, 21), (33, 17)] {
                        let s = ConvShape {
                            in_c,
                            in_h,
                            in_w,
                            out_c,
                            kh,
                            kw,
                            stride: (stride, stride),
                            pad,
                            dilation: (dil, dil),
                        };
                        if in_h + pad[0] + pad[2] < dil * (kh - 1) + 1 || in_w + pad[1] + pad[3] < dil * (kw - 1) + 1 {
                            continue;
                        }
                        winograd += check_conv(&mut rng, &s, &isas);
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 400 && winograd > 40, "{cases} cases, {winograd} as Winograd");
}

/// `x`'s first `in_c / 2` channels after a channel of NaN: read as channels `1..` of it, then
/// the rest of `x`, the convolution reads a Concat of a Split's slice and a tensor.
fn with_lead(x: &[f32], s: &ConvShape) -> Vec<f32> {
    let plane = s.in_h * s.in_w;
    std::iter::repeat_n(f32::NAN, plane).chain(x[..s.in_c / 2 * plane].iter().copied()).collect()
}

fn check_conv(rng: &mut Rng, s: &ConvShape, isas: &[FIsa]) -> usize {
    let (x, w, b) = (floats(rng, s.in_c * s.in_h * s.in_w), floats(rng, s.out_c * s.k()), floats(rng, s.out_c));
    let plane = s.out_h() * s.out_w();
    let residual = floats(rng, s.out_c * plane);
    let lead = with_lead(&x, s);
    let (want, mag) = direct(s, &x, &w, &b);
    // One rounding per fused multiply-add, two per multiply and add.
    let bound = |isa: FIsa, m: f64| {
        let roundings = if isa.twin() == FIsa::Scalar { s.k() + 1 } else { 2 * s.k() + 1 };
        roundings as f64 * f64::from(f32::EPSILON) / 2.0 * m
    };
    let silu = |v: f64| v / (1.0 + (-v).exp());
    let mut twin_bits: std::collections::HashMap<(FIsa, bool), Vec<u32>> = Default::default();
    let mut winograd = 0;
    // `isas` holds both twins: they are available everywhere.
    for (&isa, direct) in isas.iter().flat_map(|i| [(i, true), (i, false)]) {
        let conv = if direct { FConv::direct(*s, &w, &b, isa) } else { FConv::new(*s, &w, &b, isa) };
        if !direct && !conv.is_winograd() {
            continue;
        }
        winograd += usize::from(conv.is_winograd());
        for (fused, res) in [(false, None), (true, Some(&residual[..]))] {
            // Two targets when there are two blocks of channels: a Split's slices.
            let first = if s.out_c > OC_BLOCK { OC_BLOCK } else { 0 };
            let (mut lo, mut hi) = (vec![f32::NAN; first * plane], vec![f32::NAN; (s.out_c - first) * plane]);
            let mut targets = vec![FTarget { first, out: &mut hi }];
            if first > 0 {
                targets.push(FTarget { first: 0, out: &mut lo });
            }
            let (h, in_plane) = (s.in_c / 2, s.in_h * s.in_w);
            let rest = &x[h * in_plane..];
            let parts = [Part { data: &lead, first: 1, n: h }, Part { data: rest, first: 0, n: s.in_c - h }];
            conv.run(&parts, fused, res, targets);
            let got: Vec<f32> = lo.into_iter().chain(hi).collect();
            for (i, &g) in got.iter().enumerate() {
                let (y, e) = (want[i], bound(isa, mag[i]));
                let (want_i, tol) = match res {
                    None => (y, e),
                    Some(r) => {
                        let v = silu(y) + f64::from(r[i]);
                        (v, 1.1 * e + 5e-7 * silu(y).abs() + v.abs() * f64::from(f32::EPSILON))
                    }
                };
                assert!(
                    (f64::from(g) - want_i).abs() <= tol + 1e-30,
                    "{isa:?} {s:?} silu={fused}: [{i}] = {g}, want {want_i} +- {tol}"
                );
            }
            if !fused {
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                match twin_bits.get(&(isa.twin(), direct)) {
                    Some(t) => assert_eq!(&bits, t, "{isa:?} {s:?}: not the twin's bits"),
                    None => {
                        twin_bits.insert((isa.twin(), direct), bits);
                    }
                }
            }
        }
    }
    winograd
}

/// The channels-last gather gives its twin's floats, for every pixel count and stride.
#[test]
fn pixel_gathers_equal_their_twin() {
    let mut rng = Rng::for_item(3, "gather", 0);
    for n in [0usize, 1, 7, 8, 9, 23, 64] {
        for stride in [8usize, 13, 64] {
            let data: Vec<Vec<f32>> = (0..8).map(|_| floats(&mut rng, n)).collect();
            let rows: [&[f32]; 8] = std::array::from_fn(|i| &data[i][..]);
            let len = n * stride + 8;
            let (mut simd, mut twin) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            crate::kernels::fconv::gather_pixels(&rows, &mut simd, stride);
            crate::kernels::fconv::gather_pixels_scalar(&rows, &mut twin, stride);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&simd), bits(&twin), "{n} pixels, stride {stride}");
        }
    }
}

//! 1x1 convolutions over input parts on their own grids against a direct computation: each
//! part's exact integer sum, scaled in f32 by its ratio to the finest part's scale and
//! rounded half away from zero, as `crate::kernels::segments` defines it.

use super::*;
use crate::kernels::conv::Part;
use crate::kernels::segments::{add_scaled, add_scaled_scalar};

/// The sums by the definition, in units of `input_scale * unit`: neighbouring parts on one
/// grid summed as one, each part's exact sum scaled and rounded.
fn by_parts(s: &ConvShape, x: &[u8], w: &[i8], parts: &[Part], input_scale: f32, unit: f32) -> Vec<i32> {
    let mut merged: Vec<Part> = Vec::new();
    for p in parts {
        match merged.last_mut() {
            Some(m) if (m.scale, m.zero_point) == (p.scale, p.zero_point) => m.channels += p.channels,
            _ => merged.push(*p),
        }
    }
    let plane = s.in_h * s.in_w;
    let mut out = vec![0i32; s.out_c * plane];
    for o in 0..s.out_c {
        for px in 0..plane {
            let mut c0 = 0;
            for p in &merged {
                let sum: i64 = (c0..c0 + p.channels)
                    .map(|c| (i64::from(x[c * plane + px]) - i64::from(p.zero_point)) * i64::from(w[o * s.in_c + c]))
                    .sum();
                let ratio = p.scale / input_scale / unit;
                out[o * plane + px] += match ratio.fract() {
                    0.0 => i32::try_from(sum).unwrap() * ratio as i32,
                    _ => (i32::try_from(sum).unwrap() as f32 * ratio).round() as i32,
                };
                c0 += p.channels;
            }
        }
    }
    out
}

#[test]
fn parts_on_their_own_grids_equal_the_definition() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(23, "segments", 0);
    for isa in available() {
        let max_abs = [127, 63].into_iter().find(|&m| isa.exact_for(WeightRange::within(m))).unwrap();
        for channels in [[16usize, 16, 32].as_slice(), &[4, 8], &[32, 32, 32, 32], &[8, 4, 5], &[4, 4, 8, 8]] {
            let in_c: usize = channels.iter().sum();
            for (out_c, (h, w_)) in [(16usize, (5usize, 7usize)), (33, (20, 20)), (7, (1, 3))] {
                let s = ConvShape {
                    in_c,
                    in_h: h,
                    in_w: w_,
                    out_c,
                    kh: 1,
                    kw: 1,
                    stride: (1, 1),
                    pad: [0; 4],
                    dilation: (1, 1),
                };
                // With four parts, the middle two share a grid, as SPPF's pools share their
                // input's: they are summed as one part.
                let grid = |k: usize| if channels.len() == 4 && k >= 2 { k - 1 } else { k };
                let parts: Vec<Part> = channels
                    .iter()
                    .enumerate()
                    .map(|(k, &n)| Part {
                        channels: n,
                        scale: 0.01 * (1.0 + 1.37 * grid(k) as f32),
                        zero_point: (40 * grid(k)) as u8,
                    })
                    .collect();
                let w = weights(&mut rng, out_c * in_c, max_abs);
                let x = pixels(&mut rng, in_c * h * w_);
                let conv = QConv::with_parts(s, &w, isa, &parts, 0.01).unwrap();
                // Units of 0.01 / 2^k, as fine as the sums allow: 2^6 to 2^8 for these sizes.
                let unit = conv.sum_unit();
                assert!(unit <= 1.0 / 64.0 && unit.log2().fract() == 0.0, "unit {unit}");
                let want = by_parts(&s, &x, &w, &parts, 0.01, conv.sum_unit());
                assert_eq!(conv.run_i32(&x, 0), want, "{isa:?}, parts {channels:?}, {out_c} outputs, {h}x{w_}");
                // One part at the input scale is the plain convolution.
                let one = [Part { channels: in_c, scale: 0.01, zero_point: 9 }];
                let plain = QConv::with_parts(s, &w, isa, &one, 0.01).unwrap();
                let scaled: Vec<i32> = reference(&s, &x, 9, &w).iter().map(|v| v * 256).collect();
                assert_eq!(plain.run_i32(&x, 9), scaled);
            }
        }
    }
}

#[test]
fn parts_the_kernels_cannot_run_are_refused() {
    let isa = Isa::ScalarQuads;
    let s = |kh, in_c| ConvShape {
        in_c,
        in_h: 4,
        in_w: 4,
        out_c: 16,
        kh,
        kw: kh,
        stride: (1, 1),
        pad: [0; 4],
        dilation: (1, 1),
    };
    let part = |channels, scale| Part { channels, scale, zero_point: 0 };
    let w = vec![1i8; 16 * 9 * 16];
    let err = |shape, parts: &[Part]| {
        QConv::with_parts(shape, &w[..16 * shape.in_c * shape.kh * shape.kw], isa, parts, 0.01).unwrap_err()
    };
    assert!(err(s(3, 16), &[part(8, 0.01), part(8, 0.02)]).contains("1x1"));
    assert!(err(s(1, 16), &[part(6, 0.01), part(10, 0.02)]).contains("not on a group"));
    assert!(err(s(1, 16), &[part(8, 0.01), part(4, 0.02)]).contains("input channels"));
    assert!(err(s(1, 16), &[part(8, 0.005), part(8, 0.02)]).contains("finer"));
    assert!(err(s(1, 16), &[part(8, 0.01), part(8, 1e6)]).contains("overflow"));
}

#[test]
fn scaled_adds_equal_their_portable_twin() {
    let mut rng = Rng::for_item(29, "scaled", 0);
    for ratio in [1.0f32, 256.0, 1.37, 2.5, 7.0 / 3.0, 40.1] {
        for n in [1usize, 5, 16, 33] {
            let bound = ((1u32 << 30) as f32 / ratio) as u64;
            let part: Vec<[i32; OC_BLOCK]> =
                (0..n).map(|_| std::array::from_fn(|_| (rng.below(2 * bound) as i64 - bound as i64) as i32)).collect();
            let start: Vec<[i32; OC_BLOCK]> =
                (0..n).map(|j| std::array::from_fn(|o| (j * 100 + o) as i32 - 700)).collect();
            let (mut simd, mut twin) = (start.clone(), start.clone());
            add_scaled(&mut simd, &part, ratio);
            add_scaled_scalar(&mut twin, &part, ratio);
            assert_eq!(simd, twin, "ratio {ratio}, {n} pixels");
            let want = match ratio.fract() {
                0.0 => part[0][3] * ratio as i32 + start[0][3],
                _ => (part[0][3] as f32 * ratio).round() as i32 + start[0][3],
            };
            assert_eq!(twin[0][3], want);
        }
    }
}

/// `scaled` is a safe function: out of the range `segments` keeps it in, it saturates (as
/// `f32 as i32` does, by hand) instead of reaching undefined behaviour, on every width.
#[test]
fn scaled_values_saturate_outside_their_range() {
    use crate::kernels::segments::scaled;
    assert_eq!((scaled(3, 0.5), scaled(-3, 0.5), scaled(5, 1.2)), (2, -2, 6));
    assert_eq!((scaled(i32::MAX, 4.0), scaled(i32::MIN, 4.0)), (i32::MAX - 127, i32::MIN));
    assert_eq!(
        (scaled(7, f32::INFINITY), scaled(7, f32::NEG_INFINITY), scaled(7, f32::NAN)),
        (i32::MAX - 127, i32::MIN, i32::MIN)
    );
    for ratio in [3.5f32, 1e12, f32::NAN] {
        let part = vec![[i32::MAX; OC_BLOCK], [i32::MIN; OC_BLOCK], [12345; OC_BLOCK]];
        let (mut simd, mut twin) = (vec![[0; OC_BLOCK]; 3], vec![[0; OC_BLOCK]; 3]);
        add_scaled(&mut simd, &part, ratio);
        add_scaled_scalar(&mut twin, &part, ratio);
        assert_eq!(simd, twin, "ratio {ratio}");
    }
}

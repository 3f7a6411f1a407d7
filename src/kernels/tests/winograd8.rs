//! Winograd's F(2x4, 3x3) in integers: the sums of every 3x3 stride-1 convolution equal a
//! direct convolution's in i64, on every image layout and `pmaddwd` kernel of this CPU, odd
//! sizes, odd channel counts and the extreme weights and pixels included.

use super::{pixels, reference, weights};
use crate::dataset::rng::Rng;
use crate::kernels::conv::{ConvShape, Epilogue, QConv};
use crate::kernels::winograd8;
use crate::kernels::Isa;

fn shape(in_c: usize, out_c: usize, in_h: usize, in_w: usize) -> ConvShape {
    ConvShape { in_c, in_h, in_w, out_c, kh: 3, kw: 3, stride: (1, 1), pad: [1; 4], dilation: (1, 1) }
}

/// The image layouts the Winograd path reads (quads and pairs), with each `pmaddwd` kernel
/// here (the twin included).
fn cases() -> Vec<(Isa, Isa)> {
    let layouts =
        [Isa::ScalarQuads, Isa::ScalarPairs, Isa::Avx2Maddubs, Isa::Avx2Madd16, Isa::SseMaddubs, Isa::SseMadd16];
    let products = [Isa::ScalarPairs, Isa::Avx2Madd16, Isa::SseMadd16];
    let mut out = Vec::new();
    for l in layouts.into_iter().filter(|i| i.available()) {
        for p in products.into_iter().filter(|i| i.available()) {
            out.push((l, p));
        }
    }
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    assert!(out.iter().any(|&(_, p)| p != Isa::ScalarPairs), "no pmaddwd kernel on this CPU: {out:?}");
    out
}

#[test]
fn winograd_sums_equal_a_direct_convolution() {
    let mut rng = Rng::for_item(23, "winograd8", 0);
    let mut runs = 0;
    for &(in_c, out_c) in &[(1usize, 1usize), (3, 16), (16, 33), (17, 5), (40, 16)] {
        for &(in_h, in_w) in &[(1usize, 1usize), (2, 3), (7, 5), (4, 6), (20, 20), (13, 9)] {
            let s = shape(in_c, out_c, in_h, in_w);
            let x = pixels(&mut rng, in_c * in_h * in_w);
            let zp = rng.below(256) as u8;
            for (layout, products) in cases() {
                let max_abs = if layout.exact_for(crate::kernels::WeightRange::within(127)) { 127 } else { 63 };
                let w = weights(&mut rng, out_c * s.k(), max_abs);
                let conv = QConv::with_winograd(s, &w, layout, Some(products));
                assert_eq!(conv.winograd(), Some(products), "{s:?}");
                assert_eq!(conv.run_i32(&x, zp), reference(&s, &x, zp, &w), "{layout:?} {products:?} {s:?} zp {zp}");
                runs += 1;
            }
        }
    }
    assert!(runs >= 30, "{runs} runs");
}

/// The largest transformed values: weights all -128 or all 127 (`G'_y g G'_x^T` up to 9216 in
/// magnitude), pixels at 0 and 255 in a checkerboard and in stripes (`B_y^T d B_x` up to
/// 5100), and 255 everywhere.
#[test]
fn winograd_is_exact_at_the_extremes() {
    for w0 in [-128i8, 127] {
        for pattern in 0..3 {
            let s = shape(64, 16, 6, 8);
            let on = |i: usize| match pattern {
                0 => true,
                1 => (i + i / 8).is_multiple_of(2),
                _ => (i % 8) % 3 != 1,
            };
            let x: Vec<u8> = (0..64 * 48).map(|i| if on(i) { 255 } else { 0 }).collect();
            let w = vec![w0; 16 * s.k()];
            for (layout, products) in cases().into_iter().filter(|(l, _)| l.k_group() == 2 || *l == Isa::ScalarQuads) {
                let conv = QConv::with_winograd(s, &w, layout, Some(products));
                assert!(conv.winograd().is_some());
                for zp in [0u8, 255] {
                    assert_eq!(
                        conv.run_i32(&x, zp),
                        reference(&s, &x, zp, &w),
                        "{layout:?} {products:?} w {w0} zp {zp}"
                    );
                }
            }
        }
    }
}

/// Outputs that could leave i32 keep the direct convolution.
#[test]
fn winograd_declines_sums_past_i32() {
    // 48 x 255 x 1152 x in_c against 2^31: 152 input channels of weights -128 at most.
    let s = shape(153, 16, 2, 2);
    let w = vec![-128i8; 16 * s.k()];
    assert!(winograd8::Winograd8::new(&s, &w, Isa::ScalarPairs).is_none());
    let s = shape(152, 16, 2, 2);
    assert!(winograd8::Winograd8::new(&s, &w[..16 * s.k()], Isa::ScalarPairs).is_some());
}

/// Bands of two rows over the thread team, through the epilogue: the same floats as the
/// direct convolution's.
#[test]
fn winograd_bands_give_the_direct_convolutions_floats() {
    let _team = crate::tests::team();
    let _ = crate::kernels::threads::set_threads(2);
    let mut rng = Rng::for_item(29, "winograd8", 1);
    for &(in_h, in_w) in &[(40usize, 40usize), (23, 31), (3, 80)] {
        let s = shape(32, 40, in_h, in_w);
        let x = pixels(&mut rng, 32 * in_h * in_w);
        let zp = rng.below(256) as u8;
        let scale: Vec<f32> = (0..40).map(|c| 1e-3 * (c + 1) as f32).collect();
        let bias: Vec<f32> = (0..40).map(|c| 0.1 * c as f32 - 2.0).collect();
        let e = Epilogue { scale: &scale, bias: &bias, silu: true };
        for (layout, products) in cases() {
            let max_abs = if layout.exact_for(crate::kernels::WeightRange::within(127)) { 127 } else { 63 };
            let w = weights(&mut rng, 40 * s.k(), max_abs);
            let direct = QConv::with_winograd(s, &w, layout, None).run_f32(&x, zp, e);
            let wino = QConv::with_winograd(s, &w, layout, Some(products));
            assert!(wino.winograd().is_some());
            let got = wino.run_f32(&x, zp, e);
            assert!(got.iter().zip(&direct).all(|(a, b)| a.to_bits() == b.to_bits()), "{layout:?} {products:?} {s:?}");
        }
    }
}

/// The SIMD image transform against its portable twin, value for value, on both layouts,
/// with blocks past the image's edge (odd sizes) and channels past a multiple of 16.
#[test]
fn simd_image_transform_equals_its_portable_twin() {
    let mut rng = Rng::for_item(31, "winograd8", 2);
    for layout in [Isa::ScalarQuads, Isa::ScalarPairs] {
        for &(in_c, in_h, in_w) in &[(16usize, 4usize, 8usize), (35, 5, 7), (64, 9, 2), (48, 1, 11), (32, 6, 13)] {
            let s = shape(in_c, 16, in_h, in_w);
            let x = pixels(&mut rng, in_c * in_h * in_w);
            let zp = rng.below(256) as u8;
            let mut img = Vec::new();
            crate::kernels::pack::image(layout, &s, &x, zp, &mut img);
            for ty in 0..in_h.div_ceil(2) {
                let (simd, portable) = winograd8::both_transforms(&img, layout, in_c, in_h, in_w, zp, ty);
                assert_eq!(simd, portable, "{layout:?} {s:?} block row {ty}");
            }
        }
    }
}

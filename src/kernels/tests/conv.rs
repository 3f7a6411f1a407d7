//! The micro-kernel tiles and whole convolutions against their twins and a direct
//! convolution, and the interleaves of the image layout.

use super::*;

#[test]
fn simd_tiles_equal_their_scalar_twins() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(7, "tiles", 0);
    for isa in available() {
        let max_abs = [128, 127, 63].into_iter().find(|&m| isa.exact_for(WeightRange::within(m))).unwrap();
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
    let _team = crate::tests::team();
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
                            let max_abs = if isa.exact_for(WeightRange::within(127)) { 127 } else { 63 };
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

/// Depthwise convolutions (YOLO11's head, YOLOv10's SCDown and CIB) on every kernel's image
/// layout against the direct convolution of their block-diagonal dense weights.
#[test]
fn depthwise_convolutions_equal_a_direct_convolution() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(13, "depthwise", 0);
    let mut cases = 0;
    for c in [1usize, 5, 16, 17, 40, 64] {
        for k in [3usize, 5, 7] {
            for stride in [1usize, 2] {
                for &(in_h, in_w) in &[(1usize, 1usize), (4, 9), (20, 20), (33, 17)] {
                    let p = k / 2;
                    let s = ConvShape {
                        in_c: c,
                        in_h,
                        in_w,
                        out_c: c,
                        kh: k,
                        kw: k,
                        stride: (stride, stride),
                        pad: [p, p, p, p],
                        dilation: (1, 1),
                    };
                    let x = pixels(&mut rng, c * in_h * in_w);
                    let zp = rng.below(256) as u8;
                    // Both extremes of int8, which the dense kernels cannot all take.
                    let mut w = weights(&mut rng, c * k * k, 127);
                    w[0] = -128;
                    let mut dense = vec![0i8; c * c * k * k];
                    for (ch, taps) in w.chunks_exact(k * k).enumerate() {
                        dense[(ch * c + ch) * k * k..][..k * k].copy_from_slice(taps);
                    }
                    let want = reference(&s, &x, zp, &dense);
                    for isa in available() {
                        let got = QConv::depthwise(s, &w, isa).run_i32(&x, zp);
                        assert_eq!(got, want, "{isa:?} {s:?} zp {zp}");
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 400, "{cases} cases");
}

/// The depthwise row compiled for the widest vectors this CPU has against its portable
/// twin, bit for bit: bytes and pairs layouts, whole and partial channel blocks, the shifted
/// kernels' offset, int8's extreme weights.
#[test]
fn depthwise_row_equals_its_portable_twin() {
    use crate::kernels::depthwise::{row, row_scalar, Pixels, Row};
    let mut rng = Rng::for_item(37, "depthwise row", 0);
    let taps: Vec<usize> = (0..9).map(|t| (t / 3) * 40 * 2 * 16 + (t % 3) * 2 * 16).collect();
    let img = pixels(&mut rng, 4 * 40 * 2 * 16);
    let w: Vec<[i16; OC_BLOCK]> = (0..9)
        .map(|t| std::array::from_fn(|o| if t == 4 && o == 0 { -128 } else { rng.below(255) as i16 - 127 }))
        .collect();
    let start: [i32; OC_BLOCK] = std::array::from_fn(|o| o as i32 * 1000 - 7000);
    for (value_bytes, lanes, offset) in [(1, OC_BLOCK, 0), (1, OC_BLOCK, 128), (1, 5, 0), (2, OC_BLOCK, 0), (2, 7, 0)] {
        let px = Pixels { img: &img, value_bytes, offset };
        let r = Row { px, base: 16, step: 2 * 16, taps: &taps, w: &w, start: &start, c0: 0, lanes };
        let (mut simd, mut twin) = (vec![[0i32; OC_BLOCK]; 17], vec![[1i32; OC_BLOCK]; 17]);
        row(&r, &mut simd);
        row_scalar(&r, &mut twin);
        assert_eq!(simd, twin, "{value_bytes} bytes, {lanes} lanes, offset {offset}");
        assert!(twin.iter().flatten().any(|&v| v != start[0]), "the sums vary");
    }
}

/// The SIMD interleaves of the image layout (SSE2, NEON `ST4`) against their scalar twins.
#[test]
fn simd_interleave_equals_scalar() {
    let _team = crate::tests::team();
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

/// A kernel asked for runs; one that cannot run the weights (not on this CPU, or
/// `maddubs` on 8-bit weights) gives the fastest exact kernel, not the portable one (which
/// took 884 ms for the COCO yolov8n).
#[test]
fn named_kernels_fall_back_to_the_fastest_exact_one() {
    let fastest = Isa::pick(WeightRange::within(127), None);
    assert!(fastest.available() && fastest.exact_for(WeightRange::within(127)));
    assert_eq!(fastest == Isa::ScalarQuads, !Isa::simd_available());
    assert_eq!(Isa::pick(WeightRange::within(127), Some(Isa::ScalarQuads)), Isa::ScalarQuads);
    assert_eq!(Isa::pick(WeightRange::within(127), Some(Isa::Avx2Maddubs)), fastest);
    if Isa::Avx2Maddubs.available() {
        assert_eq!(Isa::pick(WeightRange::within(63), Some(Isa::Avx2Maddubs)), Isa::Avx2Maddubs);
    }
    let foreign = if cfg!(target_arch = "x86_64") { Isa::NeonI8mm } else { Isa::Avx512Vnni };
    assert_eq!(Isa::pick(WeightRange::within(127), Some(foreign)), fastest);
}

/// The pair bound by hand: pairs are neighbouring input channels at one tap (not
/// neighbouring taps), an odd last channel pairs with padding, and weights of opposite sign
/// do not add up.
#[test]
fn weight_ranges_bound_pairs_of_neighbouring_channels() {
    let r = WeightRange::of(&[127, 1, -128, 0], 4, 1);
    assert_eq!((r.max_abs, r.max_pair), (128, 128));
    assert_eq!(WeightRange::of(&[127, 2, 0, 0], 4, 1).max_pair, 129);
    assert_eq!(WeightRange::of(&[-100, -29], 2, 1).max_pair, 129);
    assert_eq!(WeightRange::of(&[100, -50, 90], 3, 1), WeightRange { max_abs: 100, max_pair: 100 });
    // Two channels of two taps, `[c0t0, c0t1, c1t0, c1t1]`: the pairs are (60, 68) and
    // (70, 58), both 128; neighbouring taps (60, 70) would be 130.
    assert_eq!(WeightRange::of(&[60, 70, 68, 58], 2, 2).max_pair, 128);
    // The bound is per output channel row: rows `[90, 30]` and `[30, 90]` are 120 each.
    assert_eq!(WeightRange::of(&[90, 30, 30, 90], 2, 1).max_pair, 120);
}

/// `vpmaddubsw` on 8-bit weights: exact at the pair bound with every activation at 255 (a
/// whole conv against the direct convolution), saturating one step past it (which is why
/// the load-time check sends such a conv to `madd16`).
#[test]
fn maddubs_is_exact_up_to_the_pair_bound_and_no_further() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(17, "pairs", 0);
    let s = ConvShape {
        in_c: 8,
        in_h: 5,
        in_w: 6,
        out_c: 16,
        kh: 3,
        kw: 3,
        stride: (1, 1),
        pad: [1, 1, 1, 1],
        dilation: (1, 1),
    };
    // Each pair (channel 2i, 2i + 1 at one tap) sums to +-128 in one sign, split at random.
    let mut w = vec![0i8; s.out_c * s.k()];
    for c in 0..s.out_c {
        for pair in 0..s.in_c / 2 {
            for t in 0..9 {
                let a = 1 + rng.below(127) as i32;
                let sign = if rng.below(2) == 0 { 1 } else { -1 };
                w[(c * s.in_c + 2 * pair) * 9 + t] = (sign * a) as i8;
                w[(c * s.in_c + 2 * pair + 1) * 9 + t] = (sign * (128 - a)) as i8;
            }
        }
    }
    let range = WeightRange::of(&w, s.in_c, 9);
    assert_eq!(range.max_pair, 128);
    let x = vec![255u8; s.in_c * s.in_h * s.in_w];
    let want = reference(&s, &x, 0, &w);
    for isa in available().into_iter().filter(|i| i.k_group() == 4) {
        assert!(isa.exact_for(range));
        assert_eq!(QConv::new(s, &w, isa).run_i32(&x, 0), want, "{isa:?}");
    }
    // One past the bound: (127, 2) at 255 saturates the i16 pair sum (32895 > 32767).
    w[0] = 127;
    w[9] = 2;
    let past = WeightRange::of(&w, s.in_c, 9);
    assert_eq!(past.max_pair, 129);
    for isa in [Isa::Avx2Maddubs, Isa::SseMaddubs].into_iter().filter(|i| i.available()) {
        assert!(!isa.exact_for(past));
        assert_ne!(Isa::choose(past, Some(isa)), isa);
        let packed = pack::PackedWeights::new(isa, &w, &s);
        let image = vec![255u8; 9 * GROUP_BYTES * 2];
        let taps: Vec<usize> = (0..9).map(|t| t * 2 * GROUP_BYTES).collect();
        let (mut simd, mut twin) = ([[0; OC_BLOCK]; 1], [[0; OC_BLOCK]; 1]);
        let zero = [0; OC_BLOCK];
        tile(isa, &image, 0, 0, &taps, 2, &packed.data, &zero, &mut simd);
        tile(Isa::ScalarQuads, &image, 0, 0, &taps, 2, &packed.data, &zero, &mut twin);
        assert_ne!(simd[0][0], twin[0][0], "{isa:?}: the bound is tight, one more saturates");
        assert_eq!(simd[0][1..], twin[0][1..], "{isa:?}");
    }
}

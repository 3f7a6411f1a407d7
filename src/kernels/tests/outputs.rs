//! What a conv writes besides one float tensor: the next conv's packed image, several
//! targets from one pass, a residual added in the epilogue, and tensors never zeroed.

use super::*;

/// A requantizing conv writing the next conv's padded channels-last image directly must give
/// that conv the same input as writing `[C][H][W]` uint8 and packing it: the next conv's
/// outputs are compared bit for bit, with 20 channels (a second, partial block of 16) and
/// asymmetric padding.
#[test]
fn packed_handover_equals_repacking() {
    let _team = crate::tests::team();
    use crate::kernels::conv::{Input, Output};
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
        let max_abs = if isa.exact_for(WeightRange::within(127)) { 127 } else { 63 };
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
    let _team = crate::tests::team();
    use crate::kernels::conv::{Input, Output, Target};
    let _ = crate::kernels::threads::set_threads(2);
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
        let max_abs = if isa.exact_for(WeightRange::within(127)) { 127 } else { 63 };
        let a = QConv::new(sa, &weights(&mut rng, 40 * sa.k(), max_abs), isa);
        let b = QConv::new(sb, &weights(&mut rng, 5 * sb.k(), max_abs), isa);
        let whole = a.run_f32(&x, 9, e);
        let mut quantized = vec![0u8; whole.len()];
        crate::kernels::quantize::quantize_scalar(&whole, q.0, q.1, &mut quantized);
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

/// A residual added in the epilogue (a bottleneck's shortcut Add) equals adding it to the
/// float output afterwards, bit for bit, and its quantized outputs equal quantizing that
/// sum: 40 channels (a partial block), float and packed targets, on two threads.
#[test]
fn residual_epilogue_equals_adding_afterwards() {
    let _team = crate::tests::team();
    use crate::kernels::conv::{Input, Output, Target};
    let _ = crate::kernels::threads::set_threads(2);
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
        let max_abs = if isa.exact_for(WeightRange::within(127)) { 127 } else { 63 };
        let a = QConv::new(sa, &weights(&mut rng, 40 * sa.k(), max_abs), isa);
        let b = QConv::new(sb, &weights(&mut rng, 3 * sb.k(), max_abs), isa);
        let want: Vec<f32> = a.run_f32(&x, 5, e).iter().zip(&residual).map(|(y, r)| y + r).collect();
        let mut want_q = vec![0u8; want.len()];
        crate::kernels::quantize::quantize_scalar(&want, q.0, q.1, &mut want_q);
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
    let _team = crate::tests::team();
    use crate::kernels::conv::{Input, OutKind, OutSpec, Output, Target};
    let _ = crate::kernels::threads::set_threads(2);
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
        let max_abs = if isa.exact_for(WeightRange::within(127)) { 127 } else { 63 };
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

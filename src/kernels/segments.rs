//! A 1x1 convolution whose input channels come in parts, each on its own uint8 grid: the
//! Concat that `qdet calibrate` quantizes per input ([`crate::quant::sites::concat_parts`]).
//! Each part's sums are exact integers from the same micro-kernels over its k-groups; the
//! parts are then added in units of `input_scale / 2^k` (the finest part's scale, the conv's
//! input scale, split as finely as int32 holds, k <= 8), each part's sums multiplied by its
//! scale ratio in f32 and rounded to the nearest unit (an error of f32's relative size, as the
//! epilogue's own float step, or of 2^-9 of the finest part's step).

use std::ops::Range;

use super::shape::ConvShape;
use super::{tile, Isa, GROUP_BYTES, OC_BLOCK, WGROUP_BYTES};

/// One part of the input channels.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its k-groups of the packed image.
    pub(super) groups: Range<usize>,
    pub(super) zero_point: u8,
    /// Its scale over the conv's input scale (>= 1).
    pub(super) ratio: f32,
    /// `sum(w)` over its channels per output channel, padded to whole blocks.
    pub(super) sums: Vec<i32>,
}

/// One part as the file defines it: how many channels, and its grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub channels: usize,
    pub scale: f32,
    pub zero_point: u8,
}

/// The parts' segments for `w` (`[out_c][in_c]` int8) at input scale `input_scale`, or why
/// the kernels cannot run them exactly.
pub fn segments(
    shape: &ConvShape,
    w: &[i8],
    isa: Isa,
    parts: &[Part],
    input_scale: f32,
) -> Result<Vec<Segment>, String> {
    if (shape.kh, shape.kw) != (1, 1) || shape.pad != [0; 4] {
        return Err(format!(
            "a {}x{} conv with padding {:?}: only unpadded 1x1 convs read parts",
            shape.kh, shape.kw, shape.pad
        ));
    }
    if parts.iter().map(|p| p.channels).sum::<usize>() != shape.in_c {
        return Err(format!(
            "parts of {:?} channels for {} input channels",
            parts.iter().map(|p| p.channels).collect::<Vec<_>>(),
            shape.in_c
        ));
    }
    // Neighbours on one grid (SPPF's input and pools) are one part: fewer, longer sums.
    let mut merged: Vec<Part> = Vec::with_capacity(parts.len());
    for p in parts {
        match merged.last_mut() {
            Some(last) if (last.scale, last.zero_point) == (p.scale, p.zero_point) => last.channels += p.channels,
            _ => merged.push(*p),
        }
    }
    let parts = &merged[..];
    let (mut segs, mut c0, mut bound) = (Vec::new(), 0, 0f64);
    for (k, p) in parts.iter().enumerate() {
        let last = k + 1 == parts.len();
        if c0 % isa.k_group() != 0 || !last && p.channels % isa.k_group() != 0 {
            return Err(format!("part {k} starts at channel {c0}, not on a group of {}", isa.k_group()));
        }
        let ratio = p.scale / input_scale;
        if !(ratio >= 1.0 && ratio.is_finite()) {
            return Err(format!("part {k}'s scale {} is finer than the input scale {input_scale}", p.scale));
        }
        let mut sums: Vec<i32> = (0..shape.out_c)
            .map(|o| w[o * shape.in_c + c0..][..p.channels].iter().map(|&v| i32::from(v)).sum())
            .collect();
        sums.resize(shape.out_c.next_multiple_of(OC_BLOCK), 0);
        let end = if last { super::pack::padded_channels(isa, shape.in_c) } else { c0 + p.channels };
        bound += (p.channels * 255 * 128) as f64 * f64::from(ratio);
        segs.push(Segment { groups: c0 / isa.k_group()..end / isa.k_group(), zero_point: p.zero_point, ratio, sums });
        c0 += p.channels;
    }
    if bound >= f64::from(1u32 << 30) {
        return Err(format!("sums up to {bound:.3e} would overflow int32"));
    }
    // Units of input_scale / 2^k, as fine as int32 allows (up to 2^-8): rounding a coarse
    // part's scaled sum to whole units of the finest part's step moved values by up to
    // 1/2000 of a typical output step, and ONNX Runtime's float conv does not round there.
    let mut k = 0;
    while k < 8 && bound * f64::from(2u32 << k) < f64::from(1u32 << 30) {
        k += 1;
    }
    for seg in &mut segs {
        seg.ratio *= (1u32 << k) as f32;
    }
    Ok(segs)
}

/// The real value of one unit of a conv of parts' sums, over its input scale: `2^-k`.
pub fn unit(segments: &[Segment]) -> f32 {
    segments.iter().map(|s| s.ratio).fold(f32::INFINITY, f32::min).recip()
}

/// `v * ratio` in f32, rounded half away from zero, for `v` a segment's sum: a form the
/// compiler vectorizes. Its error, relative, is f32's, as the epilogue's own `acc * scale`.
/// (`segments` keeps a conv's `|v| * ratio` below 2^30; past i32's range, and for a NaN
/// ratio, the result saturates to i32's bounds.)
pub fn scaled(v: i32, ratio: f32) -> i32 {
    let x = v as f32 * ratio;
    // From 2^23 on every f32 is a whole number, and adding 0.5 would round to even.
    let x = if x.abs() < 8_388_608.0 { x + 0.5f32.copysign(x) } else { x };
    // `f32::max` passes over a NaN: it becomes the lower bound. The upper bound is the
    // largest f32 below 2^31.
    #[allow(clippy::manual_clamp)] // `clamp` would keep a NaN
    let x = x.max(-2_147_483_648.0).min(2_147_483_520.0);
    // SAFETY: x is within [-2^31, 2^31 - 128], whatever `v` and `ratio` are: the clamp just
    // above sends a NaN and both infinities to its bounds. The checked `as i32` kept this loop
    // scalar.
    unsafe { x.to_int_unchecked::<i32>() }
}

#[inline(always)]
fn add_scaled_body(acc: &mut [[i32; OC_BLOCK]], part: &[[i32; OC_BLOCK]], ratio: f32) {
    // Flat slices: over `[pixel][channel]` the compiler vectorized across pixels, with
    // gathers and scatters.
    let (acc, part) = (acc.as_flattened_mut(), part.as_flattened());
    if ratio.fract() == 0.0 && ratio <= 256.0 {
        // A whole ratio (the finest part's 2^k, or the same grid twice): exact integers.
        let r = ratio as i32;
        for (a, &s) in acc.iter_mut().zip(part) {
            *a += s * r;
        }
        return;
    }
    for (a, &s) in acc.iter_mut().zip(part) {
        *a += scaled(s, ratio);
    }
}

/// `acc += scaled(part, ratio)` value by value (exact integer products for whole ratios), on the
/// widest vectors this CPU has: the same bits as the portable loop (`x86_64::widest!`).
pub fn add_scaled(acc: &mut [[i32; OC_BLOCK]], part: &[[i32; OC_BLOCK]], ratio: f32) {
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = super::x86_64::widest!((acc: &mut [[i32; OC_BLOCK]], part: &[[i32; OC_BLOCK]], ratio: f32) -> () => add_scaled_body)
    {
        return;
    }
    add_scaled_body(acc, part, ratio)
}

/// The portable twin of [`add_scaled`] (for the tests).
#[cfg(test)]
pub fn add_scaled_scalar(acc: &mut [[i32; OC_BLOCK]], part: &[[i32; OC_BLOCK]], ratio: f32) {
    add_scaled_body(acc, part, ratio)
}

/// The zero-point-corrected sums of channel block `b` for the pixels of `acc`, the first at
/// byte `base` of the packed image, `step` bytes apart, over every segment; `w` is the
/// block's weights, `taps` the conv's (one: these are 1x1 convs).
#[allow(clippy::too_many_arguments)]
pub(super) fn sums(
    isa: Isa,
    taps: &[usize],
    w: &[u8],
    segments: &[Segment],
    (img, base, step): (&[u8], usize, usize),
    b: usize,
    acc: &mut [[i32; OC_BLOCK]],
    scratch: &mut Vec<[i32; OC_BLOCK]>,
) {
    let tp = isa.tile_pixels();
    scratch.resize(acc.len(), [0; OC_BLOCK]);
    for (k, seg) in segments.iter().enumerate() {
        let zp = i32::from(seg.zero_point) - isa.activation_offset();
        let start: [i32; OC_BLOCK] = std::array::from_fn(|o| -zp * seg.sums[b * OC_BLOCK + o]);
        let wseg = &w[seg.groups.start * WGROUP_BYTES..];
        let at = base + seg.groups.start * GROUP_BYTES;
        let direct = k == 0 && seg.ratio == 1.0;
        let dst = if direct { &mut acc[..] } else { &mut scratch[..] };
        for (i, chunk) in dst.chunks_mut(tp).enumerate() {
            tile(isa, img, at + i * tp * step, step, taps, seg.groups.len(), wseg, &start, chunk);
        }
        if k == 0 && !direct {
            acc.fill([0; OC_BLOCK]);
        }
        if !direct {
            add_scaled(acc, scratch, seg.ratio);
        }
    }
}

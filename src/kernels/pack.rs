//! The layouts the micro-kernels read.
//!
//! * Image ([`image`]): channels-last with the convolution's padding, `[hp][wp][cp]` values,
//!   `cp` the channels rounded up to whole groups of [`Isa::k_group`]. Values are u8 for
//!   quads and little-endian u16 for pairs, so a pixel's k-group is always 4 bytes. Padding
//!   holds the zero point (real 0.0); the lanes of the rounding-up channels hold anything,
//!   their weights are zero.
//! * Weights ([`PackedWeights`]): per block of [`OC_BLOCK`] output channels, per tap
//!   `(ky, kx)`, per k-group: `OC_BLOCK` x `G` values (i8, or little-endian i16 for pairs),
//!   64 bytes, two 32-byte vectors for channels 0..8 and 8..16. Channels past `out_c` and
//!   past `in_c` are zero weights.

#[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub use super::generic::pack::{interleave2_scalar, interleave4_scalar};
use tract_onnx::prelude::*;

use super::shape::ConvShape;
use super::{Isa, WeightRange, OC_BLOCK, WGROUP_BYTES};

/// Channels after rounding up to whole k-groups.
pub fn padded_channels(isa: Isa, in_c: usize) -> usize {
    in_c.next_multiple_of(isa.k_group())
}

#[derive(Debug, Clone)]
pub struct PackedWeights {
    pub isa: Isa,
    pub out_c: usize,
    /// Bytes of one block of `OC_BLOCK` channels: `taps * groups * 64`.
    pub block_bytes: usize,
    pub data: Vec<u8>,
    /// `sum_k w[c][k]`, for the zero-point correction; zero past `out_c`.
    pub sums: Vec<i32>,
    /// What the kernel must be exact for.
    pub range: WeightRange,
}

impl PackedWeights {
    /// `w` is `[out_c][in_c][kh][kw]`, row-major, as in ONNX.
    pub fn new(isa: Isa, w: &[i8], s: &ConvShape) -> PackedWeights {
        let (out_c, in_c, kh, kw) = (s.out_c, s.in_c, s.kh, s.kw);
        assert_eq!(w.len(), out_c * in_c * kh * kw, "weights are not out_c x in_c x kh x kw");
        let (g, vb) = (isa.k_group(), isa.value_bytes());
        let groups = padded_channels(isa, in_c) / g;
        let block_bytes = kh * kw * groups * WGROUP_BYTES;
        let blocks = out_c.div_ceil(OC_BLOCK);
        let mut data = vec![0u8; blocks * block_bytes];
        let mut sums = vec![0i32; blocks * OC_BLOCK];
        for c in 0..out_c {
            let (b, o) = (c / OC_BLOCK, c % OC_BLOCK);
            for ci in 0..in_c {
                for t in 0..kh * kw {
                    let v = w[(c * in_c + ci) * kh * kw + t];
                    let at = b * block_bytes + (t * groups + ci / g) * WGROUP_BYTES + (o * g + ci % g) * vb;
                    if vb == 2 {
                        data[at..at + 2].copy_from_slice(&i16::from(v).to_le_bytes());
                    } else {
                        data[at] = v as u8;
                    }
                    sums[c] += i32::from(v);
                }
            }
        }
        let range = WeightRange::of(w, in_c, kh * kw);
        PackedWeights { isa, out_c, block_bytes, data, sums, range }
    }

    pub fn blocks(&self) -> usize {
        self.out_c.div_ceil(OC_BLOCK)
    }

    pub fn block(&self, b: usize) -> &[u8] {
        &self.data[b * self.block_bytes..][..self.block_bytes]
    }
}

/// The padded channels-last image a convolution reads ([`image`]): what a producer and its
/// consumers must agree on to hand one over without repacking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    pub k_group: usize,
    pub value_bytes: usize,
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    /// Top, left, bottom, right.
    pub pad: [usize; 4],
}

impl Layout {
    pub fn of(isa: Isa, s: &ConvShape) -> Layout {
        Layout {
            k_group: isa.k_group(),
            value_bytes: isa.value_bytes(),
            in_c: s.in_c,
            in_h: s.in_h,
            in_w: s.in_w,
            pad: s.pad,
        }
    }

    pub fn pixel_bytes(&self) -> usize {
        self.in_c.next_multiple_of(self.k_group) * self.value_bytes
    }

    pub fn row_bytes(&self) -> usize {
        (self.in_w + self.pad[1] + self.pad[3]) * self.pixel_bytes()
    }

    pub fn len(&self) -> usize {
        (self.in_h + self.pad[0] + self.pad[2]) * self.row_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets pixels to the zero point `zp` (u8, or little-endian u16 for pairs).
    pub fn fill(&self, zp: u8, dst: &mut [u8]) {
        if self.value_bytes == 1 {
            dst.fill(zp)
        } else {
            dst.chunks_exact_mut(2).for_each(|v| v.copy_from_slice(&[zp, 0]))
        }
    }

    /// The padding rows above and below; returns the interior rows.
    pub fn fill_top_bottom<'a>(&self, zp: u8, out: &'a mut [u8]) -> &'a mut [u8] {
        assert_eq!(out.len(), self.len(), "image is not {self:?}");
        let rb = self.row_bytes();
        let (top, rest) = out.split_at_mut(self.pad[0] * rb);
        let (interior, bottom) = rest.split_at_mut(self.in_h * rb);
        self.fill(zp, top);
        self.fill(zp, bottom);
        interior
    }

    /// One interior row: its left and right padding, then channel `c`'s pixels from
    /// `channel_row(c)` (`in_w` bytes).
    fn pack_row<'a>(&self, zp: u8, row: &mut [u8], channel_row: impl Fn(usize) -> &'a [u8]) {
        let interior = self.fill_left_right(zp, row);
        interleave_channels(self.k_group, self.value_bytes, self.pixel_bytes(), self.in_c, interior, channel_row);
    }

    /// The left and right padding of an interior row; returns its pixels.
    fn fill_left_right<'a>(&self, zp: u8, row: &'a mut [u8]) -> &'a mut [u8] {
        let (px, w) = (self.pixel_bytes(), self.in_w);
        self.fill(zp, &mut row[..self.pad[1] * px]);
        self.fill(zp, &mut row[(self.pad[1] + w) * px..]);
        &mut row[self.pad[1] * px..][..w * px]
    }

    /// The image of the channel concatenation of `parts` (in order), each `[c][in_h][in_w]`
    /// or already channels-last with `c` channels and no padding (a conv's packed output for
    /// this image); the same bytes as [`image`] of the concatenated `[C][H][W]` tensor.
    ///
    /// # Panics
    /// If a part has the wrong size, the channels do not add up to `in_c`, or a part but the
    /// last does not fill whole k-groups (its pixels would not line up).
    pub fn concat(&self, zp: u8, parts: &[Part], out: &mut [u8]) {
        let (g, vb, px, w) = (self.k_group, self.value_bytes, self.pixel_bytes(), self.in_w);
        let plane = self.in_h * w;
        let mut at = 0;
        for (i, p) in parts.iter().enumerate() {
            let c = p.channels();
            assert!(c % g == 0 || i + 1 == parts.len(), "part {i} of {c} channels splits a k-group of {g}");
            let want = match p {
                Part::Nchw(..) => c * plane,
                Part::Packed(..) => plane * c.next_multiple_of(g) * vb,
            };
            assert_eq!(p.len(), want, "part {i} is not {c} x {} x {w}", self.in_h);
            at += c;
        }
        assert_eq!(at, self.in_c, "parts of {at} channels for {self:?}");
        let interior = self.fill_top_bottom(zp, out);
        self.for_each_row(interior, |y, row| {
            let row = self.fill_left_right(zp, row);
            let mut c0 = 0;
            for p in parts {
                let dst = &mut row[c0 * vb..];
                match *p {
                    Part::Nchw(x, c) => {
                        interleave_channels(g, vb, px, c, dst, |ch| &x[ch * plane + y * w..][..w]);
                    }
                    Part::Packed(x, c) => {
                        let ppx = c.next_multiple_of(g) * vb;
                        copy_pixels(&x[y * w * ppx..][..w * ppx], dst, w, px);
                    }
                }
                c0 += p.channels();
            }
        });
    }

    /// Runs `f(y, row)` on every interior row, in blocks of rows split across the kernels'
    /// team if one is set.
    fn for_each_row(&self, interior: &mut [u8], f: impl Fn(usize, &mut [u8]) + Sync + Send) {
        // Rows per block: enough that a block outweighs handing it to another thread.
        const ROWS: usize = 4;
        let rb = self.row_bytes();
        let blocks: Vec<_> = interior.chunks_mut(rb * ROWS).enumerate().collect();
        super::threads::for_each_item(blocks, |(b, rows)| {
            rows.chunks_mut(rb).enumerate().for_each(|(y, row)| f(b * ROWS + y, row))
        });
    }
}

/// [`Layout::concat`] into a new tensor (`[layout.len()]` bytes), not zeroed first.
///
/// # Errors
/// If the tensor cannot be allocated.
pub fn concat_image(layout: &Layout, zp: u8, parts: &[Part]) -> TractResult<Tensor> {
    // SAFETY: u8 has no invalid bit patterns, and `concat` writes every byte before the
    // tensor is returned: the padding rows and columns are filled, and each interior pixel's
    // channels are written by the parts, which must add up to `in_c` (asserted), the last
    // one's k-group rounding included (kernels/tests/concat_image.rs: the same bytes over any prior content).
    let mut out = unsafe { Tensor::uninitialized::<u8>(&[layout.len()])? };
    layout.concat(zp, parts, out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?);
    Ok(out)
}

/// `w` pixels of `src.len() / w` bytes, packed, into the first bytes of each `px`-byte pixel
/// of `dst`; as fixed-size moves for the usual pixel sizes (a call to `memcpy` per pixel
/// took longer than the copy).
fn copy_pixels(src: &[u8], dst: &mut [u8], w: usize, px: usize) {
    fn fixed<const N: usize>(src: &[u8], dst: &mut [u8], px: usize) {
        for (xx, s) in src.chunks_exact(N).enumerate() {
            let d: &mut [u8; N] = (&mut dst[xx * px..][..N]).try_into().expect("N bytes");
            *d = s.try_into().expect("N bytes");
        }
    }
    match src.len() / w {
        16 => fixed::<16>(src, dst, px),
        32 => fixed::<32>(src, dst, px),
        64 => fixed::<64>(src, dst, px),
        128 => fixed::<128>(src, dst, px),
        256 => fixed::<256>(src, dst, px),
        ppx => {
            for (xx, s) in src.chunks_exact(ppx).enumerate() {
                dst[xx * px..][..ppx].copy_from_slice(s);
            }
        }
    }
}

/// One input of [`Layout::concat`].
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// `[c][in_h][in_w]` bytes, and `c`.
    Nchw(&'a [u8], usize),
    /// Channels-last pixels of `c` channels rounded up to k-groups, unpadded, and `c`.
    Packed(&'a [u8], usize),
}

impl Part<'_> {
    fn channels(&self) -> usize {
        match *self {
            Part::Nchw(_, c) | Part::Packed(_, c) => c,
        }
    }

    fn len(&self) -> usize {
        match *self {
            Part::Nchw(x, _) | Part::Packed(x, _) => x.len(),
        }
    }
}

/// Channel `c`'s row of pixels, `channel_row(c)`, into byte `c * vb` of each `px`-byte pixel
/// of `row`, for `c` in `0..in_c`, 16 pixels at a time through an SSE2 interleave when the
/// row has that many. `row` may start inside a pixel (a later part of a concatenation).
fn interleave_channels<'a>(
    g: usize,
    vb: usize,
    px: usize,
    in_c: usize,
    row: &mut [u8],
    channel_row: impl Fn(usize) -> &'a [u8],
) {
    let w = if in_c == 0 { return } else { channel_row(0).len() };
    let src = |c: usize, x0: usize| -> &[u8; 16] { channel_row(c)[x0..][..16].try_into().expect("16 bytes") };
    for c0 in (0..in_c).step_by(g) {
        // A partial last group repeats its last channel: those lanes have zero weights.
        let ch = |t: usize| (c0 + t).min(in_c - 1);
        if w >= 16 {
            let mut q = [0u8; 64];
            let mut x0 = 0;
            loop {
                // The last 16 pixels end at the row's end, overlapping the previous ones.
                let at = x0.min(w - 16);
                if g == 4 {
                    interleave4([src(ch(0), at), src(ch(1), at), src(ch(2), at), src(ch(3), at)], &mut q);
                } else {
                    interleave2([src(ch(0), at), src(ch(1), at)], &mut q);
                }
                for (j, v) in q.chunks_exact(4).enumerate() {
                    row[(at + j) * px + c0 * vb..][..4].copy_from_slice(v);
                }
                if at + 16 == w {
                    break;
                }
                x0 += 16;
            }
        } else {
            for xx in 0..w {
                for t in 0..g {
                    let at = xx * px + (c0 + t) * vb;
                    row[at] = channel_row(ch(t))[xx];
                    if vb == 2 {
                        row[at + 1] = 0;
                    }
                }
            }
        }
    }
}

/// Writes the padded channels-last image of `x` (`[in_c][in_h][in_w]` u8) for `s` into `out`,
/// reusing its allocation.
pub fn image(isa: Isa, s: &ConvShape, x: &[u8], zp: u8, out: &mut Vec<u8>) {
    assert_eq!(x.len(), s.in_c * s.in_h * s.in_w, "image is not in_c x in_h x in_w");
    let l = Layout::of(isa, s);
    out.resize(l.len(), 0);
    let interior = l.fill_top_bottom(zp, out);
    let (plane, w) = (s.in_h * s.in_w, s.in_w);
    l.for_each_row(interior, |y, row| l.pack_row(zp, row, |c| &x[c * plane + y * w..][..w]));
}

/// [`interleave4_scalar`] on SIMD.
pub fn interleave4(rows: [&[u8; 16]; 4], out: &mut [u8; 64]) {
    #[cfg(target_arch = "x86_64")]
    super::x86_64::interleave4(rows, out);
    #[cfg(target_arch = "aarch64")]
    super::aarch64::interleave4(rows, out);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    interleave4_scalar(rows, out);
}

/// [`interleave2_scalar`] on SIMD.
pub fn interleave2(rows: [&[u8; 16]; 2], out: &mut [u8; 64]) {
    #[cfg(target_arch = "x86_64")]
    super::x86_64::interleave2(rows, out);
    #[cfg(target_arch = "aarch64")]
    super::aarch64::interleave2(rows, out);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    interleave2_scalar(rows, out);
}

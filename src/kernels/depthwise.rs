//! Depthwise convolution (`group == in_c == out_c`: YOLO11's and YOLO26's head, YOLOv10's
//! SCDown and CIB blocks, C2PSA's positional conv) on the same padded channels-last image and
//! epilogue as the dense kernels. Each output channel reads only its own input channel, so
//! a block of [`OC_BLOCK`] channels is one vector of contiguous bytes per tap: portable Rust
//! the compiler vectorizes, compiled again for AVX-512 and AVX2 (`x86_64::widest!`), exact
//! in i32 for any int8 weights. Depthwise convs are about 1% of YOLO11n's multiply-adds, but
//! on the baseline build's scalar code they took 14% of its int8 time.

use super::OC_BLOCK;

/// A depthwise conv's weights, per channel block, per tap: `OC_BLOCK` i16 (zero past the
/// channel count).
#[derive(Debug, Clone)]
pub struct DepthwiseWeights {
    pub taps: usize,
    pub data: Vec<[i16; OC_BLOCK]>,
}

impl DepthwiseWeights {
    /// `w` is `[c][1][kh][kw]`, as in ONNX.
    pub fn new(w: &[i8], channels: usize, taps: usize) -> DepthwiseWeights {
        assert_eq!(w.len(), channels * taps, "weights are not channels x kh x kw");
        let blocks = channels.div_ceil(OC_BLOCK);
        let mut data = vec![[0i16; OC_BLOCK]; blocks * taps];
        for c in 0..channels {
            for t in 0..taps {
                data[(c / OC_BLOCK) * taps + t][c % OC_BLOCK] = i16::from(w[c * taps + t]);
            }
        }
        DepthwiseWeights { taps, data }
    }

    pub fn block(&self, b: usize) -> &[[i16; OC_BLOCK]] {
        &self.data[b * self.taps..][..self.taps]
    }
}

/// The image's values as the kernels see them: u8, or little-endian u16 for the pairs
/// layout, less `offset` (the shifted kernels' 128; their zero point moves with it).
#[derive(Debug, Clone, Copy)]
pub struct Pixels<'a> {
    pub img: &'a [u8],
    pub value_bytes: usize,
    pub offset: i32,
}

/// Where one output row of a channel block reads: pixel `ox` at byte `base + ox * step` plus
/// each tap's offset, channels `c0..c0 + lanes`, weights `w` per tap, sums from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub px: Pixels<'a>,
    pub base: usize,
    pub step: usize,
    pub taps: &'a [usize],
    pub w: &'a [[i16; OC_BLOCK]],
    pub start: &'a [i32; OC_BLOCK],
    pub c0: usize,
    pub lanes: usize,
}

/// `out[ox] = start + sum_taps x * w` for the row `r`, on the widest vectors this CPU has
/// (`x86_64::widest!`; the baseline x86_64 build has no 32-bit vector multiply, and this ran
/// at about 150 cycles per pixel there): integer sums, the same on every width as the
/// portable loop, [`row_scalar`].
pub fn row(r: &Row, out: &mut [[i32; OC_BLOCK]]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = super::x86_64::widest!((r: &Row, out: &mut [[i32; OC_BLOCK]]) -> () => row_body) {
        return;
    }
    row_body(r, out)
}

/// The portable twin of [`row`] (for the tests).
#[cfg(test)]
pub fn row_scalar(r: &Row, out: &mut [[i32; OC_BLOCK]]) {
    row_body(r, out)
}

#[inline(always)]
fn row_body(r: &Row, out: &mut [[i32; OC_BLOCK]]) {
    let (px, vb) = (r.px, r.px.value_bytes);
    if vb == 1 && r.lanes == OC_BLOCK {
        // The common case apart, its sums in a local array: the compiler keeps them in one
        // vector and vectorizes the taps (with the general loop's branches inside, it did not).
        for (ox, acc) in out.iter_mut().enumerate() {
            let p = r.base + ox * r.step + r.c0;
            let mut sums = *r.start;
            for (&t, wt) in r.taps.iter().zip(r.w) {
                let x: &[u8; OC_BLOCK] = px.img[p + t..][..OC_BLOCK].try_into().expect("a block of bytes");
                for o in 0..OC_BLOCK {
                    sums[o] += (i32::from(x[o]) - px.offset) * i32::from(wt[o]);
                }
            }
            *acc = sums;
        }
        return;
    }
    for (ox, acc) in out.iter_mut().enumerate() {
        *acc = *r.start;
        let p = r.base + ox * r.step + r.c0 * vb;
        for (&t, wt) in r.taps.iter().zip(r.w) {
            let at = p + t;
            for o in 0..r.lanes {
                let v = if vb == 1 {
                    i32::from(px.img[at + o])
                } else {
                    i32::from(u16::from_le_bytes([px.img[at + 2 * o], px.img[at + 2 * o + 1]]))
                };
                acc[o] += (v - px.offset) * i32::from(wt[o]);
            }
        }
    }
}

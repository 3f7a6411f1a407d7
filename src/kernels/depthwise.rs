//! Depthwise convolution (`group == in_c == out_c`: YOLO11's and YOLO26's head, YOLOv10's
//! SCDown and CIB blocks, C2PSA's positional conv) on the same padded channels-last image and
//! epilogue as the dense kernels. Each output channel reads only its own input channel, so
//! a block of [`OC_BLOCK`] channels is one vector of contiguous bytes per tap: portable Rust
//! the compiler vectorizes, exact in i32 for any int8 weights and no `unsafe` to twin.
//! Depthwise convs are about 1% of YOLO11n's multiply-adds.

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

/// One output row of channel block `c0..c0 + lanes`: `out[ox] = start + sum_taps x * w`,
/// pixel `ox` at byte `base + ox * step` plus each tap's offset.
#[allow(clippy::too_many_arguments)]
pub fn row(
    px: Pixels,
    base: usize,
    step: usize,
    taps: &[usize],
    w: &[[i16; OC_BLOCK]],
    start: &[i32; OC_BLOCK],
    c0: usize,
    lanes: usize,
    out: &mut [[i32; OC_BLOCK]],
) {
    let vb = px.value_bytes;
    for (ox, acc) in out.iter_mut().enumerate() {
        *acc = *start;
        let p = base + ox * step + c0 * vb;
        for (&t, wt) in taps.iter().zip(w) {
            let at = p + t;
            if vb == 1 && lanes == OC_BLOCK {
                let x: &[u8; OC_BLOCK] = px.img[at..at + OC_BLOCK].try_into().expect("a block of bytes");
                for o in 0..OC_BLOCK {
                    acc[o] += (i32::from(x[o]) - px.offset) * i32::from(wt[o]);
                }
            } else {
                for o in 0..lanes {
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
}

//! The safe entry points to the SIMD kernels check their operands' lengths themselves, with
//! sums that cannot wrap: offsets whose true sum is past usize, which a release build would
//! wrap to a small number, are refused, not read or written through raw pointers.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::*;
use crate::kernels::epilogue::{row, Affine, Dest};
use crate::kernels::fconv::{ftile, gather_pixels, FIsa};
use crate::kernels::quantize::Quantizer;
use crate::kernels::{block_len, span, tile_end, tiles};

/// A step that makes pixel 2 of a tile `2 * HALF = 2^64` bytes on: 0 once wrapped.
const HALF: usize = 1 << (usize::BITS - 1);

fn panics(what: &str, f: impl FnOnce()) {
    assert!(catch_unwind(AssertUnwindSafe(f)).is_err(), "{what} ran on operands past usize");
}

#[test]
fn reaches_past_usize_are_none() {
    assert_eq!(tile_end(4, 3, 10, &[0, 7], 2, 4), Some(4 + 2 * 10 + 7 + 8));
    assert_eq!(tile_end(0, 1, HALF, &[], 0, 4), Some(0));
    assert_eq!(tile_end(0, 3, HALF, &[0], 1, 4), None);
    assert_eq!(tile_end(usize::MAX, 1, 0, &[1], 0, 4), None);
    assert_eq!(tile_end(0, 1, 0, &[0], usize::MAX / 2, 4), None);
    assert_eq!(block_len(&[0; 9], HALF / 8, 64), None);
    assert_eq!((span(0, HALF, 16), span(1, HALF, 16), span(3, HALF, 16)), (Some(0), Some(16), None));
}

#[test]
fn tiles_refuse_offsets_that_wrap() {
    let x = vec![0u8; 4096];
    let w = vec![0u8; 9 * 4 * WGROUP_BYTES];
    let init = [0; OC_BLOCK];
    for isa in available() {
        let mut acc = vec![[0; OC_BLOCK]; 3];
        panics("tile with a wrapping step", || tile(isa, &x, 0, HALF, &[0], 1, &w, &init, &mut acc));
        panics("tile with a wrapping tap", || tile(isa, &x, 0, 4, &[usize::MAX - 2], 1, &w, &init, &mut acc));
        // 2^62 + 1 groups (on 64 bits): a tap's `4 * groups` bytes wrap to 4, the weight
        // block's `9 * 64 * groups` to 576.
        let groups = (1 << (usize::BITS - 2)) + 1;
        panics("tile with wrapping groups", || tile(isa, &x, 0, 4, &[0; 9], groups, &w, &init, &mut acc));
    }
    for isa in available() {
        // Runs of tiles, checked once for the whole run: its last pixel past the image, a
        // step that wraps, and (below) the run just inside.
        let mut acc = vec![[0; OC_BLOCK]; 17];
        panics("tiles past the image", || tiles(isa, &x, 0, 256, &[0], 1, &w, &init, &mut acc));
        panics("tiles with a wrapping step", || tiles(isa, &x, 0, HALF, &[0], 1, &w, &init, &mut acc));
        tiles(isa, &x, 0, 240, &[0], 1, &w, &init, &mut acc);
    }
    let (xf, wf) = (vec![0f32; 4096], vec![0f32; 9 * 16 * OC_BLOCK]);
    for isa in FIsa::all().into_iter().filter(|i| i.available()) {
        let mut acc = vec![[0f32; OC_BLOCK]; 3];
        let init = [0f32; OC_BLOCK];
        panics("ftile with a wrapping step", || ftile(isa, &xf, 0, HALF, &[0], 1, &wf, &init, &mut acc));
        panics("ftile with a wrapping tap", || ftile(isa, &xf, 0, 1, &[usize::MAX], 1, &wf, &init, &mut acc));
    }
}

#[test]
fn epilogues_and_gathers_refuse_strides_that_wrap() {
    let acc = vec![[1; OC_BLOCK]; 3];
    let f = Affine { scale: [0.5; OC_BLOCK], bias: [0.0; OC_BLOCK], silu: false };
    let q = Quantizer::new(0.1, 3);
    let mut out = vec![0u8; 64];
    panics("an epilogue with a wrapping stride", || row(&acc, &f, Dest::U8 { out: &mut out, stride: HALF, q }));
    let y = vec![[1f32; OC_BLOCK]; 3];
    panics("a quantize with a wrapping stride", || crate::kernels::epilogue::quantize_pixels(&y, &q, &mut out, HALF));
    // 9 pixels: 8 for the AVX2 transpose, and `8 * HALF` wraps to 0.
    let r = [1f32; 9];
    let rows: [&[f32]; 8] = [&r; 8];
    let mut floats = vec![0f32; 64];
    panics("a gather with a wrapping stride", || gather_pixels(&rows, &mut floats, HALF));
}

/// The SIMD image transform of int8 Winograd checks its farthest read and write.
#[cfg(target_arch = "x86_64")]
#[test]
fn winograd_image_transform_refuses_blocks_past_its_operands() {
    use crate::kernels::x86_64::winograd8::{input_row, Row};
    // A 6 x 10 image of 16 u8 channels: 2 blocks of 4 x 6 pixels a block row.
    let img = vec![0u8; 6 * 10 * 16];
    let row = Row { vb: 1, px: 16, wp: 10, y0: 2, tiles: 2, channels: 16, cp: 16, plane: 32 };
    let mut v = vec![0i16; 24 * 32];
    assert!(input_row(&img, &row, &mut v));
    panics("a block row past the image", || {
        input_row(&img, &Row { y0: 3, ..row }, &mut v);
    });
    panics("a block past the row", || {
        input_row(&img, &Row { tiles: 3, ..row }, &mut v);
    });
    panics("a plane whose end wraps", || {
        input_row(&img, &Row { plane: usize::MAX / 8, ..row }, &mut v);
    });
    panics("values past the output", || {
        input_row(&img, &row, &mut v[..24 * 32 - 1]);
    });
}

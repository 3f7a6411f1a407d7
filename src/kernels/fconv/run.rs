//! Running an [`FConv`]: the padded channels-last image, then bands of output rows (in
//! parallel on the kernels' team), each row of each channel block through the micro-kernel and
//! the epilogue into every target that reads it.

use std::cell::Cell;
use std::ops::Range;

use tract_onnx::prelude::*;

use super::{ftile, gather_pixels, winograd, FConv};
use crate::kernels::bands::{band_rows, transpose_into};
use crate::kernels::silu::silu_in_place;
use crate::kernels::{threads, OC_BLOCK};

thread_local! {
    /// The padded image of the last fp32 convolution on this thread, kept for its allocation.
    static IMAGE: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// One of a convolution's outputs: channels `first..` of its result, `[n][oh][ow]`.
#[derive(Debug)]
pub struct FTarget<'a> {
    /// A multiple of [`OC_BLOCK`].
    pub first: usize,
    pub out: &'a mut [f32],
}

/// Channels `first..first + n` of a `[C][H][W]` tensor. A convolution's input is one or more,
/// in order: the inputs of a Concat it reads, or a Split's slice, read in place.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub data: &'a [f32],
    pub first: usize,
    pub n: usize,
}

/// A target's rows of one band: per channel, the band's rows.
struct Share<'a> {
    first: usize,
    rows: Vec<&'a mut [f32]>,
}

impl FConv {
    /// The channels of `x`, in order, into the padded channels-last image `img`, zero padding
    /// (only the padding is written besides the pixels: `img` keeps its allocation).
    ///
    /// # Panics
    /// If the parts do not hold `in_c` channels of `in_h x in_w`.
    pub fn pack(&self, x: &[Part], img: &mut Vec<f32>) {
        let s = &self.shape;
        let plane = s.in_h * s.in_w;
        let planes: Vec<&[f32]> = x
            .iter()
            .flat_map(|p| {
                assert!(
                    p.data.len() >= (p.first + p.n) * plane,
                    "input part is not {} channels of {plane}",
                    p.first + p.n
                );
                (p.first..p.first + p.n).map(move |c| &p.data[c * plane..][..plane])
            })
            .collect();
        assert_eq!(planes.len(), s.in_c, "input parts are not in_c channels");
        let (c, wp) = (s.in_c, self.img_w);
        img.resize(self.image_len(), 0.0);
        img.truncate(self.image_len());
        let (top, rest) = img.split_at_mut(s.pad[0] * wp * c);
        top.fill(0.0);
        let (body, bottom) = rest.split_at_mut(s.in_h * wp * c);
        bottom.fill(0.0);
        let rows: Vec<(usize, &mut [f32])> = body.chunks_exact_mut(wp * c).enumerate().collect();
        let per = s.in_h.div_ceil(4 * threads::threads()).max(1);
        let mut groups: Vec<Vec<(usize, &mut [f32])>> = Vec::new();
        for (i, r) in rows.into_iter().enumerate() {
            if i % per == 0 {
                groups.push(Vec::new());
            }
            groups.last_mut().expect("pushed above").push(r);
        }
        threads::for_each_item(groups, |group| {
            for (y, row) in group {
                let (left, rest) = row.split_at_mut(s.pad[1] * c);
                left.fill(0.0);
                let (pixels, right) = rest.split_at_mut(s.in_w * c);
                right.fill(0.0);
                let whole = c / 8 * 8;
                for c0 in (0..whole).step_by(8) {
                    let rows: [&[f32]; 8] = std::array::from_fn(|i| &planes[c0 + i][y * s.in_w..][..s.in_w]);
                    gather_pixels(&rows, &mut pixels[c0..], c);
                }
                for ci in whole..c {
                    let src = &planes[ci][y * s.in_w..][..s.in_w];
                    for (j, &v) in src.iter().enumerate() {
                        pixels[j * c + ci] = v;
                    }
                }
            }
        });
    }

    /// Runs on the channels of `x` and writes each target: channels `first..` of the result,
    /// SiLU applied when `silu`, plus `residual` (`[out_c][oh][ow]`) when given.
    ///
    /// # Panics
    /// If `x`, `residual` or a target has the wrong size, or a target does not start on a block
    /// of [`OC_BLOCK`] channels or ends past `out_c`.
    pub fn run(&self, x: &[Part], silu: bool, residual: Option<&[f32]>, targets: Vec<FTarget>) {
        let s = &self.shape;
        let (oh, ow) = (s.out_h(), s.out_w());
        let plane = oh * ow;
        if let Some(r) = residual {
            assert_eq!(r.len(), s.out_c * plane, "residual is not out_c x oh x ow");
        }
        let mut img = IMAGE.take();
        self.pack(x, &mut img);
        let bands = self.bands();
        let mut parts: Vec<Vec<Share>> = bands.iter().map(|_| Vec::new()).collect();
        for FTarget { first, out } in targets {
            let n = out.len() / plane.max(1);
            assert!(first % OC_BLOCK == 0 && first + n <= s.out_c, "channels {first}..{} of {}", first + n, s.out_c);
            assert_eq!(out.len(), n * plane, "output is not channels x oh x ow");
            for (band, rows) in parts.iter_mut().zip(band_rows(out, plane, ow, &bands)) {
                band.push(Share { first, rows });
            }
        }
        let img_ref = &img;
        let items = self.split_by_blocks(bands, parts);
        threads::for_each_item(items, |(r, blocks, mut p)| self.run_band(img_ref, silu, residual, r, blocks, &mut p));
        IMAGE.set(img);
    }

    /// The work items: each band, and when there are fewer bands than `4 x threads` (a small
    /// map, or Winograd's 4-row units), each band's channel blocks in groups, so that both
    /// threads stay busy to the end. Each group gets its channels' rows of every target.
    #[allow(clippy::type_complexity)]
    fn split_by_blocks<'a>(
        &self,
        bands: Vec<Range<usize>>,
        parts: Vec<Vec<Share<'a>>>,
    ) -> Vec<(Range<usize>, Range<usize>, Vec<Share<'a>>)> {
        let t = threads::threads();
        let (blocks, want) = (self.blocks(), if t > 1 { 4 * t } else { 1 });
        let groups = if bands.len() >= want { 1 } else { want.div_ceil(bands.len()).min(blocks) }.max(1);
        let mut items = Vec::with_capacity(bands.len() * groups);
        for (r, mut rest) in bands.into_iter().zip(parts) {
            for g in 0..groups {
                let (lo, hi) = (g * blocks / groups, (g + 1) * blocks / groups);
                let mut mine = Vec::new();
                for mut share in std::mem::take(&mut rest) {
                    let n = (hi * OC_BLOCK).saturating_sub(share.first).min(share.rows.len());
                    let tail = share.rows.split_off(n);
                    if !tail.is_empty() {
                        rest.push(Share { first: share.first + n, rows: tail });
                    }
                    if n > 0 {
                        mine.push(share);
                    }
                }
                items.push((r.clone(), lo..hi, mine));
            }
        }
        items
    }

    /// Output bands: `4 x threads` of the output rows with a team, else one; for Winograd,
    /// of whole blocks of [`winograd::M`] rows.
    fn bands(&self) -> Vec<Range<usize>> {
        let oh = self.shape.out_h();
        let unit = if self.winograd.is_some() { winograd::M } else { 1 };
        let units = oh.div_ceil(unit);
        let t = threads::threads();
        let n = if t > 1 { (4 * t).min(units) } else { 1 }.max(1);
        (0..n).map(|i| (i * units / n * unit).min(oh)..((i + 1) * units / n * unit).min(oh)).collect()
    }

    fn run_band(
        &self,
        img: &[f32],
        silu: bool,
        residual: Option<&[f32]>,
        r: Range<usize>,
        blocks: Range<usize>,
        parts: &mut [Share],
    ) {
        if let Some(wg) = &self.winograd {
            return self.run_band_winograd(wg, img, silu, residual, r, blocks, parts);
        }
        let s = &self.shape;
        let ow = s.out_w();
        let step = s.stride.1 * s.in_c;
        let row_floats = self.img_w * s.in_c;
        let tp = self.isa.tile_pixels();
        let mut acc = vec![[0f32; OC_BLOCK]; ow];
        for oy in r.clone() {
            let base = oy * s.stride.0 * row_floats;
            for b in blocks.clone() {
                let (w, init) = (self.block(b), self.init(b));
                for (i, chunk) in acc.chunks_mut(tp).enumerate() {
                    ftile(self.isa, img, base + i * tp * step, step, &self.taps, s.in_c, w, init, chunk);
                }
                self.finish_row(&mut acc, oy, b, silu, residual, parts, oy - r.start);
            }
        }
    }

    /// Block rows of 4 output rows: the image blocks transformed once, then per channel
    /// block the products and the output transform, and each of the rows finished as a
    /// direct convolution's.
    #[allow(clippy::too_many_arguments)]
    fn run_band_winograd(
        &self,
        wg: &winograd::Winograd,
        img: &[f32],
        silu: bool,
        residual: Option<&[f32]>,
        r: Range<usize>,
        blocks: Range<usize>,
        parts: &mut [Share],
    ) {
        let s = &self.shape;
        let (ow, m) = (s.out_w(), winograd::M);
        let tiles = ow.div_ceil(m);
        let mut scratch = winograd::Scratch::take(tiles, s.in_c);
        for ty in r.start / m..r.end.div_ceil(m) {
            winograd::transform_input(img, self.img_w, s.in_c, ty, tiles, &mut scratch);
            for b in blocks.clone() {
                winograd::multiply_and_transform_output(wg, self.isa, b, self.init(b), tiles, &mut scratch);
                for i in 0..m {
                    let oy = ty * m + i;
                    if oy < r.end {
                        let row = &mut scratch.rows[i * tiles * m..][..ow];
                        self.finish_row(row, oy, b, silu, residual, parts, oy - r.start);
                    }
                }
            }
        }
        scratch.put();
    }

    /// The epilogue of output row `oy` of channel block `b` (`acc`, pixel-major): SiLU, the
    /// residual, then the transpose into each target reading the block, at its row `y`.
    #[allow(clippy::too_many_arguments)]
    fn finish_row(
        &self,
        acc: &mut [[f32; OC_BLOCK]],
        oy: usize,
        b: usize,
        silu: bool,
        residual: Option<&[f32]>,
        parts: &mut [Share],
        y: usize,
    ) {
        let s = &self.shape;
        let (ow, plane, c0) = (s.out_w(), s.out_h() * s.out_w(), b * OC_BLOCK);
        if silu {
            silu_in_place(acc.as_flattened_mut());
        }
        if let Some(res) = residual {
            for o in 0..(s.out_c - c0).min(OC_BLOCK) {
                let src = &res[(c0 + o) * plane + oy * ow..][..ow];
                for (v, &add) in acc.iter_mut().zip(src) {
                    v[o] += add;
                }
            }
        }
        for p in parts.iter_mut().filter(|p| (p.first..p.first + p.rows.len()).contains(&c0)) {
            let (at, n) = (c0 - p.first, (p.first + p.rows.len() - c0).min(OC_BLOCK));
            transpose_into(acc.as_flattened(), &mut p.rows[at..at + n], y, ow);
        }
    }
}

impl FConv {
    /// Runs like [`FConv::run`] into new `[1, n, oh, ow]` tensors, one per `(first, n)`. They
    /// are not zeroed first: the run writes every element.
    ///
    /// # Errors
    /// If a tensor cannot be allocated.
    ///
    /// # Panics
    /// As [`FConv::run`].
    pub fn run_to_tensors(
        &self,
        x: &[Part],
        silu: bool,
        residual: Option<&[f32]>,
        outputs: &[(usize, usize)],
    ) -> TractResult<Vec<Tensor>> {
        let s = &self.shape;
        let mut tensors = Vec::with_capacity(outputs.len());
        for &(first, n) in outputs {
            assert!(first % OC_BLOCK == 0 && first + n <= s.out_c, "channels {first}+{n} of {s:?}");
            // SAFETY: f32 has no invalid bit patterns, and `run` below writes every element
            // before the tensor is returned: each target's channels (whole blocks from a
            // multiple of 16, asserted) for every output row (the bands cover them all).
            tensors.push(unsafe { Tensor::uninitialized::<f32>(&[1, n, s.out_h(), s.out_w()])? });
        }
        let mut views = tensors.iter_mut().map(|t| t.try_as_plain_ram_mut()).collect::<TractResult<Vec<_>>>()?;
        let mut targets = Vec::with_capacity(views.len());
        for (v, &(first, _)) in views.iter_mut().zip(outputs) {
            targets.push(FTarget { first, out: v.as_slice_mut::<f32>()? });
        }
        self.run(x, silu, residual, targets);
        drop(views);
        Ok(tensors)
    }
}

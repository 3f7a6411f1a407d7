//! A whole 2-D convolution (group 1) from the micro-kernels: the padded channels-last image,
//! every channel block over each output row, zero-point correction and the float epilogue.

use super::bands::{band_rows, transpose_into};
use super::depthwise::{self, DepthwiseWeights};
use super::epilogue::{Affine, Dest};
pub use super::outspec::{OutKind, OutSpec};
use super::pack::{self, Layout, PackedWeights};
use super::quantize::Quantizer;
pub use super::segments::Part;
use super::segments::{self, Segment};
pub use super::shape::ConvShape;
use super::winograd8::{self, Winograd8};
use super::{tiles, Isa, WeightRange, OC_BLOCK};
use std::cell::Cell;
use std::ops::Range;

thread_local! {
    /// The padded image of the last convolution on this thread, kept for its allocation:
    /// a fresh buffer per layer cost page faults on every image.
    static IMAGE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// What happens to `acc - zp * sum(w)` of channel `c`.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// `input_scale * weight_scale[c]`.
    pub scale: &'a [f32],
    /// Float bias (`bias_q[c] * bias_scale[c]`).
    pub bias: &'a [f32],
    /// Apply SiLU (`y * sigmoid(y)`).
    pub silu: bool,
}

/// A convolution's uint8 input.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// `[in_c][in_h][in_w]`, as in the ONNX graph.
    Nchw(&'a [u8]),
    /// Already the padded channels-last image of [`QConv::layout`], from the previous
    /// convolution or quantizer.
    Packed(&'a [u8]),
}

/// Where a convolution's outputs go.
#[derive(Debug)]
pub enum Output<'a> {
    /// Floats `[out_c][oh][ow]`.
    F32(&'a mut [f32]),
    /// Requantized with (scale, zero point), `[out_c][oh][ow]`.
    U8(&'a mut [u8], (f32, u8)),
    /// Requantized, as the padded channels-last image of the next convolution.
    Packed(&'a mut [u8], (f32, u8), Layout),
}

/// A convolution with packed int8 weights, ready to run on uint8 images.
#[derive(Debug, Clone)]
pub struct QConv {
    pub shape: ConvShape,
    pub weights: PackedWeights,
    /// Byte offset of each tap `(ky, kx)` from its output pixel's top-left input pixel in the
    /// padded image.
    taps: Vec<usize>,
    /// k-groups per tap.
    groups: usize,
    /// A depthwise conv's weights (then `weights` holds only the sums).
    depthwise: Option<DepthwiseWeights>,
    /// Input channel parts on their own grids ([`super::segments`]); empty: one grid.
    segments: Vec<Segment>,
    /// Set for a 3x3 stride-1 convolution run as F(2x4, 3x3) ([`super::winograd8`]).
    winograd: Option<Winograd8>,
}

impl QConv {
    /// `w` is `[out_c][in_c][kh][kw]` int8.
    ///
    /// # Panics
    /// If `isa` is not exact for these weights (see [`Isa::exact_for`]) or `w` has the wrong size.
    pub fn new(shape: ConvShape, w: &[i8], isa: Isa) -> QConv {
        let products = winograd8::products_for(isa)
            .filter(|_| shape.in_c >= winograd8::MIN_CHANNELS && super::dispatch::get().winograd);
        QConv::with_winograd(shape, w, isa, products)
    }

    /// [`QConv::new`] with the products of Winograd's F(2x4, 3x3) on `products` (a pairs
    /// kernel) where the shape and weights allow it, or no Winograd for `None`.
    pub(crate) fn with_winograd(shape: ConvShape, w: &[i8], isa: Isa, products: Option<Isa>) -> QConv {
        let weights = PackedWeights::new(isa, w, &shape);
        assert!(isa.exact_for(weights.range), "{isa:?} is not exact for weights of {}", weights.range);
        let winograd = products.filter(|_| winograd8::fits(&shape)).and_then(|p| Winograd8::new(&shape, w, p));
        QConv { winograd, ..QConv::with_weights(shape, weights, None) }
    }

    /// The kernel of the Winograd products, when the convolution runs as F(2x4, 3x3).
    pub fn winograd(&self) -> Option<Isa> {
        self.winograd.as_ref().map(Winograd8::products)
    }

    /// A depthwise convolution (`group == in_c == out_c`), `w` is `[c][1][kh][kw]` int8. It
    /// reads `isa`'s image layout, so it takes and hands over packed images like any other.
    ///
    /// # Panics
    /// If `in_c != out_c` or `w` has the wrong size.
    pub fn depthwise(shape: ConvShape, w: &[i8], isa: Isa) -> QConv {
        assert_eq!(shape.in_c, shape.out_c, "a depthwise conv has as many outputs as inputs");
        let taps = shape.kh * shape.kw;
        let dw = DepthwiseWeights::new(w, shape.out_c, taps);
        let mut sums: Vec<i32> = w.chunks_exact(taps).map(|c| c.iter().map(|&v| i32::from(v)).sum()).collect();
        sums.resize(shape.out_c.next_multiple_of(OC_BLOCK), 0);
        // The depthwise kernel multiplies in i32: exact for any weights.
        let range = WeightRange::of(w, 1, taps);
        let weights = PackedWeights { isa, out_c: shape.out_c, block_bytes: 0, data: Vec::new(), sums, range };
        QConv::with_weights(shape, weights, Some(dw))
    }

    fn with_weights(shape: ConvShape, weights: PackedWeights, depthwise: Option<DepthwiseWeights>) -> QConv {
        let isa = weights.isa;
        let px = pack::padded_channels(isa, shape.in_c) * isa.value_bytes();
        let wp = shape.in_w + shape.pad[1] + shape.pad[3];
        let mut taps = Vec::with_capacity(shape.kh * shape.kw);
        for ky in 0..shape.kh {
            for kx in 0..shape.kw {
                taps.push((ky * shape.dilation.0 * wp + kx * shape.dilation.1) * px);
            }
        }
        let groups = pack::padded_channels(isa, shape.in_c) / isa.k_group();
        QConv { shape, weights, taps, groups, depthwise, segments: Vec::new(), winograd: None }
    }

    /// A 1x1 conv whose input channels come in `parts`, each on its own grid; the sums are
    /// in units of `input_scale` (the finest part's). `Err` says why the kernels cannot;
    /// panics as [`QConv::new`].
    pub fn with_parts(shape: ConvShape, w: &[i8], isa: Isa, parts: &[Part], input_scale: f32) -> Result<QConv, String> {
        let segments = segments::segments(&shape, w, isa, parts, input_scale)?;
        Ok(QConv { segments, ..QConv::with_winograd(shape, w, isa, None) })
    }

    /// The real value of one unit of its sums, over its input scale: 1, or `2^-k` for a
    /// conv of parts ([`segments::unit`]).
    pub fn sum_unit(&self) -> f32 {
        if self.segments.is_empty() {
            1.0
        } else {
            segments::unit(&self.segments)
        }
    }

    pub fn is_depthwise(&self) -> bool {
        self.depthwise.is_some()
    }

    /// Multiply-adds per image.
    pub fn macs(&self) -> u64 {
        let s = &self.shape;
        if self.is_depthwise() {
            (s.out_c * s.kh * s.kw * s.out_h() * s.out_w()) as u64
        } else {
            s.macs()
        }
    }

    pub fn isa(&self) -> Isa {
        self.weights.isa
    }

    /// Computes output rows `rows` of every channel block and calls `emit(oy, block, sums)`
    /// with the zero-point-corrected sums of that row, `sums[ox][o]` for channel
    /// `block * OC_BLOCK + o`. `img` is the padded image, `acc` scratch.
    fn rows(
        &self,
        img: &[u8],
        zp: u8,
        rows: Range<usize>,
        acc: &mut Vec<[i32; OC_BLOCK]>,
        mut emit: impl FnMut(usize, usize, &[[i32; OC_BLOCK]]),
    ) {
        if let Some(wg) = &self.winograd {
            return wg.rows(&self.shape, self.isa(), img, zp, &self.weights.sums, rows, emit);
        }
        let s = &self.shape;
        let isa = self.isa();
        let px = pack::padded_channels(isa, s.in_c) * isa.value_bytes();
        let row_bytes = (s.in_w + s.pad[1] + s.pad[3]) * px;
        let step = s.stride.1 * px;
        acc.resize(s.out_w(), [0; OC_BLOCK]);
        // Starting from -zp * sum(w) subtracts the zero point for free; a kernel that shifts
        // the activations shifts the zero point with them.
        let zp = i32::from(zp) - isa.activation_offset();
        let starts: Vec<[i32; OC_BLOCK]> =
            self.weights.sums.chunks_exact(OC_BLOCK).map(|sums| std::array::from_fn(|o| -zp * sums[o])).collect();
        let mut scratch = Vec::new();
        let pixels = depthwise::Pixels { img, value_bytes: isa.value_bytes(), offset: isa.activation_offset() };
        for oy in rows {
            let base = oy * s.stride.0 * row_bytes;
            for (b, start) in starts.iter().enumerate() {
                if let Some(dw) = &self.depthwise {
                    let (c0, lanes) = (b * OC_BLOCK, (s.out_c - b * OC_BLOCK).min(OC_BLOCK));
                    let r =
                        depthwise::Row { px: pixels, base, step, taps: &self.taps, w: dw.block(b), start, c0, lanes };
                    depthwise::row(&r, acc);
                    emit(oy, b, acc);
                    continue;
                }
                if !self.segments.is_empty() {
                    let w = self.weights.block(b);
                    segments::sums(isa, &self.taps, w, &self.segments, (img, base, step), b, acc, &mut scratch);
                    emit(oy, b, acc);
                    continue;
                }
                tiles(isa, img, base, step, &self.taps, self.groups, self.weights.block(b), start, acc);
                emit(oy, b, acc);
            }
        }
    }

    /// Exact `sum_k (x[k] - zp) * w[c][k]` for every channel and output pixel, `[out_c][oh * ow]`.
    pub fn run_i32(&self, x: &[u8], zp: u8) -> Vec<i32> {
        let s = &self.shape;
        let (oc, op, ow) = (s.out_c, s.out_h() * s.out_w(), s.out_w());
        let mut out = vec![0i32; oc * op];
        let mut img = Vec::new();
        pack::image(self.isa(), s, x, zp, &mut img);
        self.rows(&img, zp, 0..s.out_h(), &mut Vec::new(), |oy, b, sums| {
            for c in b * OC_BLOCK..((b + 1) * OC_BLOCK).min(oc) {
                for (ox, a) in sums.iter().enumerate() {
                    out[c * op + oy * ow + ox] = a[c % OC_BLOCK];
                }
            }
        });
        out
    }

    /// Float outputs `[out_c][oh * ow]`: `(acc - zp * sum(w)) * scale[c] + bias[c]`, then SiLU
    /// if asked.
    pub fn run_f32(&self, x: &[u8], zp: u8, e: Epilogue) -> Vec<f32> {
        let s = &self.shape;
        let mut out = vec![0f32; s.out_c * s.out_h() * s.out_w()];
        self.run_f32_into(x, zp, e, &mut out);
        out
    }

    /// [`QConv::run_f32`] into `out`.
    ///
    /// # Panics
    /// If `out` is not `out_c * oh * ow` long.
    pub fn run_f32_into(&self, x: &[u8], zp: u8, e: Epilogue, out: &mut [f32]) {
        self.run(Input::Nchw(x), zp, e, Output::F32(out));
    }

    /// The float outputs of [`QConv::run_f32`] quantized to uint8 with `scale` and
    /// `zero_point` ([`super::quantize`]), row by row while they are in cache: the same values
    /// as quantizing the float tensor afterwards, without writing and reading it.
    ///
    /// # Panics
    /// If `out` is not `out_c * oh * ow` long.
    pub fn run_u8_into(&self, x: &[u8], zp: u8, e: Epilogue, requant: (f32, u8), out: &mut [u8]) {
        self.run(Input::Nchw(x), zp, e, Output::U8(out, requant));
    }

    /// The image layout this convolution reads ([`pack::image`]).
    pub fn layout(&self) -> Layout {
        Layout::of(self.isa(), &self.shape)
    }

    /// Runs on `x` with zero point `zp` and writes `out`.
    ///
    /// # Panics
    /// If `x` or `out` has the wrong size, or a packed output's layout is not this
    /// convolution's output shape.
    pub fn run(&self, x: Input, zp: u8, e: Epilogue, out: Output) {
        self.run_targets(x, zp, e, None, vec![Target { first: 0, out }]);
    }

    /// Runs on `x` and writes each target: channels `first..` of the result, as many as its
    /// buffer holds (a packed target: its layout's `in_c`). One pass computes every block of
    /// channels once, however many targets read it: a channel Split after a convolution costs
    /// no copies, and a slice can be quantized for the next convolution in the same pass.
    /// `residual` (`[out_c][oh][ow]` floats) is added after the epilogue, as a residual
    /// connection's Add would: every target gets `epilogue + residual`.
    ///
    /// # Panics
    /// If `x`, `residual` or a target has the wrong size, a target does not start on a block
    /// of [`OC_BLOCK`] channels or ends past `out_c`, or a packed layout is not the shape of
    /// its channels.
    pub fn run_targets(&self, x: Input, zp: u8, e: Epilogue, residual: Option<&[f32]>, targets: Vec<Target>) {
        let s = &self.shape;
        if let Some(r) = residual {
            assert_eq!(r.len(), s.out_c * s.out_h() * s.out_w(), "residual is not out_c x oh x ow");
        }
        let mut own = Vec::new();
        let img = match x {
            Input::Packed(img) => {
                assert_eq!(img.len(), self.layout().len(), "packed image is not {:?}", self.layout());
                img
            }
            Input::Nchw(x) => {
                own = IMAGE.take();
                pack::image(self.isa(), &self.shape, x, zp, &mut own);
                &own
            }
        };
        self.run_bands(img, zp, e, residual, targets);
        if !own.is_empty() {
            IMAGE.set(own);
        }
    }

    /// Runs the band `r` of output rows and calls `emit(oy, block, sums, affine)` with each
    /// row of each channel block and that block's epilogue constants.
    fn epilogue_rows(
        &self,
        img: &[u8],
        zp: u8,
        e: Epilogue,
        r: Range<usize>,
        mut emit: impl FnMut(usize, usize, &[[i32; OC_BLOCK]], &Affine),
    ) {
        // Channels past `out_c` have zero sums; scale and bias 0 keep them finite.
        let lane = |v: &[f32], c: usize| v.get(c).copied().unwrap_or(0.0);
        let affines: Vec<Affine> = (0..self.weights.blocks())
            .map(|b| Affine {
                scale: std::array::from_fn(|o| lane(e.scale, b * OC_BLOCK + o)),
                bias: std::array::from_fn(|o| lane(e.bias, b * OC_BLOCK + o)),
                silu: e.silu,
            })
            .collect();
        self.rows(img, zp, r, &mut Vec::new(), |oy, b, sums| emit(oy, b, sums, &affines[b]));
    }

    /// Output bands: `4 x threads` of the output rows with a team, else one; for Winograd,
    /// of whole blocks of two rows.
    fn bands(&self) -> Vec<Range<usize>> {
        let oh = self.shape.out_h();
        let unit = if self.winograd.is_some() { 2 } else { 1 };
        let units = oh.div_ceil(unit);
        let threads = super::threads::threads();
        let n = if threads > 1 { (4 * threads).min(units) } else { 1 }.max(1);
        (0..n).map(|i| (i * units / n * unit).min(oh)..((i + 1) * units / n * unit).min(oh)).collect()
    }

    /// Splits every target into its part for each band of output rows (disjoint slices), then
    /// runs the bands, in parallel on the kernels' own team if one is set
    /// ([`super::threads`]). Per row of each channel block: the epilogue into pixel-major
    /// scratch (floats when a float target reads the block, else straight to uint8), then a
    /// transpose into each `[C][H][W]` target's channel rows, or 16-byte stores into a packed
    /// target's pixels.
    fn run_bands(&self, img: &[u8], zp: u8, e: Epilogue, residual: Option<&[f32]>, targets: Vec<Target>) {
        let bands = self.bands();
        let parts = self.shares(&bands, targets);
        let ow = self.shape.out_w();
        let run_band = |r: Range<usize>, mut parts: Vec<BandShare>| {
            fill_packed_margins(&mut parts, ow);
            self.run_band(img, zp, e, residual, r, &mut parts);
        };
        super::threads::for_each_item(bands.into_iter().zip(parts).collect(), |(r, p)| run_band(r, p));
    }

    /// Each band's share of every target: the rows of each channel, or of the packed image.
    fn shares<'a>(&self, bands: &[Range<usize>], targets: Vec<Target<'a>>) -> Vec<Vec<BandShare<'a>>> {
        let s = &self.shape;
        let (oh, ow, plane) = (s.out_h(), s.out_w(), s.out_h() * s.out_w());
        let mut parts: Vec<Vec<BandShare>> = bands.iter().map(|_| Vec::with_capacity(targets.len())).collect();
        for Target { first, out } in targets {
            assert!(first % OC_BLOCK == 0, "a target starts at channel {first}, not on a block of {OC_BLOCK}");
            let n = match &out {
                Output::F32(o) => o.len() / plane.max(1),
                Output::U8(o, _) => o.len() / plane.max(1),
                Output::Packed(_, _, l) => l.in_c,
            };
            assert!(first + n <= s.out_c, "channels {first}..{} of {} channels", first + n, s.out_c);
            match out {
                Output::F32(o) => {
                    assert_eq!(o.len(), n * plane, "output is not channels x oh x ow");
                    for (band, r) in parts.iter_mut().zip(band_rows(o, plane, ow, bands)) {
                        band.push(BandShare { first, n, dest: ShareDest::F32(r) });
                    }
                }
                Output::U8(o, q) => {
                    assert_eq!(o.len(), n * plane, "output is not channels x oh x ow");
                    for (band, r) in parts.iter_mut().zip(band_rows(o, plane, ow, bands)) {
                        band.push(BandShare { first, n, dest: ShareDest::U8(r, q) });
                    }
                }
                Output::Packed(o, q, l) => {
                    assert!(l.in_h == oh && l.in_w == ow, "{l:?} is not the output of {s:?}");
                    let mut rest = l.fill_top_bottom(q.1, o);
                    for (band, r) in parts.iter_mut().zip(bands) {
                        let (mine, next) = std::mem::take(&mut rest).split_at_mut(r.len() * l.row_bytes());
                        band.push(BandShare { first, n, dest: ShareDest::Packed(mine, q, l) });
                        rest = next;
                    }
                }
            }
        }
        parts
    }

    /// The output rows `r`, each 16-channel block through the epilogue once and written to
    /// every share that reads it.
    fn run_band(
        &self,
        img: &[u8],
        zp: u8,
        e: Epilogue,
        residual: Option<&[f32]>,
        r: Range<usize>,
        parts: &mut [BandShare],
    ) {
        let s = &self.shape;
        let (ow, plane) = (s.out_w(), s.out_h() * s.out_w());
        let first_row = r.start;
        let (mut f, mut t) = (vec![[0f32; OC_BLOCK]; ow], vec![[0u8; OC_BLOCK]; ow]);
        let (zeros, mut gathered) = match residual {
            Some(_) => (vec![0f32; ow], vec![[0f32; OC_BLOCK]; ow]),
            None => (Vec::new(), Vec::new()),
        };
        self.epilogue_rows(img, zp, e, r, |oy, b, sums, affine| {
            let c0 = b * OC_BLOCK;
            let reads = |p: &BandShare| (p.first..p.first + p.n).contains(&c0);
            // Floats first when a float target reads the block or several quantized
            // ones share them.
            let quantized = parts.iter().filter(|p| reads(p) && !matches!(p.dest, ShareDest::F32(_))).count();
            let floats = residual.is_some()
                || quantized > 1
                || parts.iter().any(|p| reads(p) && matches!(p.dest, ShareDest::F32(_)));
            if floats {
                super::epilogue::row(sums, affine, Dest::F32(&mut f));
            }
            if let Some(res) = residual {
                let rows = std::array::from_fn(|o| match c0 + o < s.out_c {
                    true => &res[(c0 + o) * plane + oy * ow..][..ow],
                    false => &zeros[..],
                });
                super::epilogue::add_rows(&rows, &mut f, &mut gathered);
            }
            let block = Block { y: oy - first_row, c0, sums, affine, floats: floats.then_some(&f[..]) };
            for p in parts.iter_mut().filter(|p| reads(p)) {
                p.write(&block, &mut t);
            }
        });
    }
}

/// The left and right padding of a band's rows of a packed image, and the lanes past `in_c`
/// in the last k-group: never read with a weight, but written, so the image holds no stale
/// bytes.
fn fill_packed_margins(parts: &mut [BandShare], ow: usize) {
    for p in parts {
        if let ShareDest::Packed(dst, (_, q_zp), l) = &mut p.dest {
            let px = l.pixel_bytes();
            for row in dst.chunks_exact_mut(l.row_bytes()) {
                l.fill(*q_zp, &mut row[..l.pad[1] * px]);
                l.fill(*q_zp, &mut row[(l.pad[1] + ow) * px..]);
                let cp = l.in_c.next_multiple_of(l.k_group);
                if cp > l.in_c {
                    for pixel in row[l.pad[1] * px..][..ow * px].chunks_exact_mut(px) {
                        l.fill(*q_zp, &mut pixel[l.in_c * l.value_bytes..]);
                    }
                }
            }
        }
    }
}

/// One 16-channel block of one output row, as the epilogue left it.
struct Block<'s> {
    /// The row within the band.
    y: usize,
    /// Its first channel.
    c0: usize,
    sums: &'s [[i32; OC_BLOCK]],
    affine: &'s Affine,
    /// The block's floats, pixel-major, when they were computed (with the residual added).
    floats: Option<&'s [[f32; OC_BLOCK]]>,
}

impl BandShare<'_> {
    /// Writes the channels of `b` this share holds; `t` is scratch for a row of bytes.
    fn write(&mut self, b: &Block, t: &mut [[u8; OC_BLOCK]]) {
        let (at, n) = (b.c0 - self.first, (self.first + self.n - b.c0).min(OC_BLOCK));
        let ow = t.len();
        // Into pixels `stride` bytes apart; the same bits either way (the fused path
        // quantizes the same floats).
        let bytes = |q: (f32, u8), out: &mut [u8], stride: usize| {
            let q = Quantizer::new(q.0, q.1);
            match b.floats {
                Some(f) => super::epilogue::quantize_pixels(f, &q, out, stride),
                None => super::epilogue::row(b.sums, b.affine, Dest::U8 { out, stride, q }),
            }
        };
        match &mut self.dest {
            ShareDest::F32(rows) => {
                let f = b.floats.expect("a float target makes the epilogue compute the floats");
                transpose_into(f.as_flattened(), &mut rows[at..at + n], b.y, ow);
            }
            ShareDest::U8(rows, q) => {
                bytes(*q, t.as_flattened_mut(), OC_BLOCK);
                transpose_into(t.as_flattened(), &mut rows[at..at + n], b.y, ow);
            }
            ShareDest::Packed(dst, q, l) => {
                let (px, vb) = (l.pixel_bytes(), l.value_bytes);
                let row = &mut dst[b.y * l.row_bytes()..][..l.row_bytes()];
                if vb == 1 && n == OC_BLOCK {
                    // A whole block of bytes: straight into the image's pixels.
                    bytes(*q, &mut row[l.pad[1] * px + at..], px);
                    return;
                }
                bytes(*q, t.as_flattened_mut(), OC_BLOCK);
                for (ox, v) in t.iter().enumerate() {
                    let at = (l.pad[1] + ox) * px + at * vb;
                    if vb == 1 {
                        row[at..at + n].copy_from_slice(&v[..n]);
                    } else {
                        for (d, &q) in row[at..at + 2 * n].chunks_exact_mut(2).zip(v) {
                            d.copy_from_slice(&[q, 0]);
                        }
                    }
                }
            }
        }
    }
}

/// One of a convolution's outputs: channels `first..` of its result.
#[derive(Debug)]
pub struct Target<'a> {
    /// A multiple of [`OC_BLOCK`].
    pub first: usize,
    pub out: Output<'a>,
}

/// A target's share of one band of output rows.
struct BandShare<'a> {
    first: usize,
    n: usize,
    dest: ShareDest<'a>,
}

enum ShareDest<'a> {
    /// The band's rows of each channel.
    F32(Vec<&'a mut [f32]>),
    U8(Vec<&'a mut [u8]>, (f32, u8)),
    /// The band's rows of the padded image.
    Packed(&'a mut [u8], (f32, u8), Layout),
}

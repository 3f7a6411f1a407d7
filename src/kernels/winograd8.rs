//! Winograd in integers, exact: the 3x3 stride-1 int8 convolutions of the CPUs without VNNI
//! (AVX2, SSSE3). Each block of 2 x 4 outputs (rows x columns) comes from a 4 x 6 block of
//! the padded uint8 image with 24 multiplies per channel pair instead of 72: F(2, 3) down
//! the columns and F(4, 3) along the rows (Lavin & Gray 2015), 3x fewer products.
//!
//! With `G'` the `G` of each side scaled to integers (x2 for F(2, 3), x24 for F(4, 3)),
//! every transform is in integers: the weights' `G'_y g G'_x^T` is `48 U`, within
//! 3 x 24 x 128 = 9216, and the image's `B_y^T d B_x` within 2 x 10 x 255 = 5100 (i16
//! both); the 24 products per block are a 1x1 convolution over the blocks on the `pmaddwd`
//! kernels ([`Isa::Avx2Madd16`], [`Isa::SseMadd16`]), and `A_y^T m A_x` gives 48 times the
//! outputs. The sums and that transform run in wrapping i32: every step is linear over the
//! integers, so the result is right modulo 2^32, and the true value fits in i32 (checked per
//! convolution when it is built), so it is exact; the division by 48 is a shift by 4 and a
//! multiply by the inverse of 3 modulo 2^32, exact on a multiple of 3. (F(4, 3) both ways
//! would need `576 U`, past i16.)
//!
//! Why it pays: per 32 products the `vpmaddubsw` kernel issues three vector instructions, two
//! of them on the two multiply ports, and the `pmaddwd` kernel four (two multiplies, two
//! adds); the 3x fewer products outweigh that, and the transforms are a few adds a value,
//! shared by all output (image transform) or input (output transform) channels. The VNNI
//! kernels sum four products in one instruction and keep the direct convolution.

use super::shape::ConvShape;
use super::{tiles as run_tiles, Isa, OC_BLOCK, WGROUP_BYTES};

/// Output rows and columns per block.
const MY: usize = 2;
const MX: usize = 4;
/// Image rows and columns per block.
const AY: usize = MY + 2;
const AX: usize = MX + 2;
/// Transform points per block, `[p * AX + q]`.
const XI: usize = AY * AX;
/// Fewer input channels leave the transforms and the short products more work than they
/// save (measured on the COCO yolov8n's 16-channel bottlenecks).
pub const MIN_CHANNELS: usize = 16;
/// What the output transform gives: 48 times the outputs (`2 x 24`).
const SCALE: i64 = 48;
/// The inverse of 3 modulo 2^32: `(3 y) * INV3 = y` in wrapping arithmetic.
const INV3: i32 = 0xAAAA_AAABu32 as i32;

/// `G'_y`: twice Lavin's `G` of F(2, 3) (the points 0, 1, -1, infinity).
const GY: [[i32; 3]; AY] = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];
/// `G'_x`: 24 times Lavin's `G` of F(4, 3) (the points 0, 1, -1, 2, -2, infinity), as in
/// [`super::fconv::winograd`].
const GX: [[i32; 3]; AX] = [[6, 0, 0], [-4, -4, -4], [-4, 4, -4], [1, 2, 4], [1, -2, 4], [0, 0, 24]];

/// The kernel that runs the products for a convolution on `isa` (its image layout stays
/// `isa`'s), or `None` where the direct convolution is the faster.
pub fn products_for(isa: Isa) -> Option<Isa> {
    match isa {
        Isa::Avx2Maddubs | Isa::Avx2Madd16 => Some(Isa::Avx2Madd16),
        Isa::SseMaddubs | Isa::SseMadd16 => Some(Isa::SseMadd16),
        _ => None,
    }
}

/// Whether a convolution of this shape can run as Winograd's: 3x3, stride 1, no dilation,
/// padded by one on every side (so the output has the input's size).
pub fn fits(s: &ConvShape) -> bool {
    (s.kh, s.kw, s.stride, s.dilation, s.pad) == (3, 3, (1, 1), (1, 1), [1; 4])
}

/// The transformed weights: per block of [`OC_BLOCK`] output channels, per transform point,
/// the pairs layout of a 1x1 convolution (`[group][OC_BLOCK][2]` little-endian i16).
#[derive(Debug, Clone)]
pub struct Winograd8 {
    u: Vec<u8>,
    /// Input channels rounded up to pairs.
    cp: usize,
    /// The `pmaddwd` kernel (or its twin) that runs the products.
    products: Isa,
}

impl Winograd8 {
    /// `w` is `[out_c][in_c][3][3]`. `None` when an output could leave i32 (some 1500 input
    /// channels of large weights) or `products` is not a pairs kernel.
    pub fn new(s: &ConvShape, w: &[i8], products: Isa) -> Option<Winograd8> {
        assert_eq!(w.len(), s.out_c * s.in_c * 9, "weights are not out_c x in_c x 3 x 3");
        if products.k_group() != 2 || !products.available() {
            return None;
        }
        let (in_c, cp) = (s.in_c, s.in_c.next_multiple_of(2));
        let groups = cp / 2;
        let block = XI * groups * WGROUP_BYTES;
        let mut u = vec![0u8; s.out_c.div_ceil(OC_BLOCK) * block];
        for c in 0..s.out_c {
            let (b, o) = (c / OC_BLOCK, c % OC_BLOCK);
            let mut bound = 0i64;
            for ci in 0..in_c {
                let g = &w[(c * in_c + ci) * 9..][..9];
                bound += g.iter().map(|&v| i64::from(v).abs()).sum::<i64>();
                for (xi, v) in transform_weights(g).into_iter().enumerate() {
                    let at = b * block + (xi * groups + ci / 2) * WGROUP_BYTES + (o * 2 + ci % 2) * 2;
                    u[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            // 48 times the output fits, so the wrapping sums and output transform are exact.
            if SCALE * 255 * bound > i64::from(i32::MAX) {
                return None;
            }
        }
        Some(Winograd8 { u, cp, products })
    }

    pub fn products(&self) -> Isa {
        self.products
    }

    fn weights(&self, b: usize, xi: usize) -> &[u8] {
        let n = self.cp / 2 * WGROUP_BYTES;
        &self.u[(b * XI + xi) * n..][..n]
    }

    /// For output rows `rows` (from an even row) of every channel block, calls `emit(oy,
    /// block, sums)` with the row's sums `sum (x - zp) w`, as the direct convolution's rows
    /// do. `img` is the padded image of `layout_isa` ([`super::pack::image`]), `sums` the
    /// weights' sums per output channel.
    #[allow(clippy::too_many_arguments)]
    pub fn rows(
        &self,
        s: &ConvShape,
        layout_isa: Isa,
        img: &[u8],
        zp: u8,
        sums: &[i32],
        rows: std::ops::Range<usize>,
        mut emit: impl FnMut(usize, usize, &[[i32; OC_BLOCK]]),
    ) {
        assert!(rows.start.is_multiple_of(MY), "Winograd rows start on a block of {MY}");
        let (oh, ow) = (s.out_h(), s.out_w());
        let tiles = ow.div_ceil(MX);
        let src = Image {
            img,
            vb: layout_isa.value_bytes(),
            px: super::pack::padded_channels(layout_isa, s.in_c) * layout_isa.value_bytes(),
            wp: s.in_w + 2,
            hp: s.in_h + 2,
            zp,
        };
        let starts: Vec<[i32; OC_BLOCK]> =
            sums.chunks_exact(OC_BLOCK).map(|c| std::array::from_fn(|o| -i32::from(zp) * c[o])).collect();
        let mut sc = Scratch::take(tiles, self.cp, ow);
        let (cp, groups) = (self.cp, self.cp / 2);
        for ty in rows.start / MY..rows.end.min(oh).div_ceil(MY) {
            transform_input(&src, ty, tiles, cp, true, &mut sc.v);
            for (b, start) in starts.iter().enumerate() {
                for xi in 0..XI {
                    let w = self.weights(b, xi);
                    let m = &mut sc.m[xi * tiles..(xi + 1) * tiles];
                    run_tiles(
                        self.products,
                        as_bytes(&sc.v),
                        xi * tiles * cp * 2,
                        cp * 2,
                        &[0],
                        groups,
                        w,
                        &[0; OC_BLOCK],
                        m,
                    );
                }
                transform_output(&sc.m, start, tiles, ow, &mut sc.out);
                for (i, row) in sc.out.chunks_exact(ow).enumerate() {
                    let oy = ty * MY + i;
                    if oy < rows.end {
                        emit(oy, b, row);
                    }
                }
            }
        }
        sc.put();
    }
}

/// The bytes of `v`.
fn as_bytes(v: &[i16]) -> &[u8] {
    // SAFETY: i16 has no padding and every bit pattern of its bytes is a u8; u8's alignment
    // is 1, and the length covers exactly the slice's memory.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// `G'_y g G'_x^T` of one 3x3 kernel, `[p * AX + q]`.
fn transform_weights(g: &[i8]) -> [i16; XI] {
    let t: [[i32; 3]; AY] =
        std::array::from_fn(|p| std::array::from_fn(|k| (0..3).map(|i| GY[p][i] * i32::from(g[i * 3 + k])).sum()));
    std::array::from_fn(|xi| {
        let (p, q) = (xi / AX, xi % AX);
        let v: i32 = (0..3).map(|k| t[p][k] * GX[q][k]).sum();
        i16::try_from(v).expect("3 x 24 x 128 fits an i16")
    })
}

/// The padded image a convolution reads.
struct Image<'a> {
    img: &'a [u8],
    /// Bytes per value: 1, or 2 for little-endian u16.
    vb: usize,
    /// Bytes per pixel.
    px: usize,
    wp: usize,
    hp: usize,
    zp: u8,
}

impl Image<'_> {
    /// Channel `c` of padded pixel `(y, x)`; past the image (the last block of an odd size,
    /// whose extra outputs are dropped) the zero point.
    #[inline(always)]
    fn at(&self, y: usize, x: usize, c: usize) -> i16 {
        if y >= self.hp || x >= self.wp {
            return i16::from(self.zp);
        }
        let i = (y * self.wp + x) * self.px + c * self.vb;
        match self.vb {
            1 => i16::from(self.img[i]),
            _ => i16::from_le_bytes([self.img[i], self.img[i + 1]]),
        }
    }
}

/// Scratch of one band, kept per thread for its allocations.
#[derive(Default)]
struct Scratch {
    /// `[xi][tile][cp]`, little-endian.
    v: Vec<i16>,
    /// `[xi][tile][16]`.
    m: Vec<[i32; OC_BLOCK]>,
    /// Two output rows, `[row][ox][16]`.
    out: Vec<[i32; OC_BLOCK]>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> =
        const { std::cell::Cell::new(Scratch { v: Vec::new(), m: Vec::new(), out: Vec::new() }) };
}

impl Scratch {
    fn take(tiles: usize, cp: usize, ow: usize) -> Scratch {
        let mut s = SCRATCH.take();
        s.v.resize(XI * tiles * cp, 0);
        s.m.resize(XI * tiles, [0; OC_BLOCK]);
        s.out.resize(MY * ow, [0; OC_BLOCK]);
        s
    }

    fn put(self) {
        SCRATCH.set(self);
    }
}

/// `B_y^T` (F(2, 3)) of 4 values a lane.
#[inline(always)]
fn bt4<const N: usize>(d: &[[i16; N]; AY]) -> [[i16; N]; AY] {
    let mut out = [[0i16; N]; AY];
    for l in 0..N {
        out[0][l] = d[0][l] - d[2][l];
        out[1][l] = d[1][l] + d[2][l];
        out[2][l] = d[2][l] - d[1][l];
        out[3][l] = d[1][l] - d[3][l];
    }
    out
}

/// `B_x^T` (F(4, 3)) of 6 values a lane, as [`super::fconv::winograd`] writes it.
#[inline(always)]
fn bt6<const N: usize>(d: &[[i16; N]; AX]) -> [[i16; N]; AX] {
    let mut out = [[0i16; N]; AX];
    for l in 0..N {
        let [d0, d1, d2, d3, d4, d5] = [d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]];
        out[0][l] = 4 * d0 - 5 * d2 + d4;
        out[1][l] = -4 * d1 - 4 * d2 + d3 + d4;
        out[2][l] = 4 * d1 - 4 * d2 - d3 + d4;
        out[3][l] = -2 * d1 - d2 + 2 * d3 + d4;
        out[4][l] = 2 * d1 - d2 - 2 * d3 + d4;
        out[5][l] = 4 * d1 - 5 * d3 + d5;
    }
    out
}

/// `B_y^T d B_x` of a block `d[i][j]` into `v` at `at` (`plane` values between transform
/// points): each image row along x first (within 10 x 255), then each column down y.
#[inline(always)]
fn transform_block<const N: usize>(d: &[[[i16; N]; AX]; AY], v: &mut [i16], at: usize, plane: usize) {
    let rows: [[[i16; N]; AX]; AY] = std::array::from_fn(|i| bt6(&d[i]));
    for q in 0..AX {
        let col = [rows[0][q], rows[1][q], rows[2][q], rows[3][q]];
        for (p, vals) in bt4(&col).iter().enumerate() {
            let dst = &mut v[at + (p * AX + q) * plane..][..N];
            for l in 0..N {
                // Little-endian, as the pairs layout is.
                dst[l] = vals[l].to_le();
            }
        }
    }
}

/// Any block, value by value ([`Image::at`]).
#[inline(always)]
fn gather_block<const N: usize>(src: &Image, y0: usize, x0: usize, c0: usize) -> [[[i16; N]; AX]; AY] {
    let mut d = [[[0i16; N]; AX]; AY];
    for (i, row) in d.iter_mut().enumerate() {
        for (j, vals) in row.iter_mut().enumerate() {
            for (l, v) in vals.iter_mut().enumerate() {
                *v = src.at(y0 + i, x0 + j, c0 + l);
            }
        }
    }
    d
}

/// The portable transform of block row `ty`: every block from `simd_tiles` on, and the
/// channels from `simd_channels` on of the blocks before (which the SIMD transform did).
fn transform_input_portable(src: &Image, ty: usize, tiles: usize, cp: usize, done: (usize, usize), v: &mut [i16]) {
    const N: usize = 16;
    let (simd_tiles, simd_channels) = done;
    let plane = tiles * cp;
    let y0 = ty * MY;
    for tx in 0..tiles {
        let x0 = tx * MX;
        let first = if tx < simd_tiles { simd_channels } else { 0 };
        let whole = first + (cp - first) / N * N;
        for c0 in (first..whole).step_by(N) {
            transform_block::<N>(&gather_block::<N>(src, y0, x0, c0), v, tx * cp + c0, plane);
        }
        for c0 in (whole..cp).step_by(2) {
            transform_block::<2>(&gather_block::<2>(src, y0, x0, c0), v, tx * cp + c0, plane);
        }
    }
}

/// `B^T d B` of every block of block row `ty` into `v` (`[xi][tile][cp]`): the blocks wholly
/// inside the image on SIMD vectors where the CPU has them, 16 channels at a time, the rest
/// (an odd size's last blocks, channels past a multiple of 16) in portable code.
fn transform_input(src: &Image, ty: usize, tiles: usize, cp: usize, simd: bool, v: &mut [i16]) {
    #[allow(unused_mut)]
    let mut done = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if simd {
        let y0 = ty * MY;
        let inside = if y0 + AY <= src.hp && src.wp >= AX { ((src.wp - AX) / MX + 1).min(tiles) } else { 0 };
        let channels = cp / 16 * 16;
        let r = super::x86_64::winograd8::Row {
            vb: src.vb,
            px: src.px,
            wp: src.wp,
            y0,
            tiles: inside,
            channels,
            cp,
            plane: tiles * cp,
        };
        if inside > 0 && channels > 0 && super::x86_64::winograd8::input_row(src.img, &r, v) {
            done = (inside, channels);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    transform_input_portable(src, ty, tiles, cp, done, v)
}

/// The transform of block row `ty` of a padded image (`in_c` channels of `layout_isa`'s
/// layout, `in_h` x `in_w` inside), with SIMD and in portable code, for the tests.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn both_transforms(
    img: &[u8],
    layout_isa: Isa,
    in_c: usize,
    in_h: usize,
    in_w: usize,
    zp: u8,
    ty: usize,
) -> (Vec<i16>, Vec<i16>) {
    let src = Image {
        img,
        vb: layout_isa.value_bytes(),
        px: super::pack::padded_channels(layout_isa, in_c) * layout_isa.value_bytes(),
        wp: in_w + 2,
        hp: in_h + 2,
        zp,
    };
    let (tiles, cp) = (in_w.div_ceil(MX), in_c.next_multiple_of(2));
    let mut out = [vec![0i16; XI * tiles * cp], vec![0i16; XI * tiles * cp]];
    for (simd, v) in [true, false].into_iter().zip(&mut out) {
        transform_input(&src, ty, tiles, cp, simd, v);
    }
    let [a, b] = out;
    (a, b)
}

/// `A_y^T` (F(2, 3)) of 4 sums a lane, wrapping (see the module's note).
#[inline(always)]
fn at2(m: &[[i32; OC_BLOCK]; AY]) -> [[i32; OC_BLOCK]; MY] {
    let mut out = [[0i32; OC_BLOCK]; MY];
    for l in 0..OC_BLOCK {
        let (a, b) = (m[1][l], m[2][l]);
        out[0][l] = m[0][l].wrapping_add(a).wrapping_add(b);
        out[1][l] = a.wrapping_sub(b).wrapping_sub(m[3][l]);
    }
    out
}

/// `A_x^T` (F(4, 3)) of 6 sums a lane, wrapping.
#[inline(always)]
fn at4(m: &[[i32; OC_BLOCK]; AX]) -> [[i32; OC_BLOCK]; MX] {
    let mut out = [[0i32; OC_BLOCK]; MX];
    for l in 0..OC_BLOCK {
        let (a, b) = (m[1][l].wrapping_add(m[2][l]), m[1][l].wrapping_sub(m[2][l]));
        let (c, d) = (m[3][l].wrapping_add(m[4][l]), m[3][l].wrapping_sub(m[4][l]));
        out[0][l] = m[0][l].wrapping_add(a).wrapping_add(c);
        out[1][l] = b.wrapping_add(d.wrapping_mul(2));
        out[2][l] = a.wrapping_add(c.wrapping_mul(4));
        out[3][l] = b.wrapping_add(d.wrapping_mul(8)).wrapping_add(m[5][l]);
    }
    out
}

#[inline(always)]
fn transform_output_body(
    m: &[[i32; OC_BLOCK]],
    start: &[i32; OC_BLOCK],
    tiles: usize,
    ow: usize,
    out: &mut [[i32; OC_BLOCK]],
) {
    for tx in 0..tiles {
        // Down the columns first: t[i][q].
        let mut t = [[[0i32; OC_BLOCK]; AX]; MY];
        for q in 0..AX {
            let col: [[i32; OC_BLOCK]; AY] = std::array::from_fn(|p| m[(p * AX + q) * tiles + tx]);
            for (i, v) in at2(&col).into_iter().enumerate() {
                t[i][q] = v;
            }
        }
        for (i, ti) in t.iter().enumerate() {
            for (j, y) in at4(ti).iter().enumerate() {
                let ox = tx * MX + j;
                if ox < ow {
                    let o = &mut out[i * ow + ox];
                    for l in 0..OC_BLOCK {
                        // 48 y: exact 3 y after the shift, y after the inverse of 3.
                        o[l] = (y[l] >> 4).wrapping_mul(INV3).wrapping_add(start[l]);
                    }
                }
            }
        }
    }
}

/// `A_y^T m A_x / 48 + start` of every block into two output rows.
fn transform_output(
    m: &[[i32; OC_BLOCK]],
    start: &[i32; OC_BLOCK],
    tiles: usize,
    ow: usize,
    out: &mut [[i32; OC_BLOCK]],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = super::x86_64::widest!((m: &[[i32; OC_BLOCK]], start: &[i32; OC_BLOCK], tiles: usize, ow: usize, out: &mut [[i32; OC_BLOCK]]) -> () => transform_output_body)
    {
        return;
    }
    transform_output_body(m, start, tiles, ow, out)
}

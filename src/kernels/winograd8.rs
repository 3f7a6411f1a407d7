//! Winograd's F(2x2, 3x3) in integers, exact: the 3x3 stride-1 int8 convolutions of the CPUs
//! without VNNI (AVX2, SSSE3), as ncnn runs them there. Each 2x2 block of outputs comes from
//! a 4x4 block of the padded uint8 image with 16 multiplies per channel pair instead of 36.
//!
//! With `G' = 2G` every transform is in integers: the weights' `G' g G'^T` is `4 U` (within
//! 9 x 128 = 1152: an i16), the image's `B^T d B` sums four bytes with signs (within 1020: an
//! i16), the 16 products per block are a 1x1 convolution over the blocks on the `pmaddwd`
//! kernels ([`Isa::Avx2Madd16`], [`Isa::SseMadd16`], exact i32 sums of i16 pairs), and
//! `A^T m A` gives four times the outputs. That last step runs in wrapping i32: every step is
//! linear over the integers, so the result is right modulo 2^32, and the true value fits
//! (checked per convolution when it is built), so it is exact; the division by 4 is a shift.
//!
//! Why it pays: per 32 products the `vpmaddubsw` kernel issues three vector instructions, two
//! of them on the two multiply ports, and the `pmaddwd` kernel four (two multiplies, two
//! adds) per 32; the 2.25x fewer products outweigh that, and the transforms are a few adds a
//! value, shared by all output (input transform) or input (output transform) channels.
//! The VNNI kernels sum four products in one instruction and keep the direct convolution.

use super::shape::ConvShape;
use super::{tiles as run_tiles, Isa, OC_BLOCK, WGROUP_BYTES};

/// Outputs per block side.
const M: usize = 2;
/// Image values per block side.
const ALPHA: usize = 4;
const XI: usize = ALPHA * ALPHA;
/// Fewer input channels leave the transforms and the short products more work than they
/// save (measured on the COCO yolov8n's 16-channel bottlenecks).
pub const MIN_CHANNELS: usize = 16;
/// The largest `|B^T d B|` of uint8 values: four values with signs.
const MAX_V: i64 = 4 * 255;

/// `G'` (twice Lavin's `G` for the points 0, 1, -1, infinity).
const G2: [[i32; 3]; ALPHA] = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];

/// The kernel that runs the products for a convolution on `isa` (its image layout stays
/// `isa`'s), or `None` where the direct convolution is the faster.
pub fn products_for(isa: Isa) -> Option<Isa> {
    match isa {
        Isa::Avx2Maddubs | Isa::Avx2Madd16 => Some(Isa::Avx2Madd16),
        Isa::SseMaddubs | Isa::SseMadd16 => Some(Isa::SseMadd16),
        _ => None,
    }
}

/// Whether a convolution of this shape can run as F(2x2, 3x3): 3x3, stride 1, no dilation,
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
    /// `w` is `[out_c][in_c][3][3]`. `None` when an output could leave i32 (more than about
    /// 1800 input channels of large weights) or `products` is not a pairs kernel.
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
            let (mut bound_y, mut bound_m) = (0i64, [0i64; XI]);
            for ci in 0..in_c {
                let g = &w[(c * in_c + ci) * 9..][..9];
                bound_y += g.iter().map(|&v| i64::from(v).abs()).sum::<i64>();
                for (xi, v) in transform_weights(g).into_iter().enumerate() {
                    bound_m[xi] += i64::from(v).abs();
                    let at = b * block + (xi * groups + ci / 2) * WGROUP_BYTES + (o * 2 + ci % 2) * 2;
                    u[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            // The products' sums stay in i32 (the twin adds plainly), and four times the
            // output does, so the wrapping output transform is exact.
            let max_m = bound_m.iter().max().copied().unwrap_or(0) * MAX_V;
            if max_m > i64::from(i32::MAX) || 4 * 255 * bound_y > i64::from(i32::MAX) {
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
        assert!(rows.start.is_multiple_of(M), "Winograd rows start on a block of {M}");
        let (oh, ow) = (s.out_h(), s.out_w());
        let tiles = ow.div_ceil(M);
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
        for ty in rows.start / M..rows.end.min(oh).div_ceil(M) {
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
                    let oy = ty * M + i;
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

/// `G' g G'^T` of one 3x3 kernel, `[p * 4 + q]`.
fn transform_weights(g: &[i8]) -> [i16; XI] {
    let t: [[i32; 3]; ALPHA] =
        std::array::from_fn(|p| std::array::from_fn(|k| (0..3).map(|i| G2[p][i] * i32::from(g[i * 3 + k])).sum()));
    std::array::from_fn(|xi| {
        let (p, q) = (xi / ALPHA, xi % ALPHA);
        let v: i32 = (0..3).map(|k| t[p][k] * G2[q][k]).sum();
        i16::try_from(v).expect("9 x 128 fits an i16")
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
        s.out.resize(M * ow, [0; OC_BLOCK]);
        s
    }

    fn put(self) {
        SCRATCH.set(self);
    }
}

/// `B^T` of 4 values a lane.
#[inline(always)]
fn bt<const N: usize>(d: &[[i16; N]; ALPHA]) -> [[i16; N]; ALPHA] {
    let mut out = [[0i16; N]; ALPHA];
    for l in 0..N {
        out[0][l] = d[0][l] - d[2][l];
        out[1][l] = d[1][l] + d[2][l];
        out[2][l] = d[2][l] - d[1][l];
        out[3][l] = d[1][l] - d[3][l];
    }
    out
}

/// `B^T d B` of a block `d[i][j]` into `v` at `at` (`plane` values between transform points).
#[inline(always)]
fn transform_block<const N: usize>(d: &[[[i16; N]; ALPHA]; ALPHA], v: &mut [i16], at: usize, plane: usize) {
    let mut t = [[[0i16; N]; ALPHA]; ALPHA];
    for j in 0..ALPHA {
        let col = [d[0][j], d[1][j], d[2][j], d[3][j]];
        let out = bt(&col);
        for p in 0..ALPHA {
            t[p][j] = out[p];
        }
    }
    for (p, row) in t.iter().enumerate() {
        let out = bt(row);
        for (q, vals) in out.iter().enumerate() {
            let dst = &mut v[at + (p * ALPHA + q) * plane..][..N];
            for l in 0..N {
                // Little-endian, as the pairs layout is.
                dst[l] = vals[l].to_le();
            }
        }
    }
}

/// Any block, value by value ([`Image::at`]).
#[inline(always)]
fn gather_block<const N: usize>(src: &Image, y0: usize, x0: usize, c0: usize) -> [[[i16; N]; ALPHA]; ALPHA] {
    let mut d = [[[0i16; N]; ALPHA]; ALPHA];
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
    let y0 = ty * M;
    for tx in 0..tiles {
        let x0 = tx * M;
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
        let y0 = ty * M;
        let inside = if y0 + ALPHA <= src.hp && src.wp >= ALPHA { ((src.wp - ALPHA) / M + 1).min(tiles) } else { 0 };
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
    let (tiles, cp) = (in_w.div_ceil(M), in_c.next_multiple_of(2));
    let mut out = [vec![0i16; XI * tiles * cp], vec![0i16; XI * tiles * cp]];
    for (simd, v) in [true, false].into_iter().zip(&mut out) {
        transform_input(&src, ty, tiles, cp, simd, v);
    }
    let [a, b] = out;
    (a, b)
}

/// `A^T` of 4 sums a lane, wrapping (see the module's note).
#[inline(always)]
fn at(m: &[[i32; OC_BLOCK]; ALPHA]) -> [[i32; OC_BLOCK]; M] {
    let mut out = [[0i32; OC_BLOCK]; M];
    for l in 0..OC_BLOCK {
        let (a, b) = (m[1][l], m[2][l]);
        out[0][l] = m[0][l].wrapping_add(a).wrapping_add(b);
        out[1][l] = a.wrapping_sub(b).wrapping_sub(m[3][l]);
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
        let mut t = [[[0i32; OC_BLOCK]; ALPHA]; M];
        for q in 0..ALPHA {
            let col: [[i32; OC_BLOCK]; ALPHA] = std::array::from_fn(|p| m[(p * ALPHA + q) * tiles + tx]);
            for (i, v) in at(&col).into_iter().enumerate() {
                t[i][q] = v;
            }
        }
        for (i, ti) in t.iter().enumerate() {
            for (j, y) in at(ti).iter().enumerate() {
                let ox = tx * M + j;
                if ox < ow {
                    let o = &mut out[i * ow + ox];
                    for l in 0..OC_BLOCK {
                        o[l] = (y[l] >> 2) + start[l];
                    }
                }
            }
        }
    }
}

/// `A^T m A / 4 + start` of every block into two output rows.
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

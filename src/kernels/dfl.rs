//! The detect head's distribution focal loss (DFL) decode in one pass: per box side and
//! anchor, the expected bin `sum_i i * softmax(x)_i` of `bins` logits. Exported, it is a
//! reshape, a transpose, a softmax over a strided axis and a 1x1 conv with weights
//! `0..bins`, five ops and three passes over `[4 * bins, anchors]` floats; tract ran them in
//! about 1.3 ms of a 640 inference, most of it serial.
//!
//! Vectorized across anchors (contiguous) with [`super::silu::exp_approx`], terms below
//! `exp(-87)` flushed to 0 as in [`super::softmax`]. One portable loop, compiled again with
//! AVX2 + FMA and AVX-512 + FMA, and unfused with SSE4.1 ([`super::madd`]), each
//! bit-identical to its twin (tested). Sides x anchor ranges run in
//! parallel on the kernels' team.

use super::madd::{by_fusion, madd};
use super::silu::exp_approx;

/// Anchors per pass: the running maxima and sums stay in registers and L1.
const LANES: usize = 64;
/// Anchors per parallel item.
const ITEM: usize = 1024;

#[inline(always)]
fn body<const F: bool>(x: &[f32], bins: usize, anchors: usize, at: usize, out: &mut [f32]) {
    for (c, o) in out.chunks_mut(LANES).enumerate() {
        let a0 = at + c * LANES;
        let len = o.len();
        let row = |i: usize| &x[i * anchors + a0..][..len];
        let mut max = [f32::NEG_INFINITY; LANES];
        for i in 0..bins {
            for (m, &v) in max.iter_mut().zip(row(i)) {
                *m = m.max(v);
            }
        }
        let (mut den, mut num) = ([0f32; LANES], [0f32; LANES]);
        for i in 0..bins {
            let w = i as f32;
            for (((d, n), &v), &m) in den.iter_mut().zip(num.iter_mut()).zip(row(i)).zip(&max) {
                let t = v - m;
                let e = if t < -87.0 { 0.0 } else { exp_approx::<F>(t) };
                *d += e;
                *n = madd::<F>(e, w, *n);
            }
        }
        for ((o, &n), &d) in o.iter_mut().zip(&num).zip(&den) {
            *o = n / d;
        }
    }
}

/// The portable twin: anchors `at..at + out.len()` of one side (`x` is its `[bins, anchors]`).
pub fn side_scalar(x: &[f32], bins: usize, anchors: usize, at: usize, out: &mut [f32]) {
    by_fusion!(body(x, bins, anchors, at, out))
}

/// [`side_scalar`] on the widest vectors this CPU has.
///
/// # Panics
/// If `x` is not `bins * anchors` long or the anchors run past `anchors`.
pub fn side(x: &[f32], bins: usize, anchors: usize, at: usize, out: &mut [f32]) {
    assert!(
        x.len() == bins * anchors && at + out.len() <= anchors,
        "DFL side of {} values, {bins} x {anchors}, anchors {at}+{}",
        x.len(),
        out.len()
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = super::x86_64::widest!((x: &[f32], bins: usize, anchors: usize, at: usize, out: &mut [f32]) -> () => body::<true>, body::<false>)
    {
        return;
    }
    side_scalar(x, bins, anchors, at, out)
}

/// The expected bin of every side and anchor: `x` is `[sides * bins, anchors]`, `out`
/// `[sides, anchors]`.
///
/// # Panics
/// If the lengths disagree with `bins` and `anchors`.
pub fn dfl(x: &[f32], bins: usize, anchors: usize, out: &mut [f32]) {
    assert!(
        x.len() == out.len() * bins && out.len().is_multiple_of(anchors.max(1)),
        "DFL of {} values into {} over {bins} bins x {anchors} anchors",
        x.len(),
        out.len()
    );
    if anchors == 0 || bins == 0 {
        out.fill(0.0);
        return;
    }
    let items: Vec<_> = x
        .chunks_exact(bins * anchors)
        .zip(out.chunks_exact_mut(anchors))
        .flat_map(|(x, o)| o.chunks_mut(ITEM).enumerate().map(move |(i, o)| (x, i * ITEM, o)))
        .collect();
    super::threads::for_each_item(items, |(x, at, o)| side(x, bins, anchors, at, o));
}

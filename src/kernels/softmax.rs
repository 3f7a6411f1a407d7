//! Softmax over the middle axis of `[outer, n, inner]` f32 data, vectorized across the
//! contiguous inner axis: `exp(x - max) / sum(exp(x - max))`, with [`super::silu::exp_approx`]
//! (within 2 ulp of exp; libm's scalar `expf` per value was most of the op's time) and terms
//! below `exp(-87)` flushed to 0 (subnormals cost x86 a microcode assist each, and they are
//! within 1e-38 of a sum >= 1). One portable loop, compiled again with AVX2 + FMA and
//! AVX-512 + FMA, and unfused with SSE4.1 ([`super::madd`]); the same operations in the same
//! order, so each agrees bit for bit with its twin (tested).
//! Blocks of the outer axis run in parallel on the kernels' team, if one is set.

use super::madd::by_fusion;
use super::silu::exp_approx;

#[inline(always)]
fn body<const F: bool>(x: &[f32], n: usize, inner: usize, out: &mut [f32]) {
    let mut max = x[..inner].to_vec();
    for row in x.chunks_exact(inner).skip(1) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = m.max(v);
        }
    }
    let mut sum = vec![0f32; inner];
    for (xr, or) in x.chunks_exact(inner).zip(out.chunks_exact_mut(inner)).take(n) {
        for (((o, &v), &m), s) in or.iter_mut().zip(xr).zip(&max).zip(sum.iter_mut()) {
            let d = v - m;
            *o = if d < -87.0 { 0.0 } else { exp_approx::<F>(d) };
            *s += *o;
        }
    }
    for or in out.chunks_exact_mut(inner) {
        for (o, &s) in or.iter_mut().zip(&sum) {
            *o /= s;
        }
    }
}

/// The portable twin: one `[n, inner]` block.
pub fn block_scalar(x: &[f32], n: usize, inner: usize, out: &mut [f32]) {
    by_fusion!(body(x, n, inner, out))
}

/// One `[n, inner]` block on the widest vectors this CPU has.
///
/// # Panics
/// If `x` or `out` is not `n * inner` long, or either is zero.
pub fn block(x: &[f32], n: usize, inner: usize, out: &mut [f32]) {
    assert!(n > 0 && inner > 0 && x.len() == n * inner && out.len() == n * inner, "softmax block is not {n} x {inner}");
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = super::x86_64::widest!((x: &[f32], n: usize, inner: usize, out: &mut [f32]) -> () => body::<true>, body::<false>)
    {
        return;
    }
    block_scalar(x, n, inner, out)
}

/// Softmax of `x` (`[outer, n, inner]` flattened) over the middle axis, into `out`.
///
/// # Panics
/// If `x` and `out` differ in length or are not whole blocks of `n * inner`.
pub fn softmax(x: &[f32], n: usize, inner: usize, out: &mut [f32]) {
    let len = n * inner;
    assert!(
        x.len() == out.len() && (len == 0 || x.len().is_multiple_of(len)),
        "softmax of {} values over {n} x {inner} blocks",
        x.len()
    );
    if len == 0 {
        return;
    }
    super::threads::for_each_item(x.chunks(len).zip(out.chunks_mut(len)).collect(), |(x, o)| block(x, n, inner, o));
}

//! `a * b + c` in the float loops of the int8 engine (SiLU's exp, softmax, DFL, the
//! epilogue's scale and bias): fused and rounded once where the CPU multiply-adds in one
//! instruction (AVX2 + FMA, AVX-512, every aarch64 CPU), a multiply then an add where it
//! cannot (x86_64 CPUs without AVX2: the Celeron J / N of NAS boxes, Atoms, Nehalem to Ivy
//! Bridge). There Rust's `mul_add` is a call into a software `fmaf` per value, which made
//! the int8 epilogue alone 20 times slower than tract's whole float simulation of the model.
//! Results of the two differ by an ulp per operation at most; each has its portable twin,
//! and every SIMD form agrees with the twin of its kind bit for bit.

/// `a * b + c`, fused when `FUSED`.
#[inline(always)]
pub fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Whether the float loops fuse their multiply-adds on this CPU (within `QDET_CPU`): where
/// their AVX2 + FMA and AVX-512 forms run, and on every CPU of another architecture.
pub fn fused() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::cpu::{has, Feature::*};
        has(Avx2) && has(Fma)
    }
    #[cfg(not(target_arch = "x86_64"))]
    true
}

/// `$f::<true>(args)` or `$f::<false>(args)` as [`fused`] says: the portable loop of this
/// CPU's kind.
macro_rules! by_fusion {
    ($f:ident($($arg:expr),*)) => {
        if $crate::kernels::madd::fused() {
            $f::<true>($($arg),*)
        } else {
            $f::<false>($($arg),*)
        }
    };
}
pub(crate) use by_fusion;

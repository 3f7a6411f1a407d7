//! The fp32 micro-kernels a CPU can run ([`crate::kernels::fconv`] says what each is).

/// An fp32 micro-kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FIsa {
    /// Portable Rust with fused multiply-adds, the twin of the FMA kernels.
    Scalar,
    /// Portable Rust multiplying then adding, the twin of [`FIsa::Sse`].
    ScalarUnfused,
    /// SSE2 without FMA (a multiply then an add): x86_64 CPUs without AVX2, such as the
    /// Celeron J / N of NAS boxes.
    Sse,
    Avx2,
    Avx512,
    Neon,
}

impl FIsa {
    #[cfg(test)]
    pub fn all() -> [FIsa; 6] {
        [FIsa::Scalar, FIsa::ScalarUnfused, FIsa::Sse, FIsa::Avx2, FIsa::Avx512, FIsa::Neon]
    }

    /// The portable kernel that gives this one's bits.
    #[cfg(test)]
    pub fn twin(self) -> FIsa {
        match self {
            FIsa::Sse | FIsa::ScalarUnfused => FIsa::ScalarUnfused,
            _ => FIsa::Scalar,
        }
    }

    /// The name it is asked for by (`FloatKernel`'s, and `QDET_FKERNEL`'s of the command).
    pub fn name(self) -> &'static str {
        match self {
            FIsa::Scalar => "scalar",
            FIsa::ScalarUnfused => "scalar-unfused",
            FIsa::Sse => "sse",
            FIsa::Avx2 => "avx2",
            FIsa::Avx512 => "avx512",
            FIsa::Neon => "neon",
        }
    }

    pub fn available(self) -> bool {
        use super::cpu::{has, Feature::*};
        match self {
            FIsa::Scalar | FIsa::ScalarUnfused => true,
            FIsa::Sse => cfg!(target_arch = "x86_64"),
            FIsa::Avx2 => has(Avx2) && has(Fma),
            FIsa::Avx512 => has(Avx512F),
            FIsa::Neon => has(Neon),
        }
    }

    /// Output pixels per tile: accumulators to cover the FMA latency on two ports, within
    /// the register file (AVX2: 12 accumulators, 2 weights and a broadcast of 16 registers;
    /// SSE: 8 accumulators, 4 weights, a broadcast and a product of 16; NEON: 20
    /// accumulators and 4 weights of 32).
    pub fn tile_pixels(self) -> usize {
        match self {
            FIsa::Avx512 => 14,
            FIsa::Neon => 5,
            FIsa::Sse => 2,
            _ => 6,
        }
    }
}

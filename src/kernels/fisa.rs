//! The fp32 micro-kernels a CPU can run ([`crate::kernels::fconv`] says what each is).

/// An fp32 micro-kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FIsa {
    /// Portable Rust, the twin.
    Scalar,
    Avx2,
    Avx512,
    Neon,
}

impl FIsa {
    pub fn all() -> [FIsa; 4] {
        [FIsa::Scalar, FIsa::Avx2, FIsa::Avx512, FIsa::Neon]
    }

    /// The name `QDET_FKERNEL` selects it by.
    pub fn name(self) -> &'static str {
        match self {
            FIsa::Scalar => "scalar",
            FIsa::Avx2 => "avx2",
            FIsa::Avx512 => "avx512",
            FIsa::Neon => "neon",
        }
    }

    pub fn available(self) -> bool {
        use super::cpu::{has, Feature::*};
        match self {
            FIsa::Scalar => true,
            FIsa::Avx2 => has(Avx2) && has(Fma),
            FIsa::Avx512 => has(Avx512F),
            FIsa::Neon => has(Neon),
        }
    }

    /// Output pixels per tile: accumulators to cover the FMA latency on two ports, within
    /// the register file (AVX2: 12 accumulators, 2 weights and a broadcast of 16 registers;
    /// NEON: 20 accumulators and 4 weights of 32).
    pub fn tile_pixels(self) -> usize {
        match self {
            FIsa::Avx512 => 14,
            FIsa::Neon => 5,
            _ => 6,
        }
    }

    /// The fastest SIMD kernel on this CPU, or the one `QDET_FKERNEL` names (if available);
    /// `None` when there is none or `QDET_FKERNEL=tract`: then tract runs the convolutions.
    pub fn best() -> Option<FIsa> {
        let wanted = std::env::var("QDET_FKERNEL").ok().filter(|w| !w.is_empty());
        if wanted.as_deref() == Some("tract") {
            return None;
        }
        let named = wanted.as_deref().and_then(|w| FIsa::all().into_iter().find(|i| i.name() == w));
        if let (Some(w), None) = (&wanted, named) {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| eprintln!("qdet: QDET_FKERNEL={w:?} is not an fp32 kernel (tract, scalar, avx2, avx512, neon); using the fastest"));
        }
        match named {
            Some(i) if i.available() => Some(i),
            _ => [FIsa::Avx512, FIsa::Avx2, FIsa::Neon].into_iter().find(|i| i.available()),
        }
    }
}

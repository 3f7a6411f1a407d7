//! The CPU features the kernels dispatch on, probed once per process: the one place that asks
//! the CPU (`is_x86_feature_detected!` / `is_aarch64_feature_detected!`), so every kernel
//! choice reads the same answers.

use std::sync::OnceLock;

/// A feature some kernel needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Avx2,
    Fma,
    Avx512F,
    Avx512Vl,
    Avx512Vnni,
    /// Advanced SIMD: part of every aarch64 CPU.
    Neon,
    /// `SDOT`/`UDOT` (ARMv8.2 FEAT_DotProd).
    DotProd,
    /// `SUDOT`/`USDOT`/`USMMLA` (ARMv8.6 FEAT_I8MM).
    I8mm,
}

const ALL: [Feature; 8] = [
    Feature::Avx2,
    Feature::Fma,
    Feature::Avx512F,
    Feature::Avx512Vl,
    Feature::Avx512Vnni,
    Feature::Neon,
    Feature::DotProd,
    Feature::I8mm,
];

/// Whether this CPU has `f` (false for another architecture's features).
pub fn has(f: Feature) -> bool {
    static PROBED: OnceLock<[bool; ALL.len()]> = OnceLock::new();
    PROBED.get_or_init(|| ALL.map(detect))[f as usize]
}

#[allow(unreachable_code)]
fn detect(f: Feature) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as d;
        return match f {
            Feature::Avx2 => d!("avx2"),
            Feature::Fma => d!("fma"),
            Feature::Avx512F => d!("avx512f"),
            Feature::Avx512Vl => d!("avx512vl"),
            Feature::Avx512Vnni => d!("avx512vnni"),
            _ => false,
        };
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as d;
        return match f {
            Feature::Neon => d!("neon"),
            Feature::DotProd => d!("dotprod"),
            Feature::I8mm => d!("i8mm"),
            _ => false,
        };
    }
    let _ = f;
    false
}

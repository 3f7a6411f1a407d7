//! The CPU features the kernels dispatch on, probed once per process: the one place that asks
//! the CPU (`is_x86_feature_detected!` / `is_aarch64_feature_detected!`), so every kernel
//! choice reads the same answers.
//!
//! A [`Cap`] (the program's choice, `RuntimeOptions::cpu`; the command's `QDET_CPU`) caps
//! those answers at a smaller CPU's: every dispatch (int8 and fp32 tiles, epilogues,
//! transposes, the float loops of `widest!`) then takes that CPU's path, so a capped run
//! executes no instruction of a wider ISA and measures what the smaller CPU would run. (An
//! int8 or fp32 kernel asked for, [`super::dispatch`], is one tile among those left.)

use std::sync::OnceLock;

/// A feature some kernel needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `pmaddubsw`, `pshufb` (every x86_64 CPU since Core 2 but the first Opterons).
    Ssse3,
    /// `pmulld`, `pminud`, `pblendvb` (Penryn and later, Celeron J / N included).
    Sse41,
    Avx2,
    Fma,
    /// VEX `vpdpbusd` on 256-bit vectors (Alder Lake, Intel N100 / N97 / N305, Zen 5).
    AvxVnni,
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

const ALL: [Feature; 11] = [
    Feature::Ssse3,
    Feature::Sse41,
    Feature::Avx2,
    Feature::Fma,
    Feature::AvxVnni,
    Feature::Avx512F,
    Feature::Avx512Vl,
    Feature::Avx512Vnni,
    Feature::Neon,
    Feature::DotProd,
    Feature::I8mm,
];

/// A class of CPU the kernels can be restricted to: they then run what such a CPU would,
/// with the features it has (those this CPU lacks stay off). Set for the process by
/// `RuntimeOptions::cpu`, before the first model is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Cap {
    /// No SIMD kernel: the portable twins.
    Baseline,
    /// SSE4.2, no AVX: Celeron J4125 / N5105 (Gemini and Jasper Lake), Atom, Nehalem.
    Sse4,
    /// AVX2 + FMA, no VNNI: Haswell to Comet Lake, AMD Zen 1-3.
    Avx2,
    /// AVX2 + AVX-VNNI, no AVX-512: Alder Lake-N (N100), Alder and Raptor Lake.
    AvxVnni,
    /// AVX-512F/VL without VNNI: Skylake-X.
    Avx512,
    /// Everything this CPU has (the default).
    #[default]
    Native,
    /// aarch64 NEON only: Cortex-A53, A72.
    Neon,
    /// NEON + dot products: Cortex-A55, A76.
    DotProd,
}

impl Cap {
    const NAMES: [(&'static str, Cap); 8] = [
        ("baseline", Cap::Baseline),
        ("sse4", Cap::Sse4),
        ("avx2", Cap::Avx2),
        ("avxvnni", Cap::AvxVnni),
        ("avx512", Cap::Avx512),
        ("native", Cap::Native),
        ("neon", Cap::Neon),
        ("dotprod", Cap::DotProd),
    ];

    const ALL: [Cap; 8] =
        [Cap::Baseline, Cap::Sse4, Cap::Avx2, Cap::AvxVnni, Cap::Avx512, Cap::Native, Cap::Neon, Cap::DotProd];

    /// The class named `name` (`avx2`, `sse4`, ...: [`Cap::name`]).
    pub(crate) fn parse(name: &str) -> Option<Cap> {
        Cap::NAMES.iter().find(|(n, _)| *n == name).map(|&(_, c)| c)
    }

    /// Its name: `baseline`, `sse4`, `avx2`, `avxvnni`, `avx512`, `native`, `neon`, `dotprod`.
    pub fn name(self) -> &'static str {
        Cap::NAMES.iter().find(|(_, c)| *c == self).map_or("native", |(n, _)| n)
    }

    /// Every class, those of the other architecture included (capping at one of them leaves
    /// the portable kernels).
    pub fn all() -> &'static [Cap] {
        &Cap::ALL
    }

    /// Whether a CPU of this class has `f`.
    pub(crate) fn allows(self, f: Feature) -> bool {
        use Feature::*;
        let x86: &[Feature] = match self {
            Cap::Native => return true,
            Cap::Baseline | Cap::Neon | Cap::DotProd => &[],
            Cap::Sse4 => &[Ssse3, Sse41],
            Cap::Avx2 => &[Ssse3, Sse41, Avx2, Fma],
            Cap::AvxVnni => &[Ssse3, Sse41, Avx2, Fma, AvxVnni],
            Cap::Avx512 => &[Ssse3, Sse41, Avx2, Fma, Avx512F, Avx512Vl],
        };
        let arm: &[Feature] = match self {
            Cap::Neon => &[Neon],
            Cap::DotProd => &[Neon, DotProd],
            _ => &[],
        };
        x86.contains(&f) || arm.contains(&f)
    }

    /// The same cap in tract's terms: the value of `TRACT_CPU_ISA` (the features to take off
    /// its probe) that makes the few ops tract still runs take this class's path too. tract
    /// reads the variable once, at its first kernel choice: a program sets it at start-up,
    /// while it has one thread (the `qdet` command does). `None`: nothing to take off.
    pub fn tract_isa(self) -> Option<&'static str> {
        #[cfg(target_arch = "x86_64")]
        return match self {
            Cap::Baseline | Cap::Sse4 => {
                Some("-avx,-avx2,-fma,-f16c,-avx512f,-avx512vnni,-avxvnni,-avx512fp16,-amx-int8,-amx-bf16")
            }
            Cap::Avx2 => Some("-avx512f,-avx512vnni,-avxvnni,-avx512fp16,-amx-int8,-amx-bf16"),
            Cap::AvxVnni => Some("-avx512f,-avx512vnni,-avx512fp16,-amx-int8,-amx-bf16"),
            Cap::Avx512 => Some("-avx512vnni,-avxvnni,-avx512fp16,-amx-int8,-amx-bf16"),
            Cap::Native | Cap::Neon | Cap::DotProd => None,
        };
        #[cfg(target_arch = "aarch64")]
        return match self {
            Cap::Baseline | Cap::Neon => Some("-fp16,-dotprod,-sve2,-sme,-sme2"),
            Cap::DotProd => Some("-fp16,-sve2,-sme,-sme2"),
            _ => None,
        };
        #[allow(unreachable_code)]
        None
    }
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Cap {
    /// The class a process runs at unless told otherwise: every feature. Miri has no CPU to
    /// probe: the portable kernels are the ones it can interpret.
    pub(crate) fn for_target() -> Cap {
        if cfg!(miri) {
            Cap::Baseline
        } else {
            Cap::Native
        }
    }
}

static CAP: OnceLock<Cap> = OnceLock::new();

/// Fixes the cap at `cap` unless it is fixed already; the cap in force.
pub fn fix_cap(cap: Cap) -> Cap {
    *CAP.get_or_init(|| cap)
}

/// The cap in force, fixed from the first call ([`Cap::for_target`] unless set before).
pub fn cap() -> Cap {
    fix_cap(Cap::for_target())
}

/// Whether this CPU has `f` (false for another architecture's features), within [`cap`].
pub fn has(f: Feature) -> bool {
    static PROBED: OnceLock<[bool; ALL.len()]> = OnceLock::new();
    PROBED.get_or_init(|| ALL.map(|f| detect(f) && cap().allows(f)))[f as usize]
}

/// Whether the CPU itself has `f`, whatever the cap.
#[allow(unreachable_code)]
pub fn detect(f: Feature) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as d;
        return match f {
            Feature::Ssse3 => d!("ssse3"),
            Feature::Sse41 => d!("sse4.1"),
            Feature::Avx2 => d!("avx2"),
            Feature::Fma => d!("fma"),
            Feature::AvxVnni => d!("avxvnni"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_name_the_feature_sets_of_their_cpu_classes() {
        assert_eq!(Cap::all().len(), Cap::NAMES.len());
        for (name, cap) in Cap::NAMES {
            assert_eq!(Cap::parse(name), Some(cap));
            assert_eq!(cap.name(), name);
        }
        assert_eq!(Cap::parse("AVX2"), None);
        // An N100 runs VEX VNNI but no AVX-512; a Skylake-X the reverse.
        assert!(Cap::AvxVnni.allows(Feature::AvxVnni) && !Cap::AvxVnni.allows(Feature::Avx512F));
        assert!(Cap::Avx512.allows(Feature::Avx512F) && !Cap::Avx512.allows(Feature::Avx512Vnni));
        assert!(!Cap::Sse4.allows(Feature::Avx2) && Cap::Sse4.allows(Feature::Ssse3));
        assert!(!Cap::Neon.allows(Feature::DotProd) && Cap::DotProd.allows(Feature::DotProd));
        assert!(ALL.iter().all(|&f| !Cap::Baseline.allows(f) && Cap::Native.allows(f)));
    }
}

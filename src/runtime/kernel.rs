//! The kernels a program can name: [`Kernel`] (integer convolutions) and [`FloatKernel`]
//! (float ones), opaque, by name; what a kernel needs of the weights and how it lays them
//! out stays inside qdet.

use std::fmt;
use std::str::FromStr;

use crate::kernels::fisa::FIsa;
use crate::kernels::Isa;

/// A micro-kernel family of qdet's integer convolutions: `vnni512`, `maddubs`, `dotprod`,
/// ... (the table in docs/performance.md says which CPUs have which). Ask for one with
/// [`crate::Int8::Kernel`] (one model) or [`crate::RuntimeOptions::int8_kernel`] (the
/// process); a conv whose weights it cannot run exactly, or a CPU without it, gets the
/// fastest exact kernel instead.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kernel(Isa);

const KERNELS: [Kernel; 13] = [
    Kernel(Isa::ScalarPairs),
    Kernel(Isa::ScalarQuads),
    Kernel(Isa::ScalarQuadsShifted),
    Kernel(Isa::Avx2Madd16),
    Kernel(Isa::Avx2Maddubs),
    Kernel(Isa::SseMadd16),
    Kernel(Isa::SseMaddubs),
    Kernel(Isa::Avx512VnniYmm),
    Kernel(Isa::Avx512Vnni),
    Kernel(Isa::AvxVnni),
    Kernel(Isa::NeonMull),
    Kernel(Isa::NeonDot),
    Kernel(Isa::NeonI8mm),
];

impl Kernel {
    pub(crate) fn new(isa: Isa) -> Kernel {
        Kernel(isa)
    }

    pub(crate) fn isa(self) -> Isa {
        self.0
    }

    /// Its name, as [`FromStr`] reads it and `QDET_KERNEL` takes it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Whether this CPU runs it (within the CPU class the process is capped at).
    pub fn available(self) -> bool {
        self.0.available()
    }

    /// Every kernel, those of other CPUs and architectures included.
    pub fn all() -> &'static [Kernel] {
        &KERNELS
    }
}

/// A micro-kernel of qdet's float convolutions: `avx512`, `avx2`, `sse`, `neon`, or the
/// portable `scalar` and `scalar-unfused` (slow: for tests and measurements).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FloatKernel(FIsa);

const FLOAT_KERNELS: [FloatKernel; 6] = [
    FloatKernel(FIsa::Scalar),
    FloatKernel(FIsa::ScalarUnfused),
    FloatKernel(FIsa::Sse),
    FloatKernel(FIsa::Avx2),
    FloatKernel(FIsa::Avx512),
    FloatKernel(FIsa::Neon),
];

impl FloatKernel {
    pub(crate) fn new(isa: FIsa) -> FloatKernel {
        FloatKernel(isa)
    }

    pub(crate) fn isa(self) -> FIsa {
        self.0
    }

    /// Its name, as [`FromStr`] reads it and `QDET_FKERNEL` takes it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Whether this CPU runs it (within the CPU class the process is capped at).
    pub fn available(self) -> bool {
        self.0.available()
    }

    /// Every float kernel, those of other architectures included.
    pub fn all() -> &'static [FloatKernel] {
        &FLOAT_KERNELS
    }
}

/// A name [`Kernel`], [`FloatKernel`] or [`crate::CpuClass`] does not know, with the ones
/// it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    name: String,
    what: &'static str,
    known: Vec<&'static str>,
}

impl UnknownName {
    pub(crate) fn new(name: &str, what: &'static str, known: impl IntoIterator<Item = &'static str>) -> UnknownName {
        UnknownName { name: name.into(), what, known: known.into_iter().collect() }
    }

    /// The name asked for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names there are.
    pub fn known(&self) -> &[&'static str] {
        &self.known
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not {} ({})", self.name, self.what, self.known.join(", "))
    }
}

impl std::error::Error for UnknownName {}

/// The name-based traits of an opaque kernel type.
macro_rules! named {
    ($t:ident, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.name())
            }
        }

        impl FromStr for $t {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<$t, UnknownName> {
                $t::all()
                    .iter()
                    .copied()
                    .find(|k| k.name() == s)
                    .ok_or_else(|| UnknownName::new(s, $what, $t::all().iter().map(|k| k.name())))
            }
        }
    };
}

named!(Kernel, "a kernel");
named!(FloatKernel, "an fp32 kernel");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_found_by_their_names_and_unknown_names_list_them() {
        assert_eq!(Kernel::all().len(), Isa::all().len());
        for &k in Kernel::all() {
            assert_eq!(k.name().parse::<Kernel>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
        }
        for &k in FloatKernel::all() {
            assert_eq!(k.name().parse::<FloatKernel>(), Ok(k));
        }
        let e = "avx3".parse::<Kernel>().unwrap_err();
        assert!(e.to_string().starts_with("\"avx3\" is not a kernel (scalar-pairs, scalar, "), "{e}");
        assert!(e.known().contains(&"maddubs"));
    }
}

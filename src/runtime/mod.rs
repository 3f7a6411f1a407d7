//! The choices a program makes once for the whole process, before its first model:
//! [`RuntimeOptions`] (the CPU class the kernels run for, a kernel asked for, Winograd,
//! threads per inference), and the kernels it can name ([`Kernel`], [`FloatKernel`]).
//!
//! They are the process's, not a model's, because the CPU probe is cached and the thread
//! team spawned once; a model asks for its own integer kernel with [`crate::Int8::Kernel`].
//! The library reads no environment variable: the `qdet` command turns `QDET_CPU`,
//! `QDET_KERNEL`, `QDET_FKERNEL` and `QDET_NO_WINOGRAD` into these options.

mod kernel;

use std::str::FromStr;

use crate::error::{Error, Result};
pub use crate::kernels::cpu::Cap as CpuClass;
use crate::kernels::dispatch::{self, Dispatch, Fp32};
pub use kernel::{FloatKernel, Kernel, UnknownName};

impl FromStr for CpuClass {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<CpuClass, UnknownName> {
        CpuClass::parse(s).ok_or_else(|| UnknownName::new(s, "a CPU class", CpuClass::all().iter().map(|c| c.name())))
    }
}

/// How float convolutions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FloatConvs {
    /// On the fastest of qdet's float kernels the CPU (class) has; tract's where there is
    /// none.
    #[default]
    Fastest,
    /// On this kernel where the CPU has it, else as `Fastest`.
    Kernel(FloatKernel),
    /// On tract's own convolutions (im2col and a matmul: slower, for comparison).
    Tract,
}

/// The kernels' choices for the process. Build one from [`RuntimeOptions::default`] and the
/// `with_` methods, then [`RuntimeOptions::apply`] it before the first model is loaded:
///
/// ```
/// use qdet::{CpuClass, RuntimeOptions};
///
/// // What an AVX2 laptop runs, on 2 threads per inference.
/// RuntimeOptions::default().with_cpu(CpuClass::Avx2).with_threads(2).apply()?;
/// # Ok::<(), qdet::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeOptions {
    /// The CPU class the kernels run for: this CPU's features, capped at the class's (default
    /// [`CpuClass::Native`]: every feature). A capped run executes no instruction of a wider
    /// ISA in qdet's kernels; tract's own ops follow `TRACT_CPU_ISA`
    /// ([`CpuClass::tract_isa`]).
    pub cpu: CpuClass,
    /// The integer kernel for QDQ models' convs, where the CPU has it and it is exact for a
    /// conv's weights (else the fastest exact one, with a warning on stderr once). Default
    /// `None`: the fastest exact one, conv by conv. [`crate::Int8::Kernel`] overrides it for
    /// one model.
    pub int8_kernel: Option<Kernel>,
    /// How float convolutions run.
    pub fp32: FloatConvs,
    /// Whether 3x3 stride-1 convolutions with 16 input channels or more may run as
    /// Winograd's: F(4x4, 3x3) for float ones, the exact integer F(2x4, 3x3) for int8 ones on
    /// CPUs without VNNI (default `true`; `false` runs them directly, for comparison).
    pub winograd: bool,
    /// Threads one inference runs on, qdet's kernels and tract's ops alike. `None` (the
    /// default) leaves the count as it is: 1 unless set before. Once set, the count stays
    /// for the process: the threads are spawned once.
    pub threads: Option<usize>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions::from_dispatch(Dispatch::default())
    }
}

impl RuntimeOptions {
    /// These options with the kernels capped at CPU class `cpu`.
    pub fn with_cpu(self, cpu: CpuClass) -> Self {
        RuntimeOptions { cpu, ..self }
    }

    /// These options asking for integer kernel `kernel`.
    pub fn with_int8_kernel(self, kernel: Kernel) -> Self {
        RuntimeOptions { int8_kernel: Some(kernel), ..self }
    }

    /// These options with float convolutions run as `fp32` says.
    pub fn with_fp32(self, fp32: FloatConvs) -> Self {
        RuntimeOptions { fp32, ..self }
    }

    /// These options with Winograd on or off.
    pub fn with_winograd(self, winograd: bool) -> Self {
        RuntimeOptions { winograd, ..self }
    }

    /// These options with `threads` threads per inference.
    pub fn with_threads(self, threads: usize) -> Self {
        RuntimeOptions { threads: Some(threads), ..self }
    }

    /// Makes these the process's options. The kernels' choices (all but `threads`) are fixed
    /// by the first call, or by the first model loaded: a later call with other ones is an
    /// error (the same ones again are fine). `threads` is likewise fixed by the first call
    /// that sets it; an error too if 0.
    pub fn apply(&self) -> Result<()> {
        if let Err(fixed) = dispatch::set(self.dispatch()) {
            let fixed = RuntimeOptions { threads: self.threads, ..RuntimeOptions::from_dispatch(fixed) };
            return Err(Error::Invalid(format!(
                "the kernels' options are fixed already (by an earlier apply or the first model loaded): \
                 {fixed:?}, not {self:?}"
            )));
        }
        match self.threads {
            Some(n) => set_inference_threads(n),
            None => Ok(()),
        }
    }

    /// The kernels' choices in force (fixing them, if no model fixed them yet), `threads`
    /// as set.
    pub fn current() -> RuntimeOptions {
        let threads = crate::kernels::threads::threads();
        RuntimeOptions { threads: Some(threads), ..RuntimeOptions::from_dispatch(dispatch::get()) }
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch {
            cap: self.cpu,
            int8: self.int8_kernel.map(Kernel::isa),
            fp32: match self.fp32 {
                FloatConvs::Fastest => Fp32::Fastest,
                FloatConvs::Kernel(k) => Fp32::Kernel(k.isa()),
                FloatConvs::Tract => Fp32::Tract,
            },
            winograd: self.winograd,
        }
    }

    fn from_dispatch(d: Dispatch) -> RuntimeOptions {
        RuntimeOptions {
            cpu: d.cap,
            int8_kernel: d.int8.map(Kernel::new),
            fp32: match d.fp32 {
                Fp32::Fastest => FloatConvs::Fastest,
                Fp32::Kernel(k) => FloatConvs::Kernel(FloatKernel::new(k)),
                Fp32::Tract => FloatConvs::Tract,
            },
            winograd: d.winograd,
            threads: None,
        }
    }
}

/// One team of `n` threads for the kernels, and tract's executor on as many.
fn set_inference_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::Invalid("threads per inference must be at least 1".into()));
    }
    if let Err((fixed, _)) = crate::kernels::threads::set_threads(n) {
        return Err(Error::Invalid(format!("threads per inference are fixed at {fixed} already, not {n}")));
    }
    if n > 1 {
        use tract_linalg::multithread::{set_default_executor, Executor};
        set_default_executor(Executor::multithread(n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_map_to_the_kernels_choices_and_back() {
        let k: Kernel = "madd16".parse().unwrap();
        let f: FloatKernel = "sse".parse().unwrap();
        let o = RuntimeOptions::default()
            .with_cpu(CpuClass::Sse4)
            .with_int8_kernel(k)
            .with_fp32(FloatConvs::Kernel(f))
            .with_winograd(false);
        assert_eq!(RuntimeOptions::from_dispatch(o.dispatch()), o);
        assert_eq!(RuntimeOptions::default().dispatch(), Dispatch::default());
        let e = "avx3".parse::<CpuClass>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"avx3\" is not a CPU class (baseline, sse4, avx2, avxvnni, avx512, native, neon, dotprod)"
        );
    }
}

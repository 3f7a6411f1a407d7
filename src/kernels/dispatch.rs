//! The choices besides the CPU's features that decide which kernels run: the CPU class the
//! probe is capped at, an integer or float kernel asked for, Winograd on or off. One value
//! for the process, fixed by the first model built (or set before by the program through
//! `RuntimeOptions`): the CPU probe is cached, and a plan built on one choice must not sit
//! beside a plan built on another without anyone having asked for it.

use std::sync::OnceLock;

use super::cpu::{self, Cap};
use super::fisa::FIsa;
use super::Isa;

/// How float convolutions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fp32 {
    /// On the fastest fp32 kernel of the (capped) CPU.
    #[default]
    Fastest,
    /// On this kernel where the CPU has it, else as `Fastest`.
    Kernel(FIsa),
    /// On tract's own convolutions.
    Tract,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub cap: Cap,
    /// The integer kernel asked for, where it is available and exact ([`Isa::best`]).
    pub int8: Option<Isa>,
    pub fp32: Fp32,
    /// Whether 3x3 stride-1 convolutions may run as Winograd's: float F(4x4, 3x3), integer
    /// F(2x4, 3x3) ([`super::winograd8`]).
    pub winograd: bool,
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch { cap: Cap::for_target(), int8: None, fp32: Fp32::Fastest, winograd: true }
    }
}

/// The choices but the cap, which [`cpu`] keeps (its probe reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kernels {
    int8: Option<Isa>,
    fp32: Fp32,
    winograd: bool,
}

static KERNELS: OnceLock<Kernels> = OnceLock::new();

/// Makes `d` the process's choice; when one was fixed already (set, or read by a model
/// built), `Err` with it unless it is `d`.
pub fn set(d: Dispatch) -> Result<(), Dispatch> {
    let cap = cpu::fix_cap(d.cap);
    let k = *KERNELS.get_or_init(|| Kernels { int8: d.int8, fp32: d.fp32, winograd: d.winograd });
    let fixed = Dispatch { cap, int8: k.int8, fp32: k.fp32, winograd: k.winograd };
    if fixed == d {
        Ok(())
    } else {
        Err(fixed)
    }
}

/// The choice in force, fixed from here on ([`Dispatch::default`] if none was set).
pub fn get() -> Dispatch {
    let d = Dispatch::default();
    let k = *KERNELS.get_or_init(|| Kernels { int8: d.int8, fp32: d.fp32, winograd: d.winograd });
    Dispatch { cap: cpu::cap(), int8: k.int8, fp32: k.fp32, winograd: k.winograd }
}

/// The fastest fp32 kernel on this CPU, or the one the process asked for ([`Fp32`]) if the
/// CPU has it; `None` when there is none or tract was asked to run the convolutions.
pub fn fp32_kernel() -> Option<FIsa> {
    let fastest = || [FIsa::Avx512, FIsa::Avx2, FIsa::Sse, FIsa::Neon].into_iter().find(|i| i.available());
    match get().fp32 {
        Fp32::Tract => None,
        Fp32::Kernel(i) if i.available() => Some(i),
        _ => fastest(),
    }
}

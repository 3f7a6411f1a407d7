//! The `QDET_*` variables that choose the kernels, read once at start-up into the library's
//! [`RuntimeOptions`]: `QDET_CPU` (a CPU class), `QDET_KERNEL` (an int8 kernel),
//! `QDET_FKERNEL` (an fp32 kernel, or `tract`), `QDET_NO_WINOGRAD` (set: no Winograd). A
//! misspelt name would otherwise quietly measure another path, so it is reported and ignored.

use crate::runtime::{CpuClass, FloatConvs, FloatKernel, Kernel, RuntimeOptions};

/// The options the environment asks for.
pub(super) fn runtime_options() -> RuntimeOptions {
    let mut options = RuntimeOptions::default();
    if let Some(name) = var("QDET_CPU") {
        match name.parse::<CpuClass>() {
            Ok(cpu) => options.cpu = cpu,
            Err(e) => {
                eprintln!("qdet: QDET_CPU={name:?} is not a CPU class ({}); using every feature", e.known().join(", "))
            }
        }
    }
    if let Some(name) = var("QDET_KERNEL") {
        match name.parse::<Kernel>() {
            Ok(k) => options.int8_kernel = Some(k),
            Err(e) => {
                eprintln!("qdet: QDET_KERNEL={name:?} is not a kernel ({}); using the fastest", e.known().join(", "))
            }
        }
    }
    if let Some(name) = var("QDET_FKERNEL") {
        match name.parse::<FloatKernel>() {
            Ok(k) => options.fp32 = FloatConvs::Kernel(k),
            Err(_) if name == "tract" => options.fp32 = FloatConvs::Tract,
            Err(e) => eprintln!(
                "qdet: QDET_FKERNEL={name:?} is not an fp32 kernel (tract, {}); using the fastest",
                e.known().join(", ")
            ),
        }
    }
    options.winograd = std::env::var_os("QDET_NO_WINOGRAD").is_none();
    options
}

/// A variable's value, unset and empty alike `None`.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

//! Portable Rust forms of every SIMD kernel: the twins the tests compare the x86_64 and
//! aarch64 kernels against, bit for bit, and the fallback on CPUs without them.

pub mod epilogue;
pub mod ftile;
pub mod pack;
pub mod tile;

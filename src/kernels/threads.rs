//! Intra-op threads of the kernels: a pool of their own, never the global rayon pool, whose
//! workers may be blocked feeding images to inference (waiting on them from inside a
//! convolution would deadlock).

use std::sync::OnceLock;

static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

/// Splits each convolution over `n` threads (1: none). Only the first call counts.
pub fn set_threads(n: usize) {
    POOL.get_or_init(|| (n > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("qdet-kernel-{i}")).build().ok()).flatten());
}

pub fn pool() -> Option<&'static rayon::ThreadPool> {
    POOL.get().and_then(Option::as_ref)
}

//! Block reconstruction (BRECQ / QDrop, as PPQ's `AdaroundPass` and `LearnedStepSizePass`
//! train it): learned rounding and scales of one block at a time, against the float block's
//! output, from the already-quantized upstream's input. This module holds the pieces with
//! their gradients written out; each is held to finite differences in `tests`.

pub mod block;
pub mod grad;

#[cfg(test)]
mod tests;

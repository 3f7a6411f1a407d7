//! What a batch command tells its caller as it goes, for a progress bar and for naming a
//! skipped input at once rather than only in the final summary.

use crate::error::Problem;

#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A stage starts with this many steps (`calibrate` has several stages, the dataset
    /// commands one).
    Stage(&'static str, usize),
    /// One step is finished, with the problem if its input was skipped.
    Step(Option<&'a Problem>),
}

/// The callback a batch command reports its [`Event`]s to; it may be called from any thread.
pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

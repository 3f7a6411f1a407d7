//! Giving a burst's memory back to the system once the server is idle again.
//!
//! glibc's malloc keeps what large uploads and decoded images used: after the first large
//! free it raises its mmap threshold, so later buffers come from its arenas and go back to
//! their free lists, not to the system. 200 concurrent 19 MB uploads left 170-253 MB held
//! with the server idle. A low `M_TRIM_THRESHOLD` returns it but makes every inference fault
//! its large buffers in again (COCO yolov8n int8, 2 threads: 19.7 -> 30.3 ms).
//! `malloc_trim(0)` once the server has been quiet for a moment after enough bytes went
//! through returns every free page of every arena and costs those faults once, on the next
//! request only.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes of uploads and decoded images after which an idle server trims its heap: below
/// it, what the allocator keeps is no more than one large upload.
pub(super) const TRIM_AFTER: u64 = 32 << 20;

/// Bytes through the server since its last trim, the requests open and seen, and the trims
/// done.
#[derive(Default)]
pub(super) struct Heap {
    since: AtomicU64,
    open: AtomicUsize,
    seen: AtomicU64,
    trims: AtomicU64,
}

/// A request being answered, from routing until its response is built or it is dropped.
pub(super) struct Open<'a>(&'a Heap);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Heap {
    /// `bytes` of an upload or of decoded pixels went through the server.
    pub(super) fn note(&self, bytes: usize) {
        self.since.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A request arrived; it counts as open until the guard is dropped.
    pub(super) fn open(&self) -> Open<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.seen.fetch_add(1, Ordering::Relaxed);
        Open(self)
    }

    /// Whether no request is open, and the count of requests seen: a server is quiet when
    /// nothing is open and that count has not moved.
    pub(super) fn activity(&self) -> (bool, u64) {
        (self.open.load(Ordering::Relaxed) == 0, self.seen.load(Ordering::Relaxed))
    }

    /// Whether enough went through since the last trim for one to be worth its faults.
    pub(super) fn due(&self) -> bool {
        self.since.load(Ordering::Relaxed) >= TRIM_AFTER
    }

    /// Returns the free memory of every arena to the system (a no-op without glibc).
    pub(super) fn trim(&self) {
        self.since.store(0, Ordering::Relaxed);
        release_free_pages();
        self.trims.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn trims(&self) -> u64 {
        self.trims.load(Ordering::Relaxed)
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_pages() {
    // SAFETY: malloc_trim has no precondition: it takes each arena's lock itself and only
    // gives back pages no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}

/// Counts the consecutive checks that found the server quiet (no request open, none
/// arrived since the check before) and says when to trim: on the second quiet check in a
/// row once a trim is due. A camera sending a few frames a second keeps the server from
/// ever being quiet that long, so its steady requests never pay the page faults.
#[derive(Default)]
pub(super) struct IdleWatch {
    quiet_checks: u32,
    activity: u64,
}

impl IdleWatch {
    pub(super) fn should_trim(&mut self, (none_open, seen): (bool, u64), due: bool) -> bool {
        let quiet = none_open && seen == self.activity;
        self.activity = seen;
        self.quiet_checks = if quiet { self.quiet_checks + 1 } else { 0 };
        due && self.quiet_checks >= 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_two_quiet_checks_and_enough_bytes() {
        let heap = Heap::default();
        let mut watch = IdleWatch::default();
        drop(heap.open());
        heap.note(TRIM_AFTER as usize - 1);
        assert!(!heap.due());
        assert!(!watch.should_trim(heap.activity(), heap.due()), "a request arrived since the last check");
        assert!(!watch.should_trim(heap.activity(), heap.due()));
        assert!(!watch.should_trim(heap.activity(), heap.due()), "quiet, but not due: nothing to give back");
        let open = heap.open();
        heap.note(1);
        assert!(heap.due());
        assert!(!watch.should_trim(heap.activity(), heap.due()), "a request arrived, and is open");
        assert!(!watch.should_trim(heap.activity(), heap.due()), "nothing arrived, but one is open");
        drop(open);
        assert!(!watch.should_trim(heap.activity(), heap.due()), "quiet once: maybe between two requests");
        assert!(watch.should_trim(heap.activity(), heap.due()));
        heap.trim();
        assert_eq!(heap.trims(), 1);
        assert!(!watch.should_trim(heap.activity(), heap.due()), "nothing went through since");
    }
}

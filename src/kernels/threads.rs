//! Intra-op threads of the kernels: a team of their own, never the global rayon pool, whose
//! workers may be blocked feeding images to inference (waiting on them from inside a
//! convolution would deadlock).
//!
//! Not a rayon pool either: handing each convolution to one from the inference thread costs
//! a latch sleep and two wake-ups per call (the caller sleeps, a worker wakes, then the
//! caller is woken), and yolov8n runs about 100 parallel sections per image; the team took
//! the 2-thread COCO int8 median from 34.7 to 31.0 ms (`tools/bench/ab.sh`). In a team, the calling thread works too, helpers claim indices with one
//! compare-and-swap, and between sections they spin briefly before parking, since the next
//! section usually starts within tens of microseconds.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Mutex, OnceLock, PoisonError, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle helper spins before parking. Longer than the gaps between the
/// convolutions of an inference, short enough not to keep a core from decoding images
/// between inferences.
const SPIN: Duration = Duration::from_micros(300);

/// Most indices of one section (they share a 64-bit claim word with a generation).
const MAX_INDICES: usize = u16::MAX as usize;

type Job = *const (dyn Fn(usize) + Sync + 'static);

/// One calling thread and `helpers.len()` helpers.
struct Team {
    /// Generation (high 32 bits), next index (16), count (16). A claim is a compare-and-swap
    /// on the whole word, so a helper still holding last section's value cannot claim in this
    /// one.
    claims: AtomicU64,
    /// The section's function. Written by the caller while no index can be claimed, read
    /// after a successful claim.
    job: UnsafeCell<Option<Job>>,
    /// Indices finished in this section.
    done: AtomicUsize,
    panicked: AtomicBool,
    helpers: OnceLock<Vec<(Thread, AtomicBool)>>,
    /// One caller at a time.
    busy: Mutex<()>,
}

// SAFETY: `job` is written only by the caller holding `busy`, while no index is claimable
// (the claim word is exhausted), and read only after claiming an index, which happens after
// the write (release store / acquire compare-and-swap) and before the section ends.
unsafe impl Sync for Team {}

fn generation(word: u64) -> u64 {
    word >> 32
}
fn next(word: u64) -> usize {
    (word >> 16) as usize & 0xffff
}
fn count(word: u64) -> usize {
    word as usize & 0xffff
}

impl Team {
    fn new() -> Team {
        Team {
            claims: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            helpers: OnceLock::new(),
            busy: Mutex::new(()),
        }
    }

    /// Claims and runs indices of the current section until none is left; false if there
    /// was none to claim.
    fn work(&self) -> bool {
        let mut word = self.claims.load(Acquire);
        let mut worked = false;
        while next(word) < count(word) {
            match self.claims.compare_exchange_weak(word, word + (1 << 16), AcqRel, Acquire) {
                Ok(_) => {
                    // SAFETY: index `next(word)` of this section is ours and not finished, so
                    // the caller is still inside `run` and `job` holds its live function.
                    let job = unsafe { (*self.job.get()).map(|f| &*f) };
                    if let Some(f) = job {
                        if catch_unwind(AssertUnwindSafe(|| f(next(word)))).is_err() {
                            self.panicked.store(true, Release);
                        }
                    }
                    self.done.fetch_add(1, Release);
                    worked = true;
                    word = self.claims.load(Acquire);
                }
                Err(now) => word = now,
            }
        }
        worked
    }

    fn helper_loop(&self, me: usize) {
        // `set_threads_for` sets the list after spawning us, then unparks us.
        let sleeping = loop {
            match self.helpers.get().and_then(|h| h.get(me)) {
                Some((_, flag)) => break flag,
                None => std::thread::park(),
            }
        };
        let mut idle = Instant::now();
        let mut spins = 0u32;
        loop {
            if self.work() {
                idle = Instant::now();
                continue;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || idle.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            // Flag, then re-check: `run` publishes, then reads the flag (both SeqCst), so
            // either this sees the work or `run` sees the flag and unparks.
            sleeping.store(true, SeqCst);
            let word = self.claims.load(SeqCst);
            if next(word) >= count(word) {
                std::thread::park();
            }
            sleeping.store(false, SeqCst);
            idle = Instant::now();
        }
    }

    /// Runs `f(i)` for `i` in `0..n` on this thread and the helpers; returns when all are
    /// done. Panics from `f` are re-raised here, after every index has finished.
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        // SAFETY: the pointer outlives its uses: it is read only by claims of this section,
        // and this function returns (or unwinds) only after all `n` indices are done.
        let job: Job = unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Job>(f) };
        // SAFETY: no index is claimable (the last section is exhausted and we hold `busy`),
        // so no helper reads `job` now.
        unsafe { *self.job.get() = Some(job) };
        self.done.store(0, Relaxed);
        self.panicked.store(false, Relaxed);
        let word = ((generation(self.claims.load(Relaxed)) + 1) << 32) | n as u64;
        self.claims.store(word, SeqCst);
        for (thread, sleeping) in self.helpers.get().into_iter().flatten() {
            if sleeping.load(SeqCst) {
                thread.unpark();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| self.work()));
        let mut spins = 0u32;
        while self.done.load(Acquire) < n {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                // A helper lost its core (shared machines); let it have ours.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: every index is done and none is claimable: no helper reads `job`.
        unsafe { *self.job.get() = None };
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        assert!(!self.panicked.load(Acquire), "a kernel thread panicked");
    }
}

/// The teams, with the `(threads, teams)` they were asked for.
struct Teams {
    asked: (usize, usize),
    teams: Vec<&'static Team>,
}

static TEAMS: OnceLock<Teams> = OnceLock::new();

/// Splits each parallel section of the kernels over `n` threads (1: none): `teams`
/// independent teams of the caller and `n - 1` helpers, for `teams` inferences at once.
/// Only the first call counts: a later one asking for another split gets `Err` with the
/// `(threads, teams)` in force (threads once spawned stay for the process).
pub fn set_threads_for(n: usize, teams: usize) -> Result<(), (usize, usize)> {
    let asked = (n.max(1), teams.max(1));
    let fixed = TEAMS.get_or_init(|| Teams { asked, teams: spawn_teams(asked.0, asked.1) }).asked;
    if fixed == asked {
        Ok(())
    } else {
        Err(fixed)
    }
}

fn spawn_teams(n: usize, teams: usize) -> Vec<&'static Team> {
    if n <= 1 {
        return Vec::new();
    }
    (0..teams)
        .map(|t| {
            let team: &'static Team = Box::leak(Box::new(Team::new()));
            let helpers = (0..n - 1)
                .filter_map(|i| {
                    std::thread::Builder::new()
                        .name(format!("qdet-kernel-{t}-{i}"))
                        .spawn(move || team.helper_loop(i))
                        .ok()
                })
                .map(|h| (h.thread().clone(), AtomicBool::new(false)))
                .collect();
            let _ = team.helpers.set(helpers);
            // They wait for the list (`helper_loop`).
            for (thread, _) in team.helpers.get().into_iter().flatten() {
                thread.unpark();
            }
            team
        })
        .collect()
}

/// `set_threads_for` with one team.
pub fn set_threads(n: usize) -> Result<(), (usize, usize)> {
    set_threads_for(n, 1)
}

/// Threads a section runs on: the caller and its team's helpers (1 without a team).
pub fn threads() -> usize {
    TEAMS.get().and_then(|t| t.teams.first()).and_then(|t| t.helpers.get()).map_or(1, |h| h.len() + 1)
}

/// Runs `f(i)` for every `i` in `0..n`, in any order, on a free team if there is one, else
/// on the caller alone (a nested section, or more inferences at once than teams).
pub fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    let free = TEAMS.get().into_iter().flat_map(|t| &t.teams).find_map(|t| match t.busy.try_lock() {
        Ok(guard) => Some((t, guard)),
        Err(TryLockError::Poisoned(p)) => Some((t, p.into_inner())),
        Err(TryLockError::WouldBlock) => None,
    });
    match free {
        Some((team, _guard)) if n > 1 => {
            for start in (0..n).step_by(MAX_INDICES) {
                let len = (n - start).min(MAX_INDICES);
                team.run(len, &|i| f(start + i));
            }
        }
        _ => (0..n).for_each(f),
    }
}

/// Runs `f` on every item, as [`for_each`].
pub fn for_each_item<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync) {
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    for_each(slots.len(), |i| {
        let item = slots[i].lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(item) = item {
            f(item);
        }
    });
}

/// Channels per parallel item when a loop over channels is split over the team: about four
/// items per thread.
pub fn channel_chunk(c: usize) -> usize {
    c.div_ceil(4 * threads()).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These tests share the one team; run alone (from each other and from the tests that run
    /// parallel kernels, `crate::tests::team`), each finds it free.
    fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
        let _ = set_threads(2);
        crate::tests::team_alone()
    }

    fn counted(n: usize, sections: usize) -> Vec<usize> {
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..sections {
            for_each(n, |i| {
                hits[i].fetch_add(1, Relaxed);
            });
        }
        hits.into_iter().map(AtomicUsize::into_inner).collect()
    }

    #[test]
    fn every_index_runs_once_per_section() {
        let _alone = alone();
        assert_eq!(threads(), 2);
        for n in [0, 1, 2, 3, 7, 100, MAX_INDICES + 5] {
            let sections = if n > 1000 { 3 } else { 300 };
            assert_eq!(counted(n, sections), vec![sections; n], "{n} indices");
        }
    }

    #[test]
    fn helpers_take_part() {
        let _alone = alone();
        let ids = Mutex::new(std::collections::HashSet::new());
        for _ in 0..50 {
            for_each(64, |_| {
                ids.lock().unwrap().insert(std::thread::current().id());
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(20) {}
            });
        }
        assert_eq!(ids.into_inner().unwrap().len(), 2);
    }

    #[test]
    fn nested_and_concurrent_sections_run_every_index() {
        let _alone = alone();
        let inner = AtomicUsize::new(0);
        for_each(8, |_| for_each(5, |_| _ = inner.fetch_add(1, Relaxed)));
        assert_eq!(inner.into_inner(), 40);
        std::thread::scope(|s| {
            let callers: Vec<_> = (0..3).map(|_| s.spawn(|| counted(37, 200))).collect();
            for c in callers {
                assert_eq!(c.join().unwrap(), vec![200; 37]);
            }
        });
    }

    #[test]
    fn a_panic_reaches_the_caller_after_the_other_indices() {
        let _alone = alone();
        for bad in [0, 5, 63] {
            let hits = AtomicUsize::new(0);
            let r = catch_unwind(AssertUnwindSafe(|| {
                for_each(64, |i| {
                    assert_ne!(i, bad, "index {bad} fails");
                    hits.fetch_add(1, Relaxed);
                })
            }));
            assert!(r.is_err());
            assert_eq!(hits.into_inner(), 63);
        }
        assert_eq!(counted(10, 10), vec![10; 10], "the team works after a panic");
    }
}

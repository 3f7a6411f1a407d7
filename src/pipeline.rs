//! The batch pipeline of every command that runs a model over many images (`detect`, `val`
//! and `calibrate`'s passes): images are decoded and prepared ahead on the rayon pool,
//! `inflight` of them are in inference at once, each stage is timed, an image that fails is
//! handed on as a failure rather than stopping the run, and the results reach the caller in
//! image order, on its own thread.
//!
//! Decoders take images in index order from a shared counter, so results arrive almost in
//! order and the reorder buffer holds only a few: calibrate's per-image results are whole
//! activation maps. The queues are bounded for the same reason: decoding runs a few images
//! ahead of inference, not the whole folder.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// The timed stages of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Decode,
    Preprocess,
    Inference,
    Postprocess,
    Write,
}

const STAGES: usize = 5;

/// Mean milliseconds per image in each stage, over the images that went through all stages.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageMs {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub postprocess: f64,
    /// Writing the outputs, for the commands that write per image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<f64>,
}

/// Times the stages of one image: each [`Clock::lap`] charges the time since the previous
/// lap to a stage. Waiting in a queue between two workers is not charged.
pub(crate) struct Clock {
    last: Instant,
    ms: [f64; STAGES],
    lapped: [bool; STAGES],
}

impl Clock {
    fn new() -> Clock {
        Clock { last: Instant::now(), ms: [0.0; STAGES], lapped: [false; STAGES] }
    }

    pub(crate) fn lap(&mut self, stage: Stage) {
        let now = Instant::now();
        self.ms[stage as usize] += (now - self.last).as_secs_f64() * 1e3;
        self.lapped[stage as usize] = true;
        self.last = now;
    }

    fn resume(&mut self) {
        self.last = Instant::now();
    }
}

/// One command's work on one image, in two halves.
pub(crate) trait Job: Sync {
    /// What decoding and preprocessing produce.
    type Decoded: Send;
    /// The result of one image.
    type Output: Send;
    /// Why an image was skipped.
    type Failure: Send;
    /// Reads and prepares image `index`; runs on the rayon pool.
    fn decode(&self, index: usize, clock: &mut Clock) -> Result<Self::Decoded, Self::Failure>;
    /// Runs the model and what follows it; runs on one of the `inflight` workers.
    fn process(&self, index: usize, decoded: Self::Decoded, clock: &mut Clock) -> Result<Self::Output, Self::Failure>;
}

/// Sums of the stage times, turned into means at the end.
#[derive(Default)]
struct Totals {
    ms: [f64; STAGES],
    lapped: [bool; STAGES],
    images: usize,
}

impl Totals {
    fn add(&mut self, c: &Clock) {
        for s in 0..STAGES {
            self.ms[s] += c.ms[s];
            self.lapped[s] |= c.lapped[s];
        }
        self.images += 1;
    }

    fn means(&self) -> StageMs {
        let n = self.images.max(1) as f64;
        let m = |s: Stage| self.ms[s as usize] / n;
        StageMs {
            decode: m(Stage::Decode),
            preprocess: m(Stage::Preprocess),
            inference: m(Stage::Inference),
            postprocess: m(Stage::Postprocess),
            write: self.lapped[Stage::Write as usize].then(|| m(Stage::Write)),
        }
    }
}

type Outcome<J> = (Result<<J as Job>::Output, <J as Job>::Failure>, Clock);
type Message<J> = (usize, Result<<J as Job>::Output, <J as Job>::Failure>, Clock);

/// Runs `job` on images `0..count`, `inflight` at a time. `sink` gets each image's result in
/// index order on the calling thread; an error from it stops the run (images already in
/// flight are finished and dropped) and is returned. Returns the mean stage times of the
/// images that succeeded.
pub(crate) fn run<J: Job, E>(
    job: &J,
    count: usize,
    inflight: usize,
    mut sink: impl FnMut(usize, Result<J::Output, J::Failure>) -> Result<(), E>,
) -> Result<StageMs, E> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let inflight = inflight.max(1);
    let (to_workers, queue) =
        mpsc::sync_channel::<(usize, Result<J::Decoded, J::Failure>, Clock)>(rayon::current_num_threads() * 2);
    let queue = Mutex::new(queue);
    let (to_caller, results) = mpsc::sync_channel::<Message<J>>(inflight * 2);
    let mut totals = Totals::default();
    let mut outcome = Ok(());
    std::thread::scope(|scope| {
        let (next, stop) = (&next, &stop);
        scope.spawn(move || {
            rayon::broadcast(|_| {
                let tx = to_workers.clone();
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let mut clock = Clock::new();
                    let decoded = job.decode(index, &mut clock);
                    // The receivers only go away if every worker panicked.
                    if tx.send((index, decoded, clock)).is_err() {
                        break;
                    }
                }
            });
        });
        for _ in 0..inflight {
            let to_caller = to_caller.clone();
            let queue = &queue;
            scope.spawn(move || loop {
                // The lock is held only while taking the next image off the queue.
                let Ok((index, decoded, mut clock)) = lock(queue).recv() else { break };
                if stop.load(Ordering::Relaxed) {
                    continue; // drained, so that the decoders are never blocked
                }
                clock.resume();
                let result = decoded.and_then(|d| job.process(index, d, &mut clock));
                if to_caller.send((index, result, clock)).is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
        drop(to_caller);
        let mut waiting: BTreeMap<usize, Outcome<J>> = BTreeMap::new();
        let mut expected = 0;
        while let Ok((index, result, clock)) = results.recv() {
            waiting.insert(index, (result, clock));
            while let Some((result, clock)) = waiting.remove(&expected) {
                if result.is_ok() {
                    totals.add(&clock);
                }
                let done = expected;
                expected += 1;
                if let Err(e) = sink(done, result) {
                    outcome = Err(e);
                    stop.store(true, Ordering::Relaxed);
                    waiting.clear();
                    break;
                }
            }
            if outcome.is_err() {
                break;
            }
        }
        // Dropping the receiver ends the workers' sends; the scope joins them.
        drop(results);
    });
    outcome.map(|()| totals.means())
}

/// A poisoned lock only means another worker panicked; the queue itself is still sound.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Squares the index; odd indices divisible by 5 fail at decoding, multiples of 7
    /// (but not 0) at processing.
    struct Squares;

    impl Job for Squares {
        type Decoded = usize;
        type Output = usize;
        type Failure = String;
        fn decode(&self, index: usize, clock: &mut Clock) -> Result<usize, String> {
            clock.lap(Stage::Decode);
            if index.is_multiple_of(5) && !index.is_multiple_of(2) {
                return Err(format!("decode {index}"));
            }
            Ok(index)
        }
        fn process(&self, index: usize, decoded: usize, clock: &mut Clock) -> Result<usize, String> {
            clock.lap(Stage::Inference);
            if index.is_multiple_of(7) && index > 0 {
                return Err(format!("process {index}"));
            }
            Ok(decoded * decoded)
        }
    }

    #[test]
    fn results_in_order_with_failures() {
        for inflight in [1, 2, 5] {
            let mut seen = Vec::new();
            let ms = run(&Squares, 100, inflight, |i, r| {
                seen.push((i, r));
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(seen.len(), 100);
            for (i, r) in seen {
                match r {
                    Ok(v) => assert_eq!(v, i * i),
                    Err(e) if i % 5 == 0 && i % 2 == 1 => assert_eq!(e, format!("decode {i}")),
                    Err(e) => assert_eq!(e, format!("process {i}")),
                }
            }
            assert!(ms.write.is_none(), "no image lapped the write stage");
        }
    }

    #[test]
    fn sink_error_stops_the_run() {
        let mut calls = 0;
        let r = run(&Squares, 10_000, 2, |i, _| {
            calls += 1;
            if i == 3 {
                Err(i)
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap_err(), 3);
        assert_eq!(calls, 4);
    }

    #[test]
    fn no_images() {
        let r = run(&Squares, 0, 2, |_, _| Err::<(), ()>(()));
        assert!(r.is_ok());
    }
}

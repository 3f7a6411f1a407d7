//! The inference workers and their bounded queue: `--threads` OS threads take jobs from a
//! channel of `--queue` slots. Decoding and inference are CPU work of tens of milliseconds, so
//! they never run on the async runtime's threads (they would stall every connection); and a
//! full queue is refused at once (503) rather than grown: an NVR that sends faster than the
//! box detects should learn it now, not after its requests time out in a backlog.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// Images waiting and images being worked on, for `/metrics`.
#[derive(Default)]
pub(super) struct Gauges {
    pub queued: AtomicUsize,
    pub in_flight: AtomicUsize,
}

pub(super) struct Pool {
    sender: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    pub gauges: Arc<Gauges>,
}

impl Pool {
    /// `threads` workers (at least one) behind a queue of `queue` waiting jobs (0: a job is
    /// taken only when a worker is free).
    pub(super) fn new(threads: usize, queue: usize) -> std::io::Result<Pool> {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let gauges = Arc::new(Gauges::default());
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (receiver, gauges) = (receiver.clone(), gauges.clone());
            let spawned =
                std::thread::Builder::new().name(format!("qdet-infer-{i}")).spawn(move || work(&receiver, &gauges))?;
            workers.push(spawned);
        }
        Ok(Pool { sender: Mutex::new(Some(sender)), workers: Mutex::new(workers), gauges })
    }

    /// Runs `f` on a worker and hands back its result with the time it waited in the queue;
    /// [`ApiError::Busy`] at once when the queue is full.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<(T, f64), ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued_at = Instant::now();
        let gauges = self.gauges.clone();
        let job: Job = Box::new(move || {
            let waited_ms = queued_at.elapsed().as_secs_f64() * 1e3;
            let result = {
                let _working = InFlight::start(&gauges);
                f()
            };
            // Counted out before the answer leaves, so a client never sees itself in flight.
            // The client may have gone: its answer is then dropped.
            let _ = tx.send((result, waited_ms));
        });
        self.submit(job)?;
        // The sender is dropped unanswered only when the job panicked.
        rx.await.map_err(|_| ApiError::Internal("the detection failed unexpectedly".into()))
    }

    fn submit(&self, job: Job) -> Result<(), ApiError> {
        let guard = self.sender.lock().map_err(|_| ApiError::Internal("worker queue poisoned".into()))?;
        let sender = guard.as_ref().ok_or(ApiError::ShuttingDown)?;
        self.gauges.queued.fetch_add(1, Ordering::Relaxed);
        sender.try_send(job).map_err(|e| {
            self.gauges.queued.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => ApiError::Busy,
                TrySendError::Disconnected(_) => ApiError::ShuttingDown,
            }
        })
    }

    /// Refuses new jobs, lets the workers finish what is queued, and waits for them.
    pub(super) fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let workers = self.workers.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default();
        for w in workers {
            // A worker never panics (jobs are caught); nothing to report if one did.
            let _ = w.join();
        }
    }
}

/// A worker: jobs until the channel is closed and empty. A panicking job (a bug, never a bad
/// image: those are errors) is contained; its client gets a 500 and the worker goes on.
fn work(receiver: &Mutex<Receiver<Job>>, gauges: &Gauges) {
    loop {
        let job = match receiver.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        gauges.queued.fetch_sub(1, Ordering::Relaxed);
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

/// Counts an image in flight while alive, also when its job panics.
struct InFlight<'a>(&'a Gauges);

impl InFlight<'_> {
    fn start(gauges: &Gauges) -> InFlight<'_> {
        gauges.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(gauges)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

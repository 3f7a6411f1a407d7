//! The inference workers and their bounded queue: `--threads` OS threads take jobs in
//! order. Decoding and inference are CPU work of tens of milliseconds, so they never run on
//! the async runtime's threads (they would stall every connection); and a request over the
//! capacity (workers + `--queue`) is refused at once (503) rather than queued: an NVR that
//! sends faster than the box detects should learn it now, not after its requests time out in
//! a backlog.
//!
//! A slot is held from submission until the answer is handed back, and freed just before:
//! a client can only send its next request after reading the answer, so `capacity` clients
//! sending back to back never find the pool full. A job whose client has gone (its answer
//! channel closed: hyper drops the request's future when the connection closes) is not run,
//! or stops between stages, and is counted; one that waited past `--deadline-ms` is answered
//! 503 instead of computed late.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// Images waiting and images being worked on, and what happened to those that were not
/// answered, for `/metrics`.
#[derive(Default)]
pub(super) struct Gauges {
    pub queued: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// Submitted and not yet answered: what the capacity bounds.
    pub held: AtomicUsize,
    /// Jobs whose client had gone before its answer was ready.
    pub abandoned: AtomicU64,
    /// Jobs answered 503 because they waited past the deadline.
    pub expired: AtomicU64,
}

pub(super) struct Pool {
    sender: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    capacity: usize,
    deadline: Option<Duration>,
    pub gauges: Arc<Gauges>,
}

/// Asks whether the client of the running job has gone.
pub(super) type Gone<'a> = &'a dyn Fn() -> bool;

impl Pool {
    /// `threads` workers (at least one) and `queue` more requests waiting; with `deadline`,
    /// a request that waited longer is answered 503 instead of run.
    pub(super) fn new(threads: usize, queue: usize, deadline: Option<Duration>) -> std::io::Result<Pool> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let gauges = Arc::new(Gauges::default());
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (receiver, gauges) = (receiver.clone(), gauges.clone());
            let spawned =
                std::thread::Builder::new().name(format!("qdet-infer-{i}")).spawn(move || work(&receiver, &gauges))?;
            workers.push(spawned);
        }
        let capacity = threads.max(1) + queue;
        Ok(Pool { sender: Mutex::new(Some(sender)), workers: Mutex::new(workers), capacity, deadline, gauges })
    }

    /// Runs `f` on a worker and hands back its result with the time it waited in the queue;
    /// [`ApiError::Busy`] at once when every slot is held. `f` may ask whether its client
    /// has gone, to stop early.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<(T, f64), ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Gone) -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued_at = Instant::now();
        let (gauges, deadline) = (self.gauges.clone(), self.deadline);
        let job: Job = Box::new(move || {
            let slot = Slot(&gauges.held);
            let waited = queued_at.elapsed();
            let result = if tx.is_closed() {
                None
            } else if deadline.is_some_and(|d| waited > d) {
                gauges.expired.fetch_add(1, Ordering::Relaxed);
                Some(Err(ApiError::Expired(deadline.unwrap_or_default().as_millis() as u64)))
            } else {
                let _working = InFlight::start(&gauges);
                Some(Ok(f(&|| tx.is_closed())))
            };
            if tx.is_closed() {
                gauges.abandoned.fetch_add(1, Ordering::Relaxed);
            }
            // Freed before the answer leaves, so the client's next request finds it free;
            // and counted out of flight (`_working` above) for the same reason.
            drop(slot);
            if let Some(r) = result {
                let _ = tx.send((r, waited.as_secs_f64() * 1e3));
            }
        });
        self.submit(job)?;
        // The sender is dropped unanswered only when the job panicked.
        let (result, waited_ms) =
            rx.await.map_err(|_| ApiError::Internal("the detection failed unexpectedly".into()))?;
        Ok((result?, waited_ms))
    }

    fn submit(&self, job: Job) -> Result<(), ApiError> {
        let guard = self.sender.lock().map_err(|_| ApiError::Internal("worker queue poisoned".into()))?;
        let sender = guard.as_ref().ok_or(ApiError::ShuttingDown)?;
        if self.gauges.held.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.gauges.held.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::Busy);
        }
        self.gauges.queued.fetch_add(1, Ordering::Relaxed);
        sender.send(job).map_err(|_| {
            self.gauges.queued.fetch_sub(1, Ordering::Relaxed);
            self.gauges.held.fetch_sub(1, Ordering::Relaxed);
            ApiError::ShuttingDown
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

/// A held slot of the pool, given back when dropped, also when its job panics.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

//! A live source's frames on a reader thread that keeps only the newest: frames that arrive
//! while the caller is busy replace the waiting one and are counted as dropped, so the
//! caller always works on the latest frame and nothing queues without bound. A stream that
//! drops is opened again with a growing pause (1 s, doubling to 30 s), as long as the caller
//! reads and no stop signal came; frame indices go on counting across the gap.

use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{stop, stopping, Video};
use crate::error::{Error, Result};
use crate::image_io::RgbImage;

/// Wakes a caller waiting for a frame of any of several sources: a count of frames stored,
/// bumped under its lock, so a wait that starts after a scan misses no frame.
pub type Wake = Arc<(Mutex<u64>, Condvar)>;

/// How to open a stream again after it drops.
pub struct Reconnect {
    pub input_args: Vec<String>,
    /// Told each drop, failed attempt and reconnection, as a sentence.
    pub say: Box<dyn Fn(String) + Send>,
}

/// What became of a live source's frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveCounts {
    pub read: u64,
    pub dropped: u64,
    pub reconnects: u64,
}

/// A frame taken without waiting (its index, and when its last byte came from the
/// decoder), or why there is none.
pub enum Take {
    Frame(u64, RgbImage, Instant),
    Waiting,
    Ended,
}

pub struct Newest {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Option<Wake>,
    /// The decoder of the moment (a reconnection replaces it), stopped when the caller
    /// gives up on the source.
    child: Mutex<Arc<Mutex<Child>>>,
}

#[derive(Default)]
struct Slot {
    frame: Option<(u64, RgbImage, Instant)>,
    ended: bool,
    /// The caller has gone: no reconnection.
    closed: bool,
    counts: LiveCounts,
    error: Option<Error>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        if let Some(w) = &self.wake {
            *w.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            w.1.notify_all();
        }
    }

    fn put(&self, index: u64, frame: RgbImage) {
        let mut s = self.lock();
        s.counts.dropped += u64::from(s.frame.is_some());
        s.frame = Some((index, frame, Instant::now()));
        s.counts.read = index + 1;
        drop(s);
        self.notify();
    }

    fn end(&self, error: Option<Error>) {
        let mut s = self.lock();
        s.ended = true;
        s.error = error;
        drop(s);
        self.notify();
    }

    fn gone(&self) -> bool {
        stopping() || self.lock().closed
    }

    /// Waits `d`, or less if the caller goes or a stop signal comes; false then.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.gone() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        !self.gone()
    }
}

impl Newest {
    /// Reads `video` on a new thread; with `reconnect`, a stream that ends or fails is
    /// opened again until the caller drops this or [`super::stop_all`] is called. `wake`
    /// is notified at each frame and at the end.
    pub fn start(video: Video, reconnect: Option<Reconnect>, wake: Option<Wake>) -> Newest {
        let shared =
            Arc::new(Shared { slot: Mutex::new(Slot::default()), wake, child: Mutex::new(video.child.clone()) });
        let theirs = shared.clone();
        let reader = std::thread::spawn(move || read(&theirs, video, reconnect));
        Newest { shared, reader: Some(reader) }
    }

    /// The newest frame not yet taken, without waiting.
    pub fn take(&self) -> Take {
        let mut s = self.shared.lock();
        match s.frame.take() {
            Some((i, f, at)) => Take::Frame(i, f, at),
            None if s.ended => Take::Ended,
            None => Take::Waiting,
        }
    }

    /// The counts, or the error that ended the source.
    pub fn finish(mut self) -> Result<LiveCounts> {
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
        let mut s = self.shared.lock();
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(s.counts),
        }
    }
}

impl Drop for Newest {
    fn drop(&mut self) {
        // A caller that stops early (an error mid-stream) must not leave the reader thread
        // and its ffmpeg running: stopping ffmpeg ends the pipe, and with it the thread.
        self.shared.lock().closed = true;
        let child = self.shared.child.lock().unwrap_or_else(|p| p.into_inner()).clone();
        stop(&child);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

/// The reader thread: frames into the slot, the stream opened again after each drop.
fn read(shared: &Shared, mut video: Video, reconnect: Option<Reconnect>) {
    let mut index = 0u64;
    loop {
        let why = loop {
            let mut frame = RgbImage { width: 0, height: 0, data: Vec::new() };
            match video.next_into(&mut frame) {
                Ok(true) => {
                    shared.put(index, frame);
                    index += 1;
                }
                Ok(false) => break None,
                Err(e) => break Some(e),
            }
        };
        let (source, size) = (video.source.clone(), (video.width, video.height));
        drop(video);
        let Some(r) = reconnect.as_ref().filter(|_| !shared.gone()) else {
            return shared.end(why);
        };
        let why = why.map_or_else(|| "the stream ended".to_string(), |e| e.to_string());
        match reopen(shared, r, source, size, why) {
            Ok(Some(v)) => video = v,
            Ok(None) => return shared.end(None),
            Err(e) => return shared.end(Some(e)),
        }
    }
}

/// Opens `source` again, pausing 1 s, then twice as long after each failure up to 30 s;
/// `None` when the caller went or a stop signal came first.
fn reopen(shared: &Shared, r: &Reconnect, source: PathBuf, size: (usize, usize), why: String) -> Result<Option<Video>> {
    let mut wait = Duration::from_secs(1);
    (r.say)(format!("{}: {why}; reconnecting in {} s", source.display(), wait.as_secs()));
    loop {
        if !shared.pause(wait) {
            return Ok(None);
        }
        match Video::open(&source, &r.input_args) {
            Ok(v) if (v.width, v.height) == size => {
                // Published before looking at `closed`, which the caller sets before taking
                // the child to stop: one of the two sees the other.
                *shared.child.lock().unwrap_or_else(|p| p.into_inner()) = v.child.clone();
                if shared.gone() {
                    return Ok(None);
                }
                shared.lock().counts.reconnects += 1;
                (r.say)(format!("{}: reconnected", source.display()));
                return Ok(Some(v));
            }
            Ok(v) => {
                let why = format!("the frame size changed from {}x{} to {}x{}", size.0, size.1, v.width, v.height);
                return Err(Error::format(&source, why));
            }
            // A stop signal during the try makes it fail: nothing to report then.
            Err(_) if shared.gone() => return Ok(None),
            Err(e) => {
                wait = (wait * 2).min(Duration::from_secs(30));
                (r.say)(format!("{}: cannot reconnect ({e}); next try in {} s", source.display(), wait.as_secs()));
            }
        }
    }
}

//! Live sources (stream URLs, cameras, `--live` files) read all at once and detected by one
//! pool of workers (`--threads`, at most one per source): each worker takes the newest
//! waiting frame of the next source in turn that no other worker is on, so every source
//! gets its share and its frames stay in order. Frames that arrive while a source waits are
//! dropped by its reader and counted; nothing queues.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::outputs::Outputs;
use super::{pts, Job, Sample, Sampler, Summary};
use crate::track::ByteTrack;
use crate::video::{Newest, Reconnect, Take, Video, Wake};

/// One live source and what its frames have given so far.
struct Stream {
    source: PathBuf,
    newest: Mutex<Option<Newest>>,
    state: Mutex<State>,
}

struct State {
    outputs: Option<Outputs>,
    tracker: Option<ByteTrack>,
    sampler: Sampler,
    fps: f64,
    summary: Summary,
    /// A worker is on this source's frame (and holds its outputs).
    busy: bool,
    /// Ended, or failed (`error`): not scheduled again.
    ended: bool,
    error: Option<anyhow::Error>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs every source of `sources` until each has ended (a stop signal ends them all);
/// returns what became of each, in order.
pub(super) fn run<'a>(job: &Job, sources: &[&'a PathBuf]) -> Vec<(&'a Path, anyhow::Result<Summary>)> {
    let wake: Wake = Arc::new((Mutex::new(0), Condvar::new()));
    let mut results = Vec::new();
    let mut streams = Vec::new();
    for &source in sources {
        match open(job, source, &wake) {
            Ok(s) => streams.push(s),
            Err(e) => results.push((source.as_path(), Err(e))),
        }
    }
    let turn = Mutex::new(0usize);
    let workers = job.threads.clamp(1, streams.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| work(job, &streams, &turn, &wake));
        }
    });
    for s in streams {
        let source = sources.iter().find(|p| p.as_path() == s.source).map_or(Path::new(""), |p| p.as_path());
        results.push((source, finish(s)));
    }
    results
}

fn open(job: &Job, source: &Path, wake: &Wake) -> anyhow::Result<Stream> {
    let video = Video::open(source, &job.input_args)?;
    let (fps, size) = (video.fps, (video.width, video.height));
    let outputs = Outputs::open(&job.plan, source, size, job.out_fps(fps, true), true, job.jsonl.clone())?;
    // A stream or camera is opened again when it drops; a `--live` file just ends.
    let reconnect = crate::video::is_live(source).then(|| Reconnect {
        input_args: job.input_args.clone(),
        say: Box::new(|text: String| eprintln!("qdet: {text}")),
    });
    let newest = Newest::start(video, reconnect, Some(wake.clone()));
    let state = State {
        outputs: Some(outputs),
        tracker: job.tracker(),
        sampler: Sampler::new(1, job.a.fps, fps),
        fps,
        summary: Summary::default(),
        busy: false,
        ended: false,
        error: None,
    };
    Ok(Stream { source: source.to_path_buf(), newest: Mutex::new(Some(newest)), state: Mutex::new(state) })
}

/// A worker: frames from the sources in turn until every one has ended.
fn work(job: &Job, streams: &[Stream], turn: &Mutex<usize>, wake: &Wake) {
    loop {
        let seen = *lock(&wake.0);
        match pick(streams, turn) {
            Pick::Frame(i, index, frame, at, mut held) => {
                let s = &streams[i];
                let fps = lock(&s.state).fps;
                let result = job.detect(&frame, held.tracker.as_mut()).and_then(|found| {
                    held.outputs.frame(job.det, index, pts(index, fps), Some(at), &frame, &found)?;
                    Ok(found.len())
                });
                let mut st = lock(&s.state);
                st.busy = false;
                (st.outputs, st.tracker) = (Some(held.outputs), held.tracker);
                match result {
                    Ok(found) => {
                        st.summary.found += found;
                        st.summary.processed += 1;
                    }
                    Err(e) => {
                        st.error = Some(e);
                        st.ended = true;
                        drop(st);
                        // Its decoder and reconnections stop now.
                        drop(lock(&s.newest).take());
                    }
                }
                // Another frame of this source may be waiting for a worker.
                *lock(&wake.0) += 1;
                wake.1.notify_all();
            }
            Pick::AllEnded => return,
            Pick::Nothing => {
                let mut n = lock(&wake.0);
                while *n == seen {
                    n = wake.1.wait(n).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

/// What a worker holds of a source while on its frame.
struct Held {
    outputs: Outputs,
    tracker: Option<ByteTrack>,
}

enum Pick {
    /// Source `i`'s frame `index`, decoded at that instant, with the source's outputs and
    /// tracker.
    Frame(usize, u64, crate::image_io::RgbImage, Instant, Box<Held>),
    AllEnded,
    Nothing,
}

/// The newest frame of the next source in turn that has one and no worker on it.
fn pick(streams: &[Stream], turn: &Mutex<usize>) -> Pick {
    let mut turn = lock(turn);
    let mut open = false;
    for k in 0..streams.len() {
        let i = (*turn + k) % streams.len();
        let s = &streams[i];
        let mut st = lock(&s.state);
        if st.ended || st.busy {
            open |= !st.ended;
            continue;
        }
        let taken = lock(&s.newest).as_ref().map_or(Take::Ended, Newest::take);
        match taken {
            Take::Frame(index, frame, at) => {
                if let Sample::Fps = st.sampler.take(index) {
                    st.summary.skipped += 1;
                    open = true;
                    continue;
                }
                let Some(outputs) = st.outputs.take() else { continue };
                let held = Box::new(Held { outputs, tracker: st.tracker.take() });
                st.busy = true;
                *turn = i + 1;
                return Pick::Frame(i, index, frame, at, held);
            }
            Take::Waiting => open = true,
            Take::Ended => st.ended = true,
        }
    }
    if open {
        Pick::Nothing
    } else {
        Pick::AllEnded
    }
}

/// Stops the source's reader and closes its outputs.
fn finish(s: Stream) -> anyhow::Result<Summary> {
    let mut st = s.state.into_inner().unwrap_or_else(|p| p.into_inner());
    let counts = s.newest.into_inner().unwrap_or_else(|p| p.into_inner()).map(Newest::finish).transpose();
    let written = st.outputs.take().map(Outputs::finish).transpose();
    if let Some(e) = st.error.take() {
        return Err(e);
    }
    let counts = counts?.unwrap_or_default();
    (st.summary.read, st.summary.dropped, st.summary.reconnects) = (counts.read, counts.dropped, counts.reconnects);
    st.summary.written = written?.unwrap_or_default();
    Ok(st.summary)
}

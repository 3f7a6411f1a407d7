//! `qdet detect` on video files, streams and cameras: frames from [`crate::video`], written
//! as they are done by [`outputs`]. Files are read one after the other, every frame in
//! order (`--vid-stride`, `--fps` sample them); live sources (URLs, cameras, `--live`) are
//! read all at once and share the workers in [`live`]. SIGTERM or Ctrl-C stops the
//! decoders: the frames at hand are finished and every output is closed.

mod live;
mod outputs;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use crate::atomic::Existing;
use crate::detector::Detector;
use crate::image_io::RgbImage;
use crate::postprocess::Detection;
use crate::track::{ByteTrack, TrackerOptions};
use crate::video::{stopping, Video};
use outputs::{Found, Outputs, Plan, Shared, Sink};

#[derive(Args)]
pub(super) struct VideoArgs {
    /// Videos: detect on every Nth frame of a file.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    vid_stride: u64,
    /// Videos and streams: detect on at most this many frames per second of the source.
    #[arg(long, value_parser = crate::options::parse_positive)]
    fps: Option<f64>,
    /// Videos and streams: JSON Lines of every processed frame to this file, or `-` for
    /// stdout [default: OUT/NAME.jsonl per video, NAME its file name].
    #[arg(long)]
    jsonl: Option<PathBuf>,
    /// Videos and streams: the processed frames with their boxes drawn, as OUT/NAME.mp4
    /// (H.264, encoded by ffmpeg).
    #[arg(long)]
    save_vid: bool,
    /// Videos and streams: each processed frame as OUT/NAME/images/NAME_FRAME.jpg with its
    /// labelme JSON beside it and its YOLO txt in OUT/NAME/labels/ (a pre-annotated dataset).
    #[arg(long)]
    save_frames: bool,
    /// Videos and streams: arguments for ffmpeg before its `-i` (hardware decoding,
    /// `-rtsp_transport tcp`, ...), as one string.
    #[arg(long, allow_hyphen_values = true)]
    ffmpeg_input_args: Option<String>,
    /// Videos and streams: track objects across frames (ByteTrack with Ultralytics'
    /// bytetrack.yaml, as `yolo track`): each detection gets an id, in the JSON lines, the
    /// drawn video, the labelme `group_id`, and OUT/NAME.mot.txt (MOTChallenge). `--conf`
    /// defaults to 0.1 with it, as in `yolo track`.
    #[arg(long)]
    pub track: bool,
    /// Treat video files as live streams (URLs and cameras always are): work on the newest
    /// frame, dropping and counting those that arrive while inference is busy.
    #[arg(long)]
    live: bool,
}

/// What one run shares across its videos.
struct Job<'a> {
    a: &'a VideoArgs,
    det: &'a Detector,
    plan: Plan,
    input_args: Vec<String>,
    /// `--jsonl`'s stream, when all videos write to one.
    jsonl: Option<Shared>,
    threads: usize,
}

/// What became of one video's frames.
#[derive(Default)]
struct Summary {
    read: u64,
    processed: u64,
    dropped: u64,
    skipped: u64,
    reconnects: u64,
    found: usize,
    written: Vec<String>,
}

/// Runs `det` on every video of `sources` with `threads` workers for live ones; true when
/// one of them failed (reported).
pub(super) fn run(
    a: &VideoArgs,
    det: &Detector,
    sources: &[PathBuf],
    dir: &Path,
    overwrite: bool,
    threads: usize,
) -> anyhow::Result<bool> {
    super::signal::stop_videos_on_signal()?;
    let existing = if overwrite { Existing::Overwrite } else { Existing::Keep };
    let jsonl = match a.jsonl.as_deref() {
        Some(p) if p == Path::new("-") => Some(Sink::Stdout),
        Some(p) => Some(Sink::file(p, existing)?),
        None => None,
    };
    let plan =
        Plan { dir: dir.to_path_buf(), existing, save_vid: a.save_vid, save_frames: a.save_frames, mot: a.track };
    let input_args =
        a.ffmpeg_input_args.as_deref().map(|s| s.split_whitespace().map(String::from).collect()).unwrap_or_default();
    let jsonl = jsonl.map(|s| std::sync::Arc::new(std::sync::Mutex::new(s)));
    let job = Job { a, det, plan, input_args, jsonl, threads };
    let (live, files): (Vec<&PathBuf>, Vec<&PathBuf>) =
        sources.iter().partition(|s| a.live || crate::video::is_live(s));
    let mut failed = false;
    for source in files {
        failed |=
            report(source, if stopping() { Err(anyhow::anyhow!("not started: stopped")) } else { file(&job, source) });
    }
    if !live.is_empty() && !stopping() {
        for (source, result) in live::run(&job, &live) {
            failed |= report(source, result);
        }
    }
    Ok(failed)
}

/// Prints what became of `source`; true when it failed.
fn report(source: &Path, result: anyhow::Result<Summary>) -> bool {
    match result {
        Ok(c) => {
            let mut text = format!("{}: {} frames, {} processed", source.display(), c.read, c.processed);
            for (n, what) in
                [(c.skipped, "skipped by --fps"), (c.dropped, "dropped while busy"), (c.reconnects, "reconnections")]
            {
                if n > 0 || what.starts_with("dropped") {
                    text += &format!(", {n} {what}");
                }
            }
            eprintln!("{text}, {} detections; {}", c.found, c.written.join(", "));
            false
        }
        Err(e) => {
            eprintln!("qdet: skipped {}", crate::cli::common::with_flag_hint(format!("{}: {e:#}", source.display())));
            true
        }
    }
}

impl Job<'_> {
    /// The detections on `frame`, or with `tracker` the tracked objects on it: the track's
    /// box (its Kalman filter's after this frame), the detection's score.
    fn detect(&self, frame: &RgbImage, tracker: Option<&mut ByteTrack>) -> anyhow::Result<Vec<Found>> {
        let dets = self.det.detect(frame)?;
        let Some(tracker) = tracker else {
            return Ok(dets.into_iter().map(|det| Found { det, id: None }).collect());
        };
        let tracks = tracker.update(&dets);
        Ok(tracks
            .into_iter()
            .map(|t| Found { det: Detection { bbox: t.bbox, score: t.score, class: t.class }, id: Some(t.id) })
            .collect())
    }

    /// A tracker per video, with `--track`.
    fn tracker(&self) -> Option<ByteTrack> {
        self.a.track.then(|| ByteTrack::new(TrackerOptions::default()))
    }

    /// Frames per second of the saved video: the source's, sampled.
    fn out_fps(&self, fps: f64, live: bool) -> f64 {
        let sampled = if live { fps } else { fps / self.a.vid_stride as f64 };
        match self.a.fps {
            Some(f) if !live && fps > 0.0 => sampled.min(f),
            _ => sampled,
        }
    }
}

/// Detects on every sampled frame of a video file, in order.
fn file(job: &Job, source: &Path) -> anyhow::Result<Summary> {
    let mut video = Video::open(source, &job.input_args)?;
    let fps = video.fps;
    let size = (video.width, video.height);
    let mut out = Outputs::open(&job.plan, source, size, job.out_fps(fps, false), false, job.jsonl.clone())?;
    let mut sampler = Sampler::new(job.a.vid_stride, job.a.fps, fps);
    let mut tracker = job.tracker();
    let mut c = Summary::default();
    let mut frame = RgbImage { width: 0, height: 0, data: Vec::new() };
    while video.next_into(&mut frame)? {
        let index = c.read;
        c.read += 1;
        match sampler.take(index) {
            Sample::Take => {}
            Sample::Stride => continue,
            Sample::Fps => {
                c.skipped += 1;
                continue;
            }
        }
        let found = job.detect(&frame, tracker.as_mut())?;
        c.found += found.len();
        out.frame(job.det, index, pts(index, fps), None, &frame, &found)?;
        c.processed += 1;
    }
    c.written = out.finish()?;
    Ok(c)
}

/// Seconds from the start of frame `index`, from the declared frame rate.
fn pts(index: u64, fps: f64) -> Option<f64> {
    (fps > 0.0).then(|| index as f64 / fps)
}

/// Which decoded frames are processed: every `--vid-stride`th (of a file; give 1 for a live
/// source), and with `--fps` at most that many per second of the source's time (its frame
/// rate, or the clock when it declares none).
struct Sampler {
    stride: u64,
    every: Option<f64>,
    fps: f64,
    due: f64,
    start: Instant,
}

enum Sample {
    Take,
    Stride,
    Fps,
}

impl Sampler {
    fn new(stride: u64, max_fps: Option<f64>, fps: f64) -> Sampler {
        Sampler { stride, every: max_fps.map(|f| 1.0 / f), fps, due: 0.0, start: Instant::now() }
    }

    fn take(&mut self, index: u64) -> Sample {
        if !index.is_multiple_of(self.stride) {
            return Sample::Stride;
        }
        let Some(every) = self.every else { return Sample::Take };
        let t = if self.fps > 0.0 { index as f64 / self.fps } else { self.start.elapsed().as_secs_f64() };
        // A margin for the rounding of index / fps: 6 / 30 must count as 0.2.
        if t + 1e-6 < self.due {
            return Sample::Fps;
        }
        // Keeps the average rate through jitter, restarts after a gap (a reconnection).
        self.due = if t - self.due > every { t + every } else { self.due + every };
        Sample::Take
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_by_stride_and_by_rate() {
        let picked = |stride, max: Option<f64>, fps, n| {
            let mut s = Sampler::new(stride, max, fps);
            (0..n).filter(|&i| matches!(s.take(i), Sample::Take)).collect::<Vec<u64>>()
        };
        assert_eq!(picked(3, None, 30.0, 10), [0, 3, 6, 9]);
        // 5 per second of a 30 fps video: every 6th frame, exactly.
        assert_eq!(picked(1, Some(5.0), 30.0, 31), [0, 6, 12, 18, 24, 30]);
        // 10 per second of a 25 fps video: 0.1 s apart on average (frames at 0.04 s steps).
        assert_eq!(picked(1, Some(10.0), 25.0, 11), [0, 3, 5, 8, 10]);
        // A rate above the source's takes every frame; with a stride, of those frames.
        assert_eq!(picked(2, Some(100.0), 25.0, 7), [0, 2, 4, 6]);
    }
}

//! `qdet detect` on video files, streams and cameras: frames from [`crate::video`], one JSON
//! line per processed frame, written as it happens.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::detector::Detector;
use crate::image_io::RgbImage;
use crate::video::{Newest, Video};

#[derive(Args)]
pub(super) struct VideoArgs {
    /// Videos and streams: detect on every Nth frame.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    vid_stride: u64,
    /// Videos and streams: JSON Lines of every processed frame to this file, or `-` for
    /// stdout [default: OUT/NAME.jsonl per video, NAME its file name].
    #[arg(long)]
    jsonl: Option<PathBuf>,
    /// Videos and streams: arguments for ffmpeg before its `-i` (hardware decoding,
    /// `-rtsp_transport tcp`, ...), as one string.
    #[arg(long, allow_hyphen_values = true)]
    ffmpeg_input_args: Option<String>,
    /// Treat video files as live streams (URLs and cameras always are): work on the newest
    /// frame, dropping and counting those that arrive while inference is busy.
    #[arg(long)]
    live: bool,
}

/// One line of the JSON Lines output.
#[derive(Serialize)]
struct FrameLine<'a> {
    source: &'a str,
    frame: u64,
    /// Seconds from the start, from the stream's declared frame rate.
    pts: Option<f64>,
    width: usize,
    height: usize,
    detections: Vec<FrameDetection>,
}

#[derive(Serialize)]
struct FrameDetection {
    class: usize,
    label: String,
    conf: f32,
    /// `[x1, y1, x2, y2]` in pixels of the frame.
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

/// Runs `det` on every video of `sources`; true when one of them failed (reported).
pub(super) fn run(
    a: &VideoArgs,
    det: &Detector,
    sources: &[PathBuf],
    dir: &Path,
    overwrite: bool,
) -> anyhow::Result<bool> {
    let input_args: Vec<String> =
        a.ffmpeg_input_args.as_deref().map(|s| s.split_whitespace().map(String::from).collect()).unwrap_or_default();
    let shared = match a.jsonl.as_deref() {
        Some(p) if p == Path::new("-") => Some(Sink::Stdout),
        Some(p) => Some(Sink::file(p, overwrite)?),
        None => None,
    };
    let mut shared = shared;
    let mut failed = false;
    for source in sources {
        let mut own;
        let sink = match shared.as_mut() {
            Some(s) => s,
            None => {
                crate::run::check_writable(dir).context("output folder is not writable")?;
                own = Sink::file(&dir.join(format!("{}.jsonl", video_name(source))), overwrite)?;
                &mut own
            }
        };
        match one(a, det, source, &input_args, sink) {
            Ok(c) => eprintln!(
                "{}: {} frames, {} processed, {} dropped while busy, {} detections; JSON Lines in {}",
                source.display(),
                c.read,
                c.processed,
                c.dropped,
                c.found,
                sink.name()
            ),
            Err(e) => {
                eprintln!("qdet: skipped {}: {e:#}", source.display());
                failed = true;
            }
        }
    }
    Ok(failed)
}

/// What became of one video's frames.
struct Counts {
    read: u64,
    processed: u64,
    dropped: u64,
    found: usize,
}

/// Detects on one video: every `--vid-stride`th frame of a file, the newest of a live source.
fn one(a: &VideoArgs, det: &Detector, source: &Path, input_args: &[String], sink: &mut Sink) -> anyhow::Result<Counts> {
    let video = Video::open(source, input_args)?;
    let name = source.to_string_lossy();
    let mut c = Counts { read: 0, processed: 0, dropped: 0, found: 0 };
    let fps = video.fps;
    let mut emit = |index: u64, frame: &RgbImage, c: &mut Counts| -> anyhow::Result<()> {
        let dets = det.detect(frame)?;
        c.found += dets.len();
        let detections = dets
            .iter()
            .map(|d| FrameDetection { class: d.class, label: det.label(d.class), conf: d.score, bbox: d.bbox })
            .collect();
        let pts = (fps > 0.0).then(|| index as f64 / fps);
        let line = FrameLine { source: &name, frame: index, pts, width: frame.width, height: frame.height, detections };
        sink.line(&serde_json::to_string(&line)?)?;
        c.processed += 1;
        Ok(())
    };
    if a.live || crate::video::is_live(source) {
        let newest = Newest::start(video);
        while let Some((index, frame)) = newest.next() {
            emit(index, &frame, &mut c)?;
        }
        (c.read, c.dropped) = newest.finish()?;
        return Ok(c);
    }
    let mut video = video;
    let mut frame = RgbImage { width: 0, height: 0, data: Vec::new() };
    while video.next_into(&mut frame)? {
        if c.read.is_multiple_of(a.vid_stride) {
            emit(c.read, &frame, &mut c)?;
        }
        c.read += 1;
    }
    Ok(c)
}

/// A name for a video's outputs: the file stem, or the URL made into a file name.
fn video_name(source: &Path) -> String {
    let text = source.to_string_lossy();
    if text.contains("://") || text.starts_with("/dev/") {
        let name: String =
            text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        return name.trim_matches('_').to_string();
    }
    source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into())
}

/// Where the lines go: each written and flushed as its frame is done.
enum Sink {
    Stdout,
    File(PathBuf, std::io::BufWriter<std::fs::File>),
}

impl Sink {
    fn file(path: &Path, overwrite: bool) -> anyhow::Result<Sink> {
        let mut open = std::fs::OpenOptions::new();
        open.write(true);
        if overwrite {
            open.create(true).truncate(true);
        } else {
            open.create_new(true);
        }
        let f = open.open(path).with_context(|| {
            format!(
                "{}: cannot be written{}",
                path.display(),
                if overwrite { "" } else { " (pass --overwrite to replace it)" }
            )
        })?;
        Ok(Sink::File(path.to_path_buf(), std::io::BufWriter::new(f)))
    }

    fn line(&mut self, text: &str) -> anyhow::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}")?;
                out.flush()?;
            }
            Sink::File(path, w) => {
                writeln!(w, "{text}").and_then(|()| w.flush()).with_context(|| format!("writing {}", path.display()))?
            }
        }
        Ok(())
    }

    fn name(&self) -> String {
        match self {
            Sink::Stdout => "stdout".into(),
            Sink::File(p, _) => p.display().to_string(),
        }
    }
}

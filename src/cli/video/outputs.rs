//! What `detect` writes for each processed frame of a video, as the frame is done: its JSON
//! line; with `--save-vid` the frame with its boxes drawn into `OUT/NAME.mp4`; with
//! `--save-frames` the frame as `OUT/NAME/images/NAME_FRAME.jpg` with its labelme JSON
//! beside it and its YOLO txt in `OUT/NAME/labels/` (a pre-annotated dataset); with
//! `--track` the MOTChallenge lines in `OUT/NAME.mot.txt`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::atomic::{self, Existing};
use crate::detector::Detector;
use crate::formats::labelme::Shape;
use crate::image_io::RgbImage;
use crate::postprocess::Detection;
use crate::video::Encoder;

/// A detection, with its track id when tracking.
pub(super) struct Found {
    pub det: Detection,
    pub id: Option<u64>,
}

/// Which outputs the flags ask for.
pub(super) struct Plan {
    pub dir: PathBuf,
    pub existing: Existing,
    pub save_vid: bool,
    pub save_frames: bool,
    pub mot: bool,
}

/// A JSON Lines or MOT text stream shared by the threads that write to it.
pub(super) type Shared = Arc<Mutex<Sink>>;

/// One video's outputs.
pub(super) struct Outputs {
    source: String,
    name: String,
    jsonl: Shared,
    video: Option<Encoder>,
    frames: Option<PathBuf>,
    mot: Option<Sink>,
    existing: Existing,
    /// The last frame index written to the video, to show each frame as long as the
    /// source did (a live source drops frames while inference is busy).
    last: Option<u64>,
    /// A live source's frames are shown as long as the source took to bring the next one.
    live: bool,
    pub written: Vec<String>,
}

/// One line of the JSON Lines output.
#[derive(Serialize)]
struct FrameLine<'a> {
    source: &'a str,
    frame: u64,
    /// Seconds from the start, from the stream's declared frame rate.
    pts: Option<f64>,
    /// Live sources: milliseconds from the frame's last byte out of the decoder to this line.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    width: usize,
    height: usize,
    detections: Vec<FrameDetection>,
}

#[derive(Serialize)]
struct FrameDetection {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    class: usize,
    label: String,
    conf: f32,
    /// `[x1, y1, x2, y2]` in pixels of the frame.
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

impl Outputs {
    /// The outputs of `source` (frames of `size`; the saved video at `fps`), its JSON lines
    /// going to `jsonl` or to `OUT/NAME.jsonl`.
    pub(super) fn open(
        plan: &Plan,
        source: &Path,
        size: (usize, usize),
        fps: f64,
        live: bool,
        jsonl: Option<Shared>,
    ) -> anyhow::Result<Outputs> {
        let name = video_name(source);
        let at = |ext: &str| plan.dir.join(format!("{name}.{ext}"));
        if jsonl.is_none() || plan.save_vid || plan.save_frames || plan.mot {
            crate::run::check_writable(&plan.dir).context("output folder is not writable")?;
        }
        let jsonl = match jsonl {
            Some(s) => s,
            None => Arc::new(Mutex::new(Sink::file(&at("jsonl"), plan.existing)?)),
        };
        let mut written = vec![format!("JSON Lines in {}", lock(&jsonl).name())];
        let video = if plan.save_vid {
            written.push(format!("video in {}", at("mp4").display()));
            Some(Encoder::create(&at("mp4"), size.0, size.1, fps, plan.existing)?)
        } else {
            None
        };
        let frames = plan.save_frames.then(|| plan.dir.join(&name));
        if let Some(f) = &frames {
            for sub in ["images", "labels"] {
                let d = f.join(sub);
                std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
            }
            written.push(format!("frames in {}", f.display()));
        }
        let mot = if plan.mot {
            written.push(format!("tracks in {}", at("mot.txt").display()));
            Some(Sink::file(&at("mot.txt"), plan.existing)?)
        } else {
            None
        };
        let source = source.to_string_lossy().into_owned();
        Ok(Outputs { source, name, jsonl, video, frames, mot, existing: plan.existing, last: None, live, written })
    }

    /// Writes frame `index` (`pts` seconds in; of a live source, decoded at `at`) and what
    /// was found on it.
    pub(super) fn frame(
        &mut self,
        det: &Detector,
        index: u64,
        pts: Option<f64>,
        at: Option<Instant>,
        frame: &RgbImage,
        found: &[Found],
    ) -> anyhow::Result<()> {
        let detections = found
            .iter()
            .map(|f| FrameDetection {
                id: f.id,
                class: f.det.class,
                label: det.label(f.det.class),
                conf: f.det.score,
                bbox: f.det.bbox,
            })
            .collect();
        let (width, height) = (frame.width, frame.height);
        let latency_ms = at.map(|t| (t.elapsed().as_secs_f64() * 1e4).round() / 10.0);
        let line = FrameLine { source: &self.source, frame: index, pts, latency_ms, width, height, detections };
        lock(&self.jsonl).line(&serde_json::to_string(&line)?)?;
        if let Some(mot) = self.mot.as_mut() {
            mot.line(&mot_lines(index, found))?;
        }
        if let Some(dir) = &self.frames {
            save_frame(det, dir, &self.name, index, frame, found, self.existing)?;
        }
        if let Some(video) = self.video.as_mut() {
            let mut drawn = frame.clone();
            crate::draw::annotate_tagged(
                &mut drawn,
                found.iter().map(|f| {
                    let tag = format!("{} {:.2}", det.label(f.det.class), f.det.score);
                    (&f.det, f.id.map_or(tag.clone(), |id| format!("id:{id} {tag}")))
                }),
            );
            // A file's sampled frames are shown once each at the sampled rate; a live
            // source's as long as the source took to bring the next one.
            let times = match self.last {
                Some(last) if self.live => index.saturating_sub(last).max(1),
                _ => 1,
            };
            video.write(&drawn, times)?;
            self.last = Some(index);
        }
        Ok(())
    }

    /// Closes the video (its mp4 moved into place) and the other streams.
    pub(super) fn finish(mut self) -> anyhow::Result<Vec<String>> {
        if let Some(v) = self.video.take() {
            v.finish()?;
        }
        Ok(std::mem::take(&mut self.written))
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Sink> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// MOTChallenge rows (`frame,id,x,y,w,h,conf,-1,-1,-1`, frames from 1) of the tracked boxes.
fn mot_lines(index: u64, found: &[Found]) -> String {
    let rows: Vec<String> = found
        .iter()
        .filter_map(|f| {
            let [x1, y1, x2, y2] = f.det.bbox;
            let id = f.id?;
            Some(format!(
                "{},{id},{x1:.2},{y1:.2},{:.2},{:.2},{:.4},-1,-1,-1",
                index + 1,
                x2 - x1,
                y2 - y1,
                f.det.score
            ))
        })
        .collect();
    rows.join("\n")
}

/// The frame as a JPEG with its labelme JSON beside it, and its YOLO txt under `labels/`.
fn save_frame(
    det: &Detector,
    dir: &Path,
    name: &str,
    index: u64,
    frame: &RgbImage,
    found: &[Found],
    existing: Existing,
) -> anyhow::Result<()> {
    let stem = format!("{name}_{index:06}");
    let image = dir.join("images").join(format!("{stem}.jpg"));
    atomic::write(&image, &crate::image_io::encode(frame, &image)?, existing)?;
    let (w, h) = (frame.width as u32, frame.height as u32);
    let shapes = found
        .iter()
        .map(|f| Shape {
            group_id: f.id.and_then(|i| i64::try_from(i).ok()),
            ..Shape::from_detection(&f.det, det.label(f.det.class))
        })
        .collect();
    let json = crate::formats::labelme::LabelmeFile::new(format!("{stem}.jpg"), w, h, shapes).to_json();
    atomic::write(&dir.join("images").join(format!("{stem}.json")), &json, existing)?;
    let dets: Vec<Detection> = found.iter().map(|f| f.det).collect();
    let txt = crate::formats::yolo::detections_to_txt(&dets, w, h, false);
    atomic::write(&dir.join("labels").join(format!("{stem}.txt")), txt.as_bytes(), existing)?;
    Ok(())
}

/// A name for a video's outputs: the file stem, or the URL made into a file name.
pub(super) fn video_name(source: &Path) -> String {
    let text = source.to_string_lossy();
    if text.contains("://") || text.starts_with("/dev/") {
        let name: String =
            text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        return name.trim_matches('_').to_string();
    }
    source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into())
}

/// Where lines go: each written and flushed as its frame is done.
pub(super) enum Sink {
    Stdout,
    File(PathBuf, std::io::BufWriter<std::fs::File>),
}

impl Sink {
    pub(super) fn file(path: &Path, existing: Existing) -> anyhow::Result<Sink> {
        let mut open = std::fs::OpenOptions::new();
        open.write(true);
        if existing == Existing::Overwrite {
            open.create(true).truncate(true);
        } else {
            open.create_new(true);
        }
        let f = open.open(path).with_context(|| {
            let hint = if existing == Existing::Overwrite { "" } else { " (pass --overwrite to replace it)" };
            format!("{}: cannot be written{hint}", path.display())
        })?;
        Ok(Sink::File(path.to_path_buf(), std::io::BufWriter::new(f)))
    }

    /// Writes `text` and a line break (nothing for an empty text) and flushes.
    pub(super) fn line(&mut self, text: &str) -> anyhow::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
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

    pub(super) fn name(&self) -> String {
        match self {
            Sink::Stdout => "stdout".into(),
            Sink::File(p, _) => p.display().to_string(),
        }
    }
}

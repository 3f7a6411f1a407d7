//! Annotated frames to an H.264 mp4 through an `ffmpeg` child reading raw RGB on its
//! stdin: the same no-link design as decoding. The file is written under a temporary name
//! and moved into place once ffmpeg has closed it, so an mp4 at its final name is always
//! complete and playable; dropping an encoder (an error, a stop signal) finishes it too.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::thread::JoinHandle;

use super::{ffmpeg, missing};
use crate::atomic::{self, Existing};
use crate::error::{Error, Result};
use crate::image_io::RgbImage;

pub struct Encoder {
    dest: PathBuf,
    tmp: PathBuf,
    existing: Existing,
    child: Child,
    stdin: Option<ChildStdin>,
    /// ffmpeg's messages, read on a thread so that a chatty ffmpeg never blocks on them.
    errors: Option<JoinHandle<String>>,
    width: usize,
    height: usize,
    written: u64,
}

impl Encoder {
    /// Starts writing `dest`: frames of `width` x `height` shown at `fps` each.
    pub fn create(dest: &Path, width: usize, height: usize, fps: f64, existing: Existing) -> Result<Encoder> {
        let tmp = atomic::reserve(dest, existing)?;
        let rate = if fps > 0.0 { fps } else { 25.0 };
        let spawned = ffmpeg()
            .args(["-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{width}x{height}"), "-framerate", &format!("{rate}"), "-i", "pipe:0"])
            // yuv420p (what every player reads) wants even sides: an odd one gets a pixel of padding.
            .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast"])
            .args(["-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", "-y"])
            .arg(&tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(missing("ffmpeg", e));
            }
        };
        let stdin = child.stdin.take();
        let errors = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = e.read_to_string(&mut text);
                text
            })
        });
        Ok(Encoder { dest: dest.into(), tmp, existing, child, stdin, errors, width, height, written: 0 })
    }

    /// Appends `frame`, shown `times` frame periods (a live source's dropped frames keep
    /// the video in real time).
    pub fn write(&mut self, frame: &RgbImage, times: u64) -> Result<()> {
        if (frame.width, frame.height) != (self.width, self.height) {
            let why = format!("a {}x{} frame in a {}x{} video", frame.width, frame.height, self.width, self.height);
            return Err(Error::format(&self.dest, why));
        }
        let Some(stdin) = self.stdin.as_mut() else { return Err(Error::format(&self.dest, "already finished")) };
        for _ in 0..times {
            if let Err(e) = stdin.write_all(&frame.data) {
                let (_, said) = self.close();
                let _ = std::fs::remove_file(&self.tmp);
                return Err(Error::format(&self.dest, format!("ffmpeg stopped encoding ({e}): {said}")));
            }
            self.written += 1;
        }
        Ok(())
    }

    /// Closes the video and moves it to its name; returns the frames written.
    pub fn finish(mut self) -> Result<u64> {
        self.end()
    }

    fn end(&mut self) -> Result<u64> {
        if self.stdin.is_none() && self.errors.is_none() {
            return Ok(self.written);
        }
        let (ok, said) = self.close();
        if !ok {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::format(&self.dest, format!("ffmpeg could not write the video: {said}")));
        }
        atomic::publish(&self.tmp, &self.dest, self.existing)?;
        Ok(self.written)
    }

    /// Ends ffmpeg's input and waits for it: whether it exited cleanly, and its last message.
    fn close(&mut self) -> (bool, String) {
        drop(self.stdin.take());
        let ok = self.child.wait().is_ok_and(|s| s.success());
        let text = self.errors.take().and_then(|t| t.join().ok()).unwrap_or_default();
        (ok, text.lines().last().unwrap_or("no message").trim().to_string())
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

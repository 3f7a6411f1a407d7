//! Video files and streams through the system `ffmpeg`, as Frigate decodes its cameras: a
//! child process writes raw RGB frames to a pipe, so every codec, container and protocol
//! ffmpeg has works (hardware decoding through its input arguments), with no link-time
//! dependency. `ffprobe` gives the frame size and rate first.
//!
//! [`Newest`] reads a live source on its own thread, keeping only the newest frame and
//! reconnecting when a stream drops; [`Encoder`] writes frames to an mp4 through another
//! `ffmpeg`. Every child runs in its own process group, so a Ctrl-C at the terminal reaches
//! qdet alone, which then stops the decoders ([`stop_all`]) and closes the encoders itself.

mod encode;
mod newest;

pub use encode::Encoder;
pub use newest::{Newest, Reconnect, Take, Wake};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::{Error, Result};
use crate::image_io::RgbImage;

/// Extensions taken as video files (Ultralytics' VID_FORMATS, the common ones).
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mkv", "avi", "mov", "ts", "webm", "m4v", "mpg", "mpeg", "wmv", "asf"];

/// Whether `source` names a video: a video file, a stream URL or a V4L2 camera.
pub fn is_video(source: &Path) -> bool {
    let text = source.to_string_lossy();
    let url = ["rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://"];
    url.iter().any(|u| text.starts_with(u))
        || text.starts_with("/dev/video")
        || source
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Whether `source` is live (a stream URL or a camera): frames come at their own pace, and
/// the newest one is what matters.
pub fn is_live(source: &Path) -> bool {
    let text = source.to_string_lossy();
    text.contains("://") || text.starts_with("/dev/video")
}

/// Frames of one video, decoded by an `ffmpeg` child process.
pub struct Video {
    source: PathBuf,
    /// Shared with a [`Newest`] reading this video on its thread, which stops the decoder
    /// when dropped, and with [`stop_all`].
    child: Arc<Mutex<Child>>,
    out: ChildStdout,
    pub width: usize,
    pub height: usize,
    /// Frames per second as the stream declares it (0 when it declares none).
    pub fps: f64,
    /// Frames read so far.
    read: u64,
}

/// What `ffprobe` reports of the first video stream.
struct Probe {
    width: usize,
    height: usize,
    fps: f64,
}

fn missing(tool: &str, e: std::io::Error) -> Error {
    Error::Invalid(if e.kind() == std::io::ErrorKind::NotFound {
        format!("{tool} not found: videos and streams are decoded by ffmpeg (Debian, Ubuntu: apt install ffmpeg)")
    } else {
        format!("cannot run {tool}: {e}")
    })
}

/// `num/den` as ffprobe writes frame rates.
fn rate(text: &str) -> f64 {
    match text.split_once('/') {
        Some((n, d)) => match (n.trim().parse::<f64>(), d.trim().parse::<f64>()) {
            (Ok(n), Ok(d)) if d > 0.0 => n / d,
            _ => 0.0,
        },
        None => text.trim().parse().unwrap_or(0.0),
    }
}

fn probe(source: &Path, input_args: &[String]) -> Result<Probe> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,avg_frame_rate,r_frame_rate",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .args(input_args)
        .arg(source)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing("ffprobe", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')));
    let size = |k: &str| field(k).and_then(|v| v.trim().parse::<usize>().ok()).filter(|&v| v > 0);
    let (Some(width), Some(height)) = (size("width"), size("height")) else {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().last().unwrap_or("no video stream").trim().to_string();
        return Err(Error::format(source, format!("not a readable video: {why}")));
    };
    let fps = [field("avg_frame_rate"), field("r_frame_rate")].into_iter().flatten().map(rate).find(|&r| r > 0.0);
    Ok(Probe { width, height, fps: fps.unwrap_or(0.0) })
}

impl Video {
    /// Opens `source` (a file, URL or device) with ffmpeg's `input_args` before `-i`.
    pub fn open(source: &Path, input_args: &[String]) -> Result<Video> {
        // ffprobe takes the demuxer's options (`-rtsp_transport tcp`) but not ffmpeg's own
        // (`-re`, `-hwaccel`): without them it still reads the size and rate.
        let p =
            probe(source, input_args).or_else(|e| if input_args.is_empty() { Err(e) } else { probe(source, &[]) })?;
        // The size is what the stream claims: refuse it before allocating a frame.
        if (p.width as u64) * (p.height as u64) > crate::image_io::max_pixels() {
            return Err(Error::format(
                source,
                format!("frames of {}x{} exceed --max-pixels {}", p.width, p.height, crate::image_io::max_pixels()),
            ));
        }
        let mut child = ffmpeg()
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .args(input_args)
            .arg("-i")
            .arg(source)
            // Every decoded frame once, none duplicated or dropped to make a constant rate.
            .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| missing("ffmpeg", e))?;
        let out = child.stdout.take().ok_or_else(|| Error::Invalid("ffmpeg gave no output pipe".into()))?;
        let child = Arc::new(Mutex::new(child));
        register(&child);
        if stopping() {
            stop(&child);
            return Err(Error::Invalid("stopped by a signal".into()));
        }
        Ok(Video { source: source.to_path_buf(), child, out, width: p.width, height: p.height, fps: p.fps, read: 0 })
    }

    /// The next frame, `None` at the end of the video; reuses `frame`'s buffer.
    pub fn next_into(&mut self, frame: &mut RgbImage) -> Result<bool> {
        let len = self.width * self.height * 3;
        frame.width = self.width;
        frame.height = self.height;
        frame.data.resize(len, 0);
        let mut got = 0;
        while got < len {
            match self.out.read(&mut frame.data[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.source, e)),
            }
        }
        // A decoder stopped by a signal may end mid-frame: that is the end, not damage.
        if got == 0 || stopping() {
            return Ok(false);
        }
        if got < len {
            return Err(Error::format(&self.source, format!("frame {} ends after {got} of {len} bytes", self.read)));
        }
        self.read += 1;
        Ok(true)
    }
}

/// `ffmpeg` in its own process group: a terminal's Ctrl-C goes to qdet, which ends its
/// children in order (an encoder interrupted by the signal itself could leave an mp4
/// without its index while qdet still writes to it).
fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c
}

static STOPPING: AtomicBool = AtomicBool::new(false);
static DECODERS: Mutex<Vec<Weak<Mutex<Child>>>> = Mutex::new(Vec::new());

fn register(child: &Arc<Mutex<Child>>) {
    let mut all = DECODERS.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(child));
}

/// Stops every decoder now and refuses new ones: their frames end, so the loops reading
/// them finish the frame at hand and close their outputs (SIGTERM, Ctrl-C).
pub fn stop_all() {
    STOPPING.store(true, Ordering::SeqCst);
    let all: Vec<_> = DECODERS.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect();
    for child in all {
        stop(&child);
    }
}

/// Whether [`stop_all`] was called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Stops an ffmpeg child: a stream never ends by itself.
fn stop(child: &Mutex<Child>) {
    let mut c = child.lock().unwrap_or_else(|p| p.into_inner());
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Video {
    fn drop(&mut self) {
        stop(&self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_videos_by_extension_scheme_or_device() {
        for v in [
            "clip.mp4",
            "a/b.MKV",
            "rtsp://10.0.0.2:554/cam",
            "rtmp://x/live",
            "https://x/v.m3u8",
            "/dev/video0",
            "udp://@:5000",
        ] {
            assert!(is_video(Path::new(v)), "{v}");
        }
        for v in ["a.jpg", "dir/", "video", "b.png"] {
            assert!(!is_video(Path::new(v)), "{v}");
        }
        assert_eq!((rate("30000/1001") * 1000.0).round(), 29970.0);
        assert_eq!((rate("25/1"), rate("0/0"), rate("12.5")), (25.0, 0.0, 12.5));
    }
}

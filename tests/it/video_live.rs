//! Live sources end to end: a stream that drops is reconnected and its frames go on
//! counting, and SIGTERM finishes the frame at hand and closes every output (the mp4
//! playable, every JSON line whole). The stream is the committed clip as MPEG-TS, served
//! over TCP by a loopback server in this test: each connection gets the clip once at 3x its
//! pace and is closed, which is a camera dropping as far as ffmpeg can tell.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// `qdet detect ARGS` in `dir`, its stdout and stderr lines collected as they come.
struct Run {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Run {
    fn start(args: &[&str], dir: &Path) -> Run {
        let mut child = command()
            .arg("detect")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |r: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(l);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Run { child, out, err }
    }

    /// Waits (at most 60 s) until `ready` holds of the stdout and stderr lines so far.
    fn wait_for(&self, what: &str, ready: impl Fn(&[String], &[String]) -> bool) {
        let start = Instant::now();
        while !ready(&self.out.lock().unwrap(), &self.err.lock().unwrap()) {
            assert!(start.elapsed() < Duration::from_secs(60), "no {what}: {:?}", self.err.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit: (success, stdout lines, stderr).
    fn terminate(mut self) -> (bool, Vec<Value>, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200)); // the readers drain the pipes
        let out = self.out.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        (status.success(), out, self.err.lock().unwrap().join("\n"))
    }
}

fn clip() -> String {
    root().join("tests/data/video/moving.mp4").to_string_lossy().into_owned()
}

/// The numbers of the summary line of `source` in `err`.
fn counts(err: &str, source: &str) -> Vec<u64> {
    let line = err.lines().find(|l| l.starts_with(&format!("{source}: "))).unwrap_or_else(|| panic!("{err}"));
    let rest = &line[source.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect()
}

#[test]
fn sigterm_finishes_the_frame_at_hand_and_closes_every_output() {
    let d = tempfile::tempdir().unwrap();
    // The clip looped forever at its pace: a stream that never ends by itself.
    let args = ["--model", &model(), &clip(), "--live", "--ffmpeg-input-args", "-re -stream_loop -1"];
    let run =
        Run::start(&[&args[..], &["--jsonl", "-", "--save-vid", "--out", "out", "--threads", "1"]].concat(), d.path());
    run.wait_for("5 JSON lines", |out, _| out.len() >= 5);
    let (ok, lines, err) = run.terminate();
    assert!(ok, "{err}");
    assert!(err.contains("qdet: stopping"), "{err}");
    let n = counts(&err, &clip());
    let processed = n[1];
    assert_eq!(lines.len() as u64, processed, "{err}");
    assert!(lines.windows(2).all(|w| w[0]["frame"].as_u64() < w[1]["frame"].as_u64()));
    // The mp4 is whole: ffprobe reads as many frames as there were since the first processed
    // one (a live source's frames are shown as long as the source took).
    let last = lines.last().unwrap()["frame"].as_u64().unwrap();
    let first = lines[0]["frame"].as_u64().unwrap();
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(d.path().join("out/moving.mp4"))
        .output()
        .unwrap();
    let frames: u64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or_else(|_| panic!("{o:?}"));
    assert_eq!(frames, last - first + 1, "{err}");
}

/// Serves `ts` to every connection at 3x the clip's pace, then closes it.
fn serve_once_per_connection(ts: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ts = Arc::new(ts);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let (Ok(mut conn), ts) = (conn, ts.clone()) else { continue };
            std::thread::spawn(move || {
                // 6 s of video in 2 s: 20 chunks, 100 ms apart.
                for chunk in ts.chunks(ts.len().div_ceil(20)) {
                    if conn.write_all(chunk).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    port
}

#[test]
fn a_stream_that_drops_is_reconnected_and_its_frames_go_on_counting() {
    let d = tempfile::tempdir().unwrap();
    let ts = d.path().join("moving.ts");
    let o = Command::new("ffmpeg").args(["-v", "error", "-i", &clip(), "-c", "copy", "-f", "mpegts"]).arg(&ts).output();
    assert!(o.unwrap().status.success());
    let port = serve_once_per_connection(std::fs::read(&ts).unwrap());
    let url = format!("tcp://127.0.0.1:{port}");
    let run = Run::start(&["--model", &model(), &url, "--jsonl", "-", "--threads", "1"], d.path());
    // Frames of the second connection count on from those of the first.
    run.wait_for("a reconnection and frames after it", |out, err| {
        err.iter().any(|l| l.contains("reconnected"))
            && out.last().is_some_and(|l| serde_json::from_str::<Value>(l).unwrap()["frame"].as_u64() > Some(70))
    });
    let (ok, lines, err) = run.terminate();
    assert!(ok, "{err}");
    assert!(err.contains(&format!("{url}: the stream ended; reconnecting in 1 s")), "{err}");
    let frames: Vec<u64> = lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "{frames:?}");
    let n = counts(&err, &url);
    // "URL: R frames, P processed, D dropped while busy, C reconnections, ..."
    let (read, processed, dropped, reconnects) = (n[0], n[1], n[2], n[3]);
    assert!(reconnects >= 1 && read > 60, "{err}");
    assert_eq!((processed, processed + dropped), (frames.len() as u64, read), "{err}");
}

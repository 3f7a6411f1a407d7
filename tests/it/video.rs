//! `qdet detect` on a video through the system ffmpeg: the detections of each decoded frame
//! equal those `detect` gives on the same frames extracted by ffmpeg as PNG files, one JSON
//! line per processed frame, `--vid-stride`, and a clear error without ffmpeg.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// A 6-frame H.264 clip of fixture images (letterboxed to 480x360, 5 fps) in `dir`.
fn clip(dir: &Path) -> std::path::PathBuf {
    clip_of(dir, 6, "5", "clip.mp4")
}

/// `frames` fixture images as an H.264 clip at `fps`, named `name`, in `dir`.
fn clip_of(dir: &Path, frames: usize, fps: &str, name: &str) -> std::path::PathBuf {
    for i in 0..frames {
        std::fs::copy(val(&format!("val_{:04}.jpg", i % 40)), dir.join(format!("f{i}.jpg"))).unwrap();
    }
    let out = dir.join(name);
    let vf = "scale=480:360:force_original_aspect_ratio=decrease,pad=480:360:(ow-iw)/2:(oh-ih)/2";
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-framerate", fps, "-i", "f%d.jpg", "-vf", vf, "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&out)
        .current_dir(dir)
        .output()
        .expect("ffmpeg runs (.ci/run installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn lines(p: &Path) -> Vec<Value> {
    read(p).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `(label, box, conf)` of a labelme file's shapes, or of a JSON line's detections.
fn labelme_dets(v: &Value) -> Vec<(String, [f64; 4], f64)> {
    v["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let p = &s["points"];
            let b = [
                p[0][0].as_f64().unwrap(),
                p[0][1].as_f64().unwrap(),
                p[1][0].as_f64().unwrap(),
                p[1][1].as_f64().unwrap(),
            ];
            (s["label"].as_str().unwrap().to_string(), b, s["score"].as_f64().unwrap())
        })
        .collect()
}

fn line_dets(v: &Value) -> Vec<(String, [f64; 4], f64)> {
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            (d["label"].as_str().unwrap().to_string(), [b[0], b[1], b[2], b[3]], d["conf"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn video_frames_give_the_detections_of_the_same_frames_as_png() {
    let d = tempfile::tempdir().unwrap();
    let video = clip(d.path());
    let o = qdet(&["detect", "--model", &model(), video.to_str().unwrap(), "--jsonl", "clip.jsonl"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("clip.mp4: 6 frames, 6 processed"), "{}", stderr(&o));
    let got = lines(&d.path().join("clip.jsonl"));
    assert_eq!(got.len(), 6);
    // ffmpeg's own frames, as lossless PNG, through the image path.
    std::fs::create_dir(d.path().join("frames")).unwrap();
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i", "clip.mp4", "-fps_mode", "passthrough", "frames/%d.png"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = qdet(&["detect", "--model", &model(), "frames", "--out", "png"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let mut boxes = 0;
    for (i, line) in got.iter().enumerate() {
        assert_eq!(
            (line["frame"].as_u64(), line["width"].as_u64(), line["height"].as_u64()),
            (Some(i as u64), Some(480), Some(360))
        );
        assert!((line["pts"].as_f64().unwrap() - i as f64 / 5.0).abs() < 1e-9);
        let png = json(&d.path().join(format!("png/{}.json", i + 1)));
        let (a, b) = (line_dets(line), labelme_dets(&png));
        assert_eq!(a.len(), b.len(), "frame {i}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0, "frame {i}");
            assert!(x.1.iter().zip(&y.1).all(|(p, q)| (p - q).abs() < 1e-3), "frame {i}: {x:?} {y:?}");
            assert!((x.2 - y.2).abs() < 1e-6, "frame {i}: {x:?} {y:?}");
        }
        boxes += a.len();
    }
    assert!(boxes >= 12, "{boxes} detections in 6 frames");
    // Every second frame, to stdout.
    let o = qdet(&["detect", "--model", &model(), "clip.mp4", "--jsonl", "-", "--vid-stride", "2"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let frames: Vec<u64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(frames, [0, 2, 4]);
}

#[test]
fn without_ffmpeg_a_video_is_an_error_naming_the_package() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("clip.mp4"), b"not decoded").unwrap();
    let o = command()
        .args(["detect", "--model", &model(), "clip.mp4", "--out", "o"])
        .current_dir(d.path())
        .env("PATH", d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "ffprobe not found: videos and streams are decoded by ffmpeg (Debian, Ubuntu: apt install ffmpeg)"
        ),
        "{}",
        stderr(&o)
    );
}

/// A live source (here a file ffmpeg paces at its 1000 fps with `-re`, faster than any
/// inference) is read on its own thread: the newest frame is taken, those that came while
/// inference was busy are dropped and counted, never queued; every frame is either processed
/// or dropped, in order.
#[test]
fn a_live_source_faster_than_inference_drops_and_counts_frames() {
    let d = tempfile::tempdir().unwrap();
    clip_of(d.path(), 100, "1000", "fast.mp4");
    let o = qdet(
        &[
            "detect",
            "--model",
            &model(),
            "fast.mp4",
            "--live",
            "--ffmpeg-input-args",
            "-re",
            "--jsonl",
            "-",
            "--threads",
            "1",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let frames: Vec<u64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["frame"].as_u64().unwrap())
        .collect();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "{frames:?}");
    let err = stderr(&o);
    let counts = err.lines().find(|l| l.starts_with("fast.mp4: ")).unwrap_or_else(|| panic!("{err}"));
    let n: Vec<u64> = counts.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
    // "fast.mp4: 100 frames, P processed, D dropped while busy, ..." (the 4 of mp4 first).
    let (read, processed, dropped) = (n[1], n[2], n[3]);
    assert_eq!((read, processed as usize), (100, frames.len()), "{counts}");
    assert_eq!(processed + dropped, read, "{counts}");
    assert!(dropped > 0 && processed > 0, "{counts}");
    assert_eq!(frames.last(), Some(&99), "the last frame is the newest when the source ends");
}

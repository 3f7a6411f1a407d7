//! `detect --track` and the video outputs on a committed clip of fixture images crossing
//! (tests/data/video/moving.mp4): the tracks equal Ultralytics' `track` with
//! `tracker=bytetrack.yaml` on the same frames (tools/parity/track_reference.py), and the
//! annotated mp4, the sampled frames as a labelme / YOLO dataset, and the MOTChallenge file
//! agree with the JSON lines.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

fn clip() -> String {
    root().join("tests/data/video/moving.mp4").to_string_lossy().into_owned()
}

fn lines(p: &Path) -> Vec<Value> {
    read(p).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `(id, box)` of each detection of a JSON line.
fn tracked(line: &Value) -> Vec<(u64, [f64; 4])> {
    let dets = line["detections"].as_array().unwrap();
    dets.iter()
        .map(|d| {
            let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            (d["id"].as_u64().unwrap(), [b[0], b[1], b[2], b[3]])
        })
        .collect()
}

/// What ffprobe says of a video's stream: frames, size, rate.
fn probe(p: &Path) -> (u64, String, String) {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames,width,height,r_frame_rate"])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(p)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("{text}")).to_string();
    (
        field("nb_read_frames=").parse().unwrap(),
        format!("{}x{}", field("width="), field("height=")),
        field("r_frame_rate="),
    )
}

#[test]
fn track_ids_and_boxes_equal_ultralytics_bytetrack() {
    let d = tempfile::tempdir().unwrap();
    let o = qdet(&["detect", "--model", &model(), &clip(), "--track", "--out", "out"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let got = lines(&d.path().join("out/moving.jsonl"));
    let want = json(&root().join("tests/data/video/moving.track.json"));
    let want = want["frames"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    // Ids are compared through a one-to-one relabelling, built as frames go.
    let (mut ours, mut theirs) = (HashMap::new(), HashMap::new());
    let mut boxes = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let mut g = tracked(g);
        let mut w: Vec<(u64, [f64; 4])> = w
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let r: Vec<f64> = r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                (r[4] as u64, [r[0], r[1], r[2], r[3]])
            })
            .collect();
        assert_eq!(g.len(), w.len(), "frame {i}: {g:?} vs {w:?}");
        g.sort_by(|a, b| a.1[0].total_cmp(&b.1[0]));
        w.sort_by(|a, b| a.1[0].total_cmp(&b.1[0]));
        for ((gi, gb), (wi, wb)) in g.iter().zip(&w) {
            let (was_theirs, was_ours) = (*ours.entry(*gi).or_insert(*wi), *theirs.entry(*wi).or_insert(*gi));
            assert_eq!(was_theirs, *wi, "frame {i}: our id {gi} was their {was_theirs}");
            assert_eq!(was_ours, *gi, "frame {i}: their id {wi} was our {was_ours}");
            let off = gb.iter().zip(wb).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(off < 0.01, "frame {i} id {gi}: {gb:?} vs {wb:?}");
            boxes += 1;
        }
    }
    // The clip has tracks that start, cross and end: a reference of a few still boxes would
    // prove little.
    assert!(boxes >= 150 && ours.len() >= 6, "{boxes} boxes, {} ids", ours.len());
    // The MOTChallenge file holds the same tracks, frames counted from 1.
    let mot = read(&d.path().join("out/moving.mot.txt"));
    assert_eq!(mot.lines().count(), boxes);
    let first = tracked(&got[0]);
    let row = format!("1,{},{:.2},{:.2},", first[0].0, first[0].1[0], first[0].1[1]);
    assert!(mot.lines().next().unwrap().starts_with(&row), "{row} / {mot:.80}");
    assert!(mot.lines().all(|l| l.ends_with(",-1,-1,-1") && l.split(',').count() == 10), "{mot:.200}");
}

#[test]
fn the_saved_video_and_frames_follow_the_json_lines() {
    let d = tempfile::tempdir().unwrap();
    let args = ["detect", "--model", &model(), &clip(), "--vid-stride", "20", "--save-vid", "--save-frames", "--track"];
    let o = qdet(&[&args[..], &["--out", "out"]].concat(), d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let got = lines(&d.path().join("out/moving.jsonl"));
    let frames: Vec<u64> = got.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert_eq!(frames, [0, 20, 40]);
    // Every 20th frame of a 10 fps clip: a 0.5 fps video of those three frames, playable.
    assert_eq!(probe(&d.path().join("out/moving.mp4")), (3, "640x480".into(), "1/2".into()));
    for line in &got {
        let stem = format!("moving_{:06}", line["frame"].as_u64().unwrap());
        let images = d.path().join("out/moving/images");
        let image = crate::util::rects(&json(&images.join(format!("{stem}.json"))));
        let dets = line["detections"].as_array().unwrap();
        assert_eq!(image.len(), dets.len(), "{stem}");
        let file = json(&images.join(format!("{stem}.json")));
        assert_eq!(file["imagePath"], format!("{stem}.jpg"));
        assert_eq!((file["imageWidth"].as_u64(), file["imageHeight"].as_u64()), (Some(640), Some(480)));
        for (s, det) in file["shapes"].as_array().unwrap().iter().zip(dets) {
            assert_eq!((&s["label"], &s["group_id"]), (&det["label"], &det["id"]), "{stem}");
        }
        assert!(images.join(format!("{stem}.jpg")).is_file());
        let txt = read(&d.path().join(format!("out/moving/labels/{stem}.txt")));
        assert_eq!(txt.lines().count(), dets.len(), "{stem}");
    }
    // Run again: nothing is overwritten without --overwrite.
    let again = qdet(&[&args[..], &["--out", "out"]].concat(), d.path());
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--overwrite"), "{}", stderr(&again));
}

#[test]
fn videos_inside_a_folder_are_found_and_run_beside_its_images() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("cam")).unwrap();
    std::fs::copy(root().join("tests/data/video/moving.mp4"), src.join("cam/moving.mp4")).unwrap();
    std::fs::copy(val("val_0000.jpg"), src.join("val_0000.jpg")).unwrap();
    let o = qdet(&["detect", "--model", &model(), "src", "--vid-stride", "30", "--out", "out"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let frames: Vec<u64> =
        lines(&d.path().join("out/moving.jsonl")).iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert_eq!(frames, [0, 30]);
    assert!(d.path().join("out/val_0000.json").is_file(), "{:?}", tree(&d.path().join("out")));
    // A folder of videos alone is a run too.
    let o = qdet(&["detect", "--model", &model(), "src/cam", "--vid-stride", "30", "--out", "out2"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&d.path().join("out2/moving.jsonl")).len(), 2);
}

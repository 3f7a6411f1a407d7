//! The tracker against Ultralytics' BYTETracker on the scenes of
//! tools/parity/bytetrack_reference.py (tests/data/bytetrack/).

use super::*;

#[derive(serde::Deserialize)]
struct Config {
    track_high_thresh: f64,
    track_low_thresh: f64,
    new_track_thresh: f64,
    track_buffer: u32,
    match_thresh: f64,
    fuse_score: bool,
}

#[derive(serde::Deserialize)]
struct Scene {
    config: Config,
    /// Per frame, rows of x1, y1, x2, y2, score, class.
    frames: Vec<Vec<[f64; 6]>>,
    /// Per frame, BYTETracker's rows x1, y1, x2, y2, track_id, score, cls, idx.
    outputs: Vec<Vec<[f64; 8]>>,
}

fn detections(rows: &[[f64; 6]]) -> Vec<Detection> {
    // As the reference builds its float32 arrays: float64 numbers narrowed.
    let f = |v: f64| v as f32;
    rows.iter()
        .map(|r| Detection { bbox: [f(r[0]), f(r[1]), f(r[2]), f(r[3])], score: f(r[4]), class: r[5] as usize })
        .collect()
}

/// Runs a scene and checks every frame's rows; returns the number of rows checked.
fn replay(file: &str) -> usize {
    let scene: Scene = crate::tests::load_json(&format!("tests/data/bytetrack/{file}"));
    let c = &scene.config;
    let options = TrackerOptions {
        track_high_thresh: c.track_high_thresh,
        track_low_thresh: c.track_low_thresh,
        new_track_thresh: c.new_track_thresh,
        track_buffer: c.track_buffer,
        match_thresh: c.match_thresh,
        fuse_score: c.fuse_score,
    };
    let mut tracker = ByteTrack::new(options);
    let mut rows = 0;
    for (k, (input, want)) in scene.frames.iter().zip(&scene.outputs).enumerate() {
        let got = tracker.update(&detections(input));
        let ids = |v: &[Track]| v.iter().map(|t| t.id).collect::<Vec<_>>();
        let want_ids: Vec<u64> = want.iter().map(|r| r[4] as u64).collect();
        assert_eq!(ids(&got), want_ids, "{file} frame {k}: track ids");
        for (t, r) in got.iter().zip(want) {
            for j in 0..4 {
                let d = (t.bbox[j] as f64 - r[j]).abs();
                assert!(d <= 1e-3, "{file} frame {k} track {}: bbox {:?} vs {:?}", t.id, t.bbox, &r[..4]);
            }
            // serde_json may read a number 1 ulp off in f64; back in f32 it is exact.
            assert_eq!(t.score, r[5] as f32, "{file} frame {k} track {}: score", t.id);
            assert_eq!(t.class as f64, r[6], "{file} frame {k} track {}: class", t.id);
            assert_eq!(t.detection as f64, r[7], "{file} frame {k} track {}: detection", t.id);
        }
        rows += got.len();
    }
    assert_eq!(scene.frames.len(), scene.outputs.len());
    rows
}

#[test]
fn scripted_scene_as_ultralytics() {
    assert!(replay("scripted.json") > 500);
}

#[test]
fn random_scene_as_ultralytics() {
    assert!(replay("random.json") > 1000);
}

#[test]
fn crowded_scene_as_ultralytics() {
    assert!(replay("crowd.json") > 500);
}

/// Where lap (what Ultralytics runs) and a min-cost assignment filtered by the threshold
/// (its scipy fallback) disagree.
#[test]
fn thresholded_assignment_as_ultralytics() {
    assert!(replay("conflict.json") > 50);
}

#[test]
fn first_frame_tracks_are_reported_later_ones_a_frame_after() {
    let det = |x: f32, score: f32| Detection { bbox: [x, 10.0, x + 40.0, 90.0], score, class: 2 };
    let mut t = ByteTrack::new(TrackerOptions::default());
    let first = t.update(&[det(0.0, 0.9), det(100.0, 0.2)]);
    assert_eq!(first.iter().map(|t| (t.id, t.detection)).collect::<Vec<_>>(), vec![(1, 0)]);
    let second = t.update(&[det(300.0, 0.9), det(1.0, 0.8)]);
    assert_eq!(second.iter().map(|t| (t.id, t.detection)).collect::<Vec<_>>(), vec![(1, 1)]);
    let third = t.update(&[det(2.0, 0.8), det(301.0, 0.9)]);
    assert_eq!(third.iter().map(|t| (t.id, t.detection)).collect::<Vec<_>>(), vec![(1, 0), (2, 1)]);
    assert!(t.update(&[]).is_empty());
}

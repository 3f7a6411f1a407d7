//! Multi-object tracking by ByteTrack, as Ultralytics 8.4.190's `BYTETracker` with
//! bytetrack.yaml: the same ids, rows and order on the same detections (tests.rs holds it to
//! reference outputs of Ultralytics itself, written by tools/parity/bytetrack_reference.py).
//!
//! Per frame: the confirmed and lost tracks are predicted by a Kalman filter and matched to
//! the detections scoring at least `track_high_thresh` (IoU fused with the score); the
//! confirmed ones left over get a second chance at the detections between `track_low_thresh`
//! and `track_high_thresh` (IoU alone); tracks started last frame (unconfirmed) may take a
//! high detection still free and are dropped otherwise; what remains of the high detections
//! at `new_track_thresh` or more starts new tracks, which are reported from their second
//! frame on (from the first on the very first frame). Classes do not take part: a track
//! takes the class of the detection it matched.
//!
//! Ultralytics' bookkeeping quirks are kept because they change ids: a track lost for longer
//! than `track_buffer` frames is removed, but stays re-findable for one more frame (it is
//! taken out of the lost pool only the frame after); a track found again that way is dropped
//! at once if lost again; and a tracked and a lost track overlapping by IoU > 0.85 lose the
//! younger one.

mod assign;
mod cost;
mod kalman;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};

use crate::postprocess::Detection;
use assign::Assignment;
use kalman::Gaussian;

/// The tracker's settings; the defaults are Ultralytics' bytetrack.yaml.
///
/// Ultralytics 8.4 no longer scales `track_buffer` by the video's frame rate (older versions
/// kept `frame_rate / 30 * track_buffer` frames): a caller that wants that scales it itself.
#[derive(Clone, Debug)]
pub struct TrackerOptions {
    /// Detections scoring at least this take part in the first association and start tracks.
    pub track_high_thresh: f64,
    /// Detections scoring above this (and under `track_high_thresh`) only extend tracks.
    pub track_low_thresh: f64,
    /// The least score of a detection that starts a track.
    pub new_track_thresh: f64,
    /// Frames a lost track stays re-findable.
    pub track_buffer: u32,
    /// The most a first-association pair may cost (1 - IoU, or 1 - IoU × score).
    pub match_thresh: f64,
    /// Scales the IoU of the first association (and of unconfirmed tracks) by the score.
    pub fuse_score: bool,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            track_high_thresh: 0.25,
            track_low_thresh: 0.1,
            new_track_thresh: 0.25,
            track_buffer: 30,
            match_thresh: 0.8,
            fuse_score: true,
        }
    }
}

/// A tracked object in a frame: one of Ultralytics' `[x1, y1, x2, y2, track_id, score, cls,
/// idx]` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// From 1, per tracker.
    pub id: u64,
    /// The Kalman filter's box after this frame's detection, x1, y1, x2, y2 in pixels.
    pub bbox: [f32; 4],
    /// Of the detection matched in this frame.
    pub score: f32,
    pub class: usize,
    /// The index of the matched detection in this frame's input.
    pub detection: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Tracked,
    Lost,
    Removed,
}

/// A detection as a candidate track: Ultralytics' `STrack` before `activate`, its box kept
/// as float32 top-left, width, height, computed from x1 y1 x2 y2 as `Boxes.xywh` and
/// `xywh2ltwh` do.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    tlwh: [f32; 4],
    score: f32,
    class: usize,
    index: usize,
}

impl Candidate {
    fn new(d: &Detection, index: usize) -> Candidate {
        let [x1, y1, x2, y2] = d.bbox;
        let (cx, cy, w, h) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1);
        Candidate { tlwh: [cx - w / 2.0, cy - h / 2.0, w, h], score: d.score, class: d.class, index }
    }

    fn xyxy(&self) -> [f32; 4] {
        let [l, t, w, h] = self.tlwh;
        [l, t, l + w, t + h]
    }

    /// The Kalman measurement: center, aspect, height, in float32 like `tlwh_to_xyah`.
    fn xyah(&self) -> [f64; 4] {
        let [l, t, w, h] = self.tlwh;
        [(l + w / 2.0) as f64, (t + h / 2.0) as f64, (w / h) as f64, h as f64]
    }
}

#[derive(Clone, Debug)]
struct STrack {
    id: u64,
    kf: Gaussian,
    state: State,
    activated: bool,
    score: f32,
    class: usize,
    detection: usize,
    /// The last frame it was matched in (Ultralytics' `frame_id`, `end_frame`).
    frame: u64,
    start_frame: u64,
}

impl STrack {
    fn xyxy(&self) -> [f32; 4] {
        let m = &self.kf.mean;
        let w = m[2] * m[3];
        let (l, t) = (m[0] - w / 2.0, m[1] - m[3] / 2.0);
        [l as f32, t as f32, (w + l) as f32, (m[3] + t) as f32]
    }

    /// `update` and `re_activate`, which differ only in the list the caller puts it on.
    fn correct(&mut self, det: &Candidate, frame: u64) {
        self.kf.update(det.xyah());
        self.state = State::Tracked;
        self.activated = true;
        self.frame = frame;
        self.score = det.score;
        self.class = det.class;
        self.detection = det.index;
    }
}

/// Ultralytics' removed-tracks list keeps its last 1000 entries (repeats included).
const REMOVED_KEPT: usize = 1000;

/// The ByteTrack tracker of one video: feed it each frame's detections in order.
#[derive(Clone, Debug)]
pub struct ByteTrack {
    options: TrackerOptions,
    frame: u64,
    next_id: u64,
    tracked: Vec<STrack>,
    lost: Vec<STrack>,
    removed: VecDeque<u64>,
}

/// One frame's tracks (last frame's tracked ones, then its lost ones, then the new ones) and
/// the lists BYTETracker.update fills, as indices into `tracks`.
struct Frame {
    tracks: Vec<STrack>,
    tracked: Vec<usize>,
    lost: Vec<usize>,
    activated: Vec<usize>,
    refind: Vec<usize>,
    lost_now: Vec<usize>,
    removed_now: Vec<usize>,
}

impl ByteTrack {
    pub fn new(options: TrackerOptions) -> ByteTrack {
        ByteTrack { options, frame: 0, next_id: 1, tracked: vec![], lost: vec![], removed: VecDeque::new() }
    }

    /// Tracks the next frame's detections; returns the confirmed tracks, in Ultralytics' order.
    pub fn update(&mut self, detections: &[Detection]) -> Vec<Track> {
        self.frame += 1;
        let (high, low) = self.split(detections);
        let (tracked, lost) = (std::mem::take(&mut self.tracked), std::mem::take(&mut self.lost));
        let mut fr = Frame {
            tracked: (0..tracked.len()).collect(),
            lost: (tracked.len()..tracked.len() + lost.len()).collect(),
            tracks: tracked.into_iter().chain(lost).collect(),
            activated: vec![],
            refind: vec![],
            lost_now: vec![],
            removed_now: vec![],
        };
        let (unconfirmed, confirmed): (Vec<usize>, Vec<usize>) =
            fr.tracked.iter().partition(|&&i| !fr.tracks[i].activated);
        let pool: Vec<usize> = confirmed.into_iter().chain(fr.lost.iter().copied()).collect();
        for &i in &pool {
            let t = &mut fr.tracks[i];
            if t.state != State::Tracked {
                t.kf.mean[7] = 0.0;
            }
            t.kf.predict();
        }

        let first = associate(&fr, &pool, &high, self.options.fuse_score, self.options.match_thresh);
        for &(t, d) in &first.matches {
            fr.apply_match(pool[t], &high[d], self.frame);
        }
        let rest: Vec<usize> = first.unmatched_rows.iter().map(|&t| pool[t]).collect();
        self.second_association(&mut fr, rest, &low);
        let high_left: Vec<Candidate> = first.unmatched_cols.iter().map(|&d| high[d]).collect();
        let fresh = self.unconfirmed_association(&mut fr, &unconfirmed, high_left);
        self.start_tracks(&mut fr, fresh);
        for &i in &fr.lost {
            if self.frame - fr.tracks[i].frame > u64::from(self.options.track_buffer) {
                fr.tracks[i].state = State::Removed;
                fr.removed_now.push(i);
            }
        }
        self.merge(fr);
        self.output()
    }

    /// The high and low detections (boxes of zero width or height are never tracked: their
    /// aspect ratio would be infinite). Scores compare in f32, as numpy does with float32 scores.
    fn split(&self, detections: &[Detection]) -> (Vec<Candidate>, Vec<Candidate>) {
        let high_at = self.options.track_high_thresh as f32;
        let low_above = self.options.track_low_thresh as f32;
        let (mut high, mut low) = (vec![], vec![]);
        for (i, d) in detections.iter().enumerate() {
            let c = Candidate::new(d, i);
            if !(c.tlwh[2] > 0.0 && c.tlwh[3] > 0.0) {
                continue;
            }
            if c.score >= high_at {
                high.push(c);
            } else if c.score > low_above {
                low.push(c);
            }
        }
        (high, low)
    }

    /// Still-tracked tracks the first association left take low detections by IoU alone;
    /// those left then are lost.
    fn second_association(&self, fr: &mut Frame, rest: Vec<usize>, low: &[Candidate]) {
        let rest: Vec<usize> = rest.into_iter().filter(|&i| fr.tracks[i].state == State::Tracked).collect();
        let unmatched = if rest.is_empty() || low.is_empty() {
            (0..rest.len()).collect()
        } else {
            let second = associate(fr, &rest, low, false, 0.5);
            for &(t, d) in &second.matches {
                fr.apply_match(rest[t], &low[d], self.frame);
            }
            second.unmatched_rows
        };
        for t in unmatched {
            fr.tracks[rest[t]].state = State::Lost;
            fr.lost_now.push(rest[t]);
        }
    }

    /// Unconfirmed tracks take the high detections still free or are dropped; returns the
    /// detections left after that.
    fn unconfirmed_association(&self, fr: &mut Frame, unconfirmed: &[usize], dets: Vec<Candidate>) -> Vec<Candidate> {
        if unconfirmed.is_empty() {
            return dets;
        }
        let a = associate(fr, unconfirmed, &dets, self.options.fuse_score, 0.7);
        for &(t, d) in &a.matches {
            fr.tracks[unconfirmed[t]].correct(&dets[d], self.frame);
            fr.activated.push(unconfirmed[t]);
        }
        for &t in &a.unmatched_rows {
            fr.tracks[unconfirmed[t]].state = State::Removed;
            fr.removed_now.push(unconfirmed[t]);
        }
        a.unmatched_cols.iter().map(|&d| dets[d]).collect()
    }

    fn start_tracks(&mut self, fr: &mut Frame, dets: Vec<Candidate>) {
        for d in dets {
            if d.score < self.options.new_track_thresh as f32 {
                continue;
            }
            fr.activated.push(fr.tracks.len());
            fr.tracks.push(STrack {
                id: self.next_id,
                kf: Gaussian::initiate(d.xyah()),
                state: State::Tracked,
                activated: self.frame == 1,
                score: d.score,
                class: d.class,
                detection: d.index,
                frame: self.frame,
                start_frame: self.frame,
            });
            self.next_id += 1;
        }
    }

    /// `merge_track_pools`: the frame's lists become the tracker's tracked and lost ones.
    fn merge(&mut self, fr: Frame) {
        let mut tracked: Vec<usize> =
            fr.tracked.iter().copied().filter(|&i| fr.tracks[i].state == State::Tracked).collect();
        for &i in fr.activated.iter().chain(&fr.refind) {
            if !tracked.contains(&i) {
                tracked.push(i);
            }
        }
        // Last frame's removals, not this frame's: a track removed now stays lost one more frame.
        let removed: HashSet<u64> = self.removed.iter().copied().collect();
        let mut lost: Vec<usize> = fr.lost.iter().copied().filter(|i| !tracked.contains(i)).collect();
        lost.extend(&fr.lost_now);
        lost.retain(|&i| !removed.contains(&fr.tracks[i].id));
        let (tracked, lost) = remove_duplicates(&fr.tracks, tracked, lost);
        self.removed.extend(fr.removed_now.iter().map(|&i| fr.tracks[i].id));
        while self.removed.len() > REMOVED_KEPT {
            self.removed.pop_front();
        }
        let mut slots: Vec<Option<STrack>> = fr.tracks.into_iter().map(Some).collect();
        let mut take = |list: Vec<usize>| list.into_iter().filter_map(|i| slots[i].take()).collect::<Vec<_>>();
        self.tracked = take(tracked);
        self.lost = take(lost);
    }

    fn output(&self) -> Vec<Track> {
        let rows = self.tracked.iter().filter(|t| t.activated);
        rows.map(|t| Track { id: t.id, bbox: t.xyxy(), score: t.score, class: t.class, detection: t.detection })
            .collect()
    }
}

impl Frame {
    /// A tracked track is updated, a lost one found again.
    fn apply_match(&mut self, i: usize, det: &Candidate, frame: u64) {
        let list = if self.tracks[i].state == State::Tracked { &mut self.activated } else { &mut self.refind };
        list.push(i);
        self.tracks[i].correct(det, frame);
    }
}

/// Matches tracks `rows` of the frame to `dets` by IoU distance (fused with the score if
/// `fuse`), pairs costing at most `limit`.
fn associate(fr: &Frame, rows: &[usize], dets: &[Candidate], fuse: bool, limit: f64) -> Assignment {
    let a: Vec<[f32; 4]> = rows.iter().map(|&i| fr.tracks[i].xyxy()).collect();
    let b: Vec<[f32; 4]> = dets.iter().map(Candidate::xyxy).collect();
    let mut c = cost::iou_distance(&a, &b);
    if fuse {
        cost::fuse_score(&mut c, &dets.iter().map(|d| d.score).collect::<Vec<_>>());
    }
    let c: Vec<f64> = c.into_iter().map(f64::from).collect();
    assign::assign(&c, rows.len(), dets.len(), limit)
}

/// `remove_duplicate_stracks`: of a tracked and a lost track at IoU > 0.85 (distance < 0.15
/// in float32), the one tracked for fewer frames goes (the tracked one on a tie).
fn remove_duplicates(tracks: &[STrack], tracked: Vec<usize>, lost: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
    let a: Vec<[f32; 4]> = tracked.iter().map(|&i| tracks[i].xyxy()).collect();
    let b: Vec<[f32; 4]> = lost.iter().map(|&i| tracks[i].xyxy()).collect();
    let dist = cost::iou_distance(&a, &b);
    let (mut drop_a, mut drop_b) = (vec![false; a.len()], vec![false; b.len()]);
    for (k, &d) in dist.iter().enumerate() {
        if d < 0.15 {
            let (p, q) = (k / b.len(), k % b.len());
            let age = |i: usize| tracks[i].frame - tracks[i].start_frame;
            if age(tracked[p]) > age(lost[q]) {
                drop_b[q] = true;
            } else {
                drop_a[p] = true;
            }
        }
    }
    let keep = |list: Vec<usize>, drop: Vec<bool>| list.into_iter().zip(drop).filter(|x| !x.1).map(|x| x.0).collect();
    (keep(tracked, drop_a), keep(lost, drop_b))
}

#!/usr/bin/env python3
"""Reference outputs of Ultralytics' ByteTrack for qdet's `track` module (src/track/tests.rs).

Usage (from the repository root; lap is installed into a folder of its own so that the venv
is left as it is):

    .venv/bin/python -m pip install --target /tmp/qdet-lap --no-deps lap==0.5.13
    PYTHONPATH=/tmp/qdet-lap YOLO_AUTOINSTALL=0 .venv/bin/python tools/parity/bytetrack_reference.py

Written with Ultralytics 8.4.190, lap 0.5.13, numpy 2.4. Ultralytics' trackers/utils/matching.py
imports `lap` when it is loaded (and would pip-install it if missing) and BYTETracker always
calls `linear_assignment(..., use_lap=True)`, so lap.lapjv with extend_cost and cost_limit is
the assignment that runs, not the scipy fallback.

Writes into tests/data/bytetrack/:
  * scripted.json: a hand-made scene (crossing objects, an occlusion within track_buffer, a
    loss beyond it, a loss of exactly track_buffer + 1 frames, low-score detections only the
    second stage matches, detections under new_track_thresh, a one-frame false positive,
    class changes, a new object after an unconfirmed one, a lost track coasting onto a tracked
    one, a zero-width box, an empty frame);
  * random.json: 200 frames of a seeded scene of 5-15 objects that enter, leave, drop out and
    change score;
  * crowd.json: 120 frames of a denser seeded scene;
  * conflict.json: frames where lap's assignment is not scipy's (see `conflict`);
  * kalman.json: KalmanFilterXYAH initiate, multi_predict and update on a few steps;
  * assign.json: matching.linear_assignment on seeded random matrices, square, rectangular,
    thresholded.
Inputs are rounded to 2 decimals; a frame is a list of [x1, y1, x2, y2, score, class] rows, an
output a list of BYTETracker's rows [x1, y1, x2, y2, track_id, score, cls, idx] (float32 values
written as floats).
"""
import json
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment as scipy_lsa
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.trackers.utils import matching
from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYAH
from ultralytics.utils import YAML, IterableSimpleNamespace, ops
from ultralytics.utils.checks import check_yaml

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "bytetrack"


class Dets:
    """The part of `Boxes.cpu().numpy()` that BYTETracker reads: conf, cls, xywh, len, mask."""

    def __init__(self, rows):
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 6).astype(np.float32)
        self.xyxy, self.conf, self.cls = a[:, :4], a[:, 4], a[:, 5]

    @property
    def xywh(self):
        return ops.xyxy2xywh(self.xyxy)  # as Boxes.xywh: float32 from xyxy

    def __len__(self):
        return len(self.conf)

    def __getitem__(self, mask):
        d = Dets(np.zeros((0, 6)))
        d.xyxy, d.conf, d.cls = self.xyxy[mask], self.conf[mask], self.cls[mask]
        return d


def run(frames):
    args = IterableSimpleNamespace(**YAML.load(check_yaml("bytetrack.yaml")))
    tracker = BYTETracker(args)
    outputs = []
    for rows in frames:
        out = tracker.update(Dets(rows))
        outputs.append([[float(v) for v in r] for r in np.asarray(out, dtype=np.float32).reshape(-1, 8)])
    return {"config": {k: v for k, v in vars(args).items()}, "frames": frames, "outputs": outputs}


def row(box, score, cls):
    return [round(float(v), 2) for v in box] + [round(float(score), 2), int(cls)]


def scripted():
    rng = np.random.default_rng(7)
    frames = []
    for f in range(110):
        dets = []

        def add(cx, cy, w, h, score, cls, noise=0.6):
            n = rng.normal(0, noise, 4)
            box = [cx - w / 2 + n[0], cy - h / 2 + n[1], cx + w / 2 + n[2], cy + h / 2 + n[3]]
            dets.append(row(box, score + rng.uniform(-0.02, 0.02), cls))

        if f == 45:  # an empty frame: everything alive goes lost for one frame
            frames.append([])
            continue
        # A and B cross: A goes right, B left, a little lower so their IoU stays moderate.
        add(100 + 6 * f, 200, 60, 120, 0.9, 0 if f < 30 or f > 50 else 1)
        add(700 - 6 * f, 215, 64, 124, 0.8, 0)
        # C is occluded for frames 30-39 (10 < track_buffer): keeps its id.
        if not 30 <= f < 40:
            add(400 + 2 * f, 500, 80, 80, 0.85, 2)
        # D is gone for frames 12-55 (44 > track_buffer): comes back with a new id.
        if not 12 <= f < 56:
            add(900, 100 + f, 50, 50, 0.7, 3)
        # F is gone for frames 20-50 (31 = track_buffer + 1): removed at frame 51 but still in
        # the lost pool when it reappears at frame 52 (0-based 51), so it keeps its id.
        if not 20 <= f < 51:
            add(1100, 600, 70, 90, 0.75, 4, noise=0.3)
        # E's score sinks into (track_low_thresh, track_high_thresh) for frames 60-79: only the
        # second association keeps it.
        add(300 + f, 350 - 0.5 * f, 90, 60, 0.18 if 60 <= f < 80 else 0.6, 5)
        # A lone low-score detection: never starts a track; one under track_low_thresh: ignored.
        add(50, 650, 40, 40, 0.2, 6)
        add(1200, 50, 40, 40, 0.05, 6)
        # A one-frame false positive: a track that is never confirmed but takes an id.
        if f == 70:
            add(600, 650, 30, 30, 0.9, 7)
        # H arrives after the false positive: its id shows the one the false positive took.
        if f >= 90:
            add(750, 400 - 2 * (f - 90), 60, 60, 0.65, 1)
        # X runs right and vanishes at frame 20; its lost track coasts on over Y, which starts
        # at frame 12: once they overlap by IoU > 0.85 the younger of the two is dropped.
        if f < 20:
            add(300 + 10 * f, 300, 80, 80, 0.8, 2, noise=0.2)
        if f >= 12:
            add(620, 300, 80, 80, 0.8, 3, noise=0.2)
        # A box of zero width is dropped before anything else.
        if f % 17 == 3:
            dets.append([500.0, 100.0, 500.0, 150.0, 0.9, 1])
        # G appears at frame 1 only with a score just under new_track_thresh, then above it.
        if f >= 5:
            add(200, 600, 50, 100, 0.24 if f < 8 else 0.5, 0)
        order = rng.permutation(len(dets))
        frames.append([dets[i] for i in order])
    return frames


def random_scene(seed=2026, n_frames=200, size=(1280, 720)):
    rng = np.random.default_rng(seed)
    W, H = size
    objects = []

    def spawn():
        w, h = rng.uniform(30, 160), rng.uniform(30, 200)
        return {
            "c": np.array([rng.uniform(w, W - w), rng.uniform(h, H - h)]),
            "v": rng.normal(0, 3, 2),
            "wh": np.array([w, h]),
            "cls": int(rng.integers(0, 4)),
            "score": rng.uniform(0.3, 0.95),
            "life": int(rng.integers(20, 150)),
        }

    objects = [spawn() for _ in range(8)]
    frames = []
    for _ in range(n_frames):
        if len(objects) < 5 or (len(objects) < 15 and rng.random() < 0.08):
            objects.append(spawn())
        dets = []
        for o in objects:
            o["c"] += o["v"]
            o["wh"] *= 1 + rng.normal(0, 0.01, 2)
            o["life"] -= 1
            o["score"] = float(np.clip(o["score"] + rng.normal(0, 0.05), 0.12, 0.97))
            if rng.random() < 0.05:
                o["cls"] = int(rng.integers(0, 4))
            if rng.random() < 0.08:  # a missed detection
                continue
            n = rng.normal(0, 1.0, 4)
            (cx, cy), (w, h) = o["c"], o["wh"]
            box = [cx - w / 2 + n[0], cy - h / 2 + n[1], cx + w / 2 + n[2], cy + h / 2 + n[3]]
            dets.append(row(box, o["score"], o["cls"]))
        objects = [o for o in objects if o["life"] > 0 and -50 < o["c"][0] < W + 50 and -50 < o["c"][1] < H + 50]
        for _ in range(int(rng.poisson(0.7))):  # false positives, mostly low
            x, y, s = rng.uniform(0, W - 60), rng.uniform(0, H - 60), rng.uniform(30, 60)
            dets.append(row([x, y, x + s, y + s], rng.uniform(0.08, 0.45), int(rng.integers(0, 4))))
        order = rng.permutation(len(dets))
        frames.append([dets[i] for i in order])
    return frames


def crowd():
    """A dense scene: big, overlapping boxes, where lap's thresholded optimum and a plain
    min-cost assignment filtered by the threshold part ways."""
    return random_scene(seed=31, n_frames=120, size=(640, 480))


def conflict(cells=6):
    """Frame 1 starts three tracks in each of `cells` places far apart; frame 2 has three
    detections there whose first-association costs make lap's thresholded optimum differ from
    scipy's min-cost assignment filtered by the threshold, by a margin of 0.02 or more (found
    by seeded search); then a few frames of the same detections."""
    rng = np.random.default_rng(5)
    limit = 0.8
    found = []
    while len(found) < cells:
        tracks = rng.uniform(0, 60, (3, 2)).repeat(2, axis=1)[:, [0, 2, 1, 3]] + [0, 0, 80, 80]
        tracks = np.round(tracks + rng.uniform(-20, 20, (3, 4)) * [0, 0, 1, 1], 2)
        dets = np.round(tracks + rng.normal(0, 18, (3, 4)), 2)
        scores = np.round(rng.uniform(0.3, 1.0, 3), 2)
        if (dets[:, 2:] - dets[:, :2] < 10).any():
            continue
        iou = 1 - matching.iou_distance(list(tracks.astype(np.float32)), list(dets.astype(np.float32)))
        cost = (1 - iou * scores.astype(np.float32)).astype(np.float64)
        if np.abs(cost - limit).min() < 0.01:
            continue
        lap_m, _, _ = matching.linear_assignment(cost, limit)
        r, c = scipy_lsa(cost)
        sp_m = sorted((int(i), int(j)) for i, j in zip(r, c) if cost[i, j] <= limit)
        if sorted((int(i), int(j)) for i, j in lap_m) == sp_m:
            continue
        value = lambda m: sum(cost[i, j] - limit for i, j in m)
        if value(sp_m) - value(lap_m) < 0.02:
            continue
        found.append((tracks, dets, scores))
    frames = [[], []]
    for k, (tracks, dets, scores) in enumerate(found):
        off = np.array([200 * (k % 6) + 20, 250 * (k // 6) + 20] * 2)
        frames[0] += [row(b + off, 0.9, 0) for b in tracks]
        frames[1] += [row(b + off, s, 1) for b, s in zip(dets, scores)]
    return frames + [frames[1]] * 4


def kalman():
    kf = KalmanFilterXYAH()
    cases = []
    for meas in ([320.5, 240.25, 0.5, 120.0], [10.0, 700.0, 1.75, 33.5]):
        mean, cov = kf.initiate(np.array(meas, dtype=np.float32))
        steps = [{"initiate": meas, "mean": mean.tolist(), "covariance": cov.tolist()}]
        for k in range(3):
            mean, cov = kf.multi_predict(mean[None], cov[None])
            mean, cov = mean[0], cov[0]
            steps.append({"predict": True, "mean": mean.tolist(), "covariance": cov.tolist()})
            z = [meas[0] + 4.0 * (k + 1), meas[1] - 2.5 * (k + 1), meas[2] * 1.01, meas[3] + k]
            mean, cov = kf.update(mean, cov, np.array(z, dtype=np.float32))
            steps.append({"update": z, "mean": mean.tolist(), "covariance": cov.tolist()})
        cases.append(steps)
    return cases


def assign():
    rng = np.random.default_rng(11)
    cases = []
    for k in range(60):
        n, m = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        cost = np.round(rng.uniform(0, 1.2, (n, m)), 6)
        thresh = float([0.8, 0.5, 0.7, 0.3, 10.0][k % 5])
        matches, ua, ub = matching.linear_assignment(cost, thresh=thresh)
        cases.append({
            "cost": cost.tolist(),
            "thresh": thresh,
            "matches": [[int(a), int(b)] for a, b in matches],
            "unmatched_a": [int(a) for a in ua],
            "unmatched_b": [int(b) for b in ub],
        })
    return cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    files = {
        "scripted.json": run(scripted()),
        "random.json": run(random_scene()),
        "crowd.json": run(crowd()),
        "conflict.json": run(conflict()),
        "kalman.json": kalman(),
        "assign.json": assign(),
    }
    for name, data in files.items():
        (OUT / name).write_text(json.dumps(data, separators=(",", ":")) + "\n")
        print(name, (OUT / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()

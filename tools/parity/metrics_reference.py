#!/usr/bin/env python3
"""Reference values for qdet's metric code, computed by Ultralytics' own functions.

Usage: metrics_reference.py [OUT.json]   (default tests/data/metrics/reference.json)

Feeds fixed, seeded synthetic inputs through
  * ultralytics.utils.metrics.ap_per_class   (per-class AP, P/R/F1 at the max-F1 confidence),
  * ultralytics.utils.metrics.DetMetrics     (per-image stats -> counts and mean results),
  * ultralytics.utils.metrics.box_iou and DetectionValidator.match_predictions (greedy matching),
and writes inputs and outputs side by side for tests/it/val_metrics.rs. Nothing here depends on
a model, so the file only changes when Ultralytics' metric code does.

Confidence ties: ap_per_class sorts with numpy's default argsort, which is not stable (its
SIMD sort permutes equal keys even in 10-element arrays), so Ultralytics' own result for tied
predictions of one class depends on the numpy build. The "ties_same_outcome" case has ties
whose members are all right or all wrong alike, which makes the order irrelevant; the script
checks that. The "ties_mixed" case has ties with mixed outcomes and is computed with numpy's
argsort switched to kind="stable" (pycocotools' order, which qdet uses), and says so in the file.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import ultralytics
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils import metrics as um

NIOU = 10
THRESHOLDS = np.linspace(0.5, 0.95, NIOU)


class _StableArgsortNumpy:
    """numpy, except that argsort defaults to a stable sort (used for the mixed-ties case)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def argsort(a, *args, **kwargs):
        kwargs.setdefault("kind", "stable")
        return np.argsort(a, *args, **kwargs)


def f32(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def bits(tp):
    """A tp matrix as one "1011000000" string per prediction (compact JSON)."""
    return ["".join("1" if v else "0" for v in row) for row in np.asarray(tp, bool).reshape(-1, NIOU)]


def ap_case(name, tp, conf, pred_cls, target_cls, stable=False, note=""):
    tp = np.asarray(tp, dtype=bool).reshape(-1, NIOU)
    conf = np.asarray(conf, dtype=np.float32)
    pred_cls = np.asarray(pred_cls, dtype=np.float32)
    target_cls = np.asarray(target_cls, dtype=np.float32)

    def run():
        return um.ap_per_class(tp, conf, pred_cls, target_cls)

    if stable:
        um.np = _StableArgsortNumpy()
        try:
            out = run()
        finally:
            um.np = np
    else:
        out = run()
    tpc, fpc, p, r, f1, ap, classes, p_curve, r_curve, f1_curve, x, _ = out
    nc = len(classes)
    best = int(um.smooth(f1_curve.mean(0), 0.1).argmax()) if nc else 0
    m = um.Metric()
    m.update((p, r, f1, ap, classes, p_curve, r_curve, f1_curve, x, None))
    return {
        "name": name,
        "note": note,
        "argsort": "stable" if stable else "numpy default",
        "tp": bits(tp),
        "conf": f32(conf),
        "pred_cls": [int(c) for c in pred_cls],
        "target_cls": [int(c) for c in target_cls],
        "out": {
            "classes": [int(c) for c in classes],
            "tp": [float(v) for v in tpc],
            "fp": [float(v) for v in fpc],
            "p": [float(v) for v in p],
            "r": [float(v) for v in r],
            "f1": [float(v) for v in f1],
            "ap": [[float(v) for v in row] for row in ap],
            "best_index": best,
            "mp": float(m.mp),
            "mr": float(m.mr),
            "map50": float(m.map50),
            "map75": float(m.map75),
            "map": float(m.map),
        },
    }


def capped_tp(rng, conf, pred_cls, target_cls, skill):
    """A plausible tp matrix: each prediction gets an IoU (higher for confident ones when
    `skill` > 0); no class gets more true positives per threshold than it has labels."""
    iou = np.clip(rng.uniform(0.2, 1.0, len(conf)) + skill * (conf - 0.5), 0, 1)
    tp = iou[:, None] >= THRESHOLDS[None, :]
    order = np.argsort(-conf, kind="stable")
    for c in np.unique(pred_cls):
        n_l = int((target_cls == c).sum())
        idx = order[pred_cls[order] == c]
        for t in range(NIOU):
            hits = idx[tp[idx, t]]
            tp[hits[n_l:], t] = False
    return tp


def random_case(rng, name, n_pred, label_counts, pred_classes, skill, note):
    target_cls = np.concatenate([np.full(n, c) for c, n in label_counts.items()]).astype(np.float32)
    pred_cls = rng.choice(pred_classes, n_pred).astype(np.float32)
    conf = rng.uniform(0.001, 1.0, n_pred).astype(np.float32)
    assert len(np.unique(conf)) == n_pred, "the random case must not have confidence ties"
    tp = capped_tp(rng, conf, pred_cls, target_cls, skill)
    return ap_case(name, tp, conf, pred_cls, target_cls, note=note)


def ap_cases():
    rng = np.random.default_rng(20240611)
    cases = [
        random_case(
            rng,
            "random",
            600,
            {0: 80, 1: 40, 2: 120, 3: 30, 4: 60},
            [0, 1, 2, 4, 5],
            0.6,
            "class 3 has labels but no predictions; class 5 has predictions but no labels",
        ),
        random_case(rng, "random_large", 3000, {c: 150 + 40 * c for c in range(10)}, list(range(10)), 0.8, "10 classes"),
        random_case(rng, "single_class", 200, {0: 90}, [0], 0.4, "one class"),
        random_case(rng, "weak_model", 300, {0: 50, 1: 50}, [0, 1], -0.5, "confidence anti-correlated with IoU"),
    ]

    # Every prediction right at every threshold, one per label.
    conf = rng.uniform(0.3, 1.0, 90).astype(np.float32)
    cls = np.repeat([0, 1, 2], 30).astype(np.float32)
    cases.append(ap_case("all_correct", np.ones((90, NIOU), bool), conf, cls, cls, note="P = R = AP = 1"))
    # All right, but a third of the labels never found.
    cases.append(
        ap_case(
            "all_correct_some_missed",
            np.ones((60, NIOU), bool),
            conf[:60],
            np.repeat([0, 1], 30),
            np.repeat([0, 1], 45),
            note="recall 2/3",
        )
    )
    cases.append(ap_case("all_wrong", np.zeros((40, NIOU), bool), conf[:40], np.repeat([0, 1], 20), [0] * 10 + [1] * 5))
    cases.append(ap_case("no_predictions", np.zeros((0, NIOU), bool), [], [], [0, 0, 1], note="labels only"))
    cases.append(ap_case("no_labels", np.zeros((5, NIOU), bool), conf[:5], [0] * 5, [], note="no class has labels"))
    cases.append(ap_case("empty", np.zeros((0, NIOU), bool), [], [], []))
    cases.append(ap_case("single_prediction", np.ones((1, NIOU), bool), [0.42], [1], [1, 1]))
    cases.append(
        ap_case(
            "threshold_dependent",
            [[True] * k + [False] * (NIOU - k) for k in (10, 7, 3, 0, 5)],
            [0.9, 0.8, 0.7, 0.6, 0.5],
            [0] * 5,
            [0] * 4,
            note="true positives at the low IoU thresholds only",
        )
    )

    # Ties whose order cannot matter: equal (class, confidence) groups share one tp row.
    n = 400
    qconf = (rng.integers(1, 20, n) / 20).astype(np.float32)
    qcls = rng.integers(0, 3, n).astype(np.float32)
    target = np.repeat([0, 1, 2], [120, 90, 150]).astype(np.float32)
    row_of = {}
    tp = np.zeros((n, NIOU), bool)
    for i in range(n):
        key = (float(qcls[i]), float(qconf[i]))
        if key not in row_of:
            k = rng.integers(0, NIOU + 1) if rng.uniform() < qconf[i] else 0
            row_of[key] = np.arange(NIOU) < k
        tp[i] = row_of[key]
    same = ap_case("ties_same_outcome", tp, qconf, qcls, target, note="ties of equal outcome: order-free")
    check = ap_case("check", tp, qconf, qcls, target, stable=True)
    assert same["out"] == check["out"], "equal-outcome ties must not depend on the sort"
    cases.append(same)

    # Ties with mixed outcomes: only defined for a given order; stable (see the docstring).
    tp = capped_tp(rng, qconf, qcls, target, 0.5)
    cases.append(
        ap_case("ties_mixed", tp, qconf, qcls, target, stable=True, note="numpy argsort made stable for this case")
    )
    return cases


def det_metrics_case():
    """Per-image stats through DetMetrics, including images without labels or predictions."""
    rng = np.random.default_rng(7)
    names = {i: f"c{i}" for i in range(4)}
    dm = um.DetMetrics(names=names)
    images = []
    kinds = ["both"] * 14 + ["labels_only"] * 3 + ["preds_only"] * 3 + ["empty"] * 3
    for k, kind in enumerate(kinds):
        n_l = int(rng.integers(1, 6)) if kind in ("both", "labels_only") else 0
        n_p = int(rng.integers(1, 12)) if kind in ("both", "preds_only") else 0
        target_cls = rng.integers(0, 3, n_l).astype(np.float32)  # class 3 never labelled
        pred_cls = rng.integers(0, 4, n_p).astype(np.float32)
        conf = np.sort(rng.uniform(0.001, 1, n_p).astype(np.float32))[::-1].copy()
        tp = np.zeros((n_p, NIOU), bool)
        if n_l:
            tp = capped_tp(rng, conf, pred_cls, target_cls, 0.5)
        dm.update_stats(
            {
                "tp": tp,
                "conf": conf if n_p else np.zeros(0),
                "pred_cls": pred_cls if n_p else np.zeros(0),
                "target_cls": target_cls,
                "target_img": np.unique(target_cls),
                "im_name": f"im{k}.jpg",
            }
        )
        images.append(
            {
                "kind": kind,
                "tp": bits(tp),
                "conf": f32(conf),
                "pred_cls": [int(c) for c in pred_cls],
                "target_cls": [int(c) for c in target_cls],
            }
        )
    dm.process()
    mp, mr, map50, mapall = dm.mean_results()
    return {
        "nc": len(names),
        "images": images,
        "out": {
            "nt_per_class": [int(v) for v in dm.nt_per_class],
            "nt_per_image": [int(v) for v in dm.nt_per_image],
            "ap_class_index": [int(c) for c in dm.ap_class_index],
            "class_results": [[float(v) for v in dm.class_result(i)] for i in range(len(dm.ap_class_index))],
            "mp": float(mp),
            "mr": float(mr),
            "map50": float(map50),
            "map": float(mapall),
        },
    }


def match_cases():
    """Boxes and classes of a few images, Ultralytics' IoU matrix and its greedy matching."""
    rng = np.random.default_rng(99)
    with tempfile.TemporaryDirectory() as tmp:
        validator = DetectionValidator(save_dir=Path(tmp))
    images = []

    def add(name, lb, lc, pb, pc):
        lb = torch.tensor(np.asarray(lb, np.float32).reshape(-1, 4))
        pb = torch.tensor(np.asarray(pb, np.float32).reshape(-1, 4))
        lc = torch.tensor(np.asarray(lc, np.float32))
        pc = torch.tensor(np.asarray(pc, np.float32))
        if len(lc) and len(pc):
            iou = um.box_iou(lb, pb)
            correct = validator.match_predictions(pc, lc, iou).numpy()
            iou = iou.numpy()
        else:  # _process_batch: nothing to match
            iou = np.zeros((len(lc), len(pc)), np.float32)
            correct = np.zeros((len(pc), NIOU), bool)
        images.append(
            {
                "name": name,
                "label_boxes": [f32(b) for b in lb.numpy()],
                "label_cls": [int(c) for c in lc],
                "pred_boxes": [f32(b) for b in pb.numpy()],
                "pred_cls": [int(c) for c in pc],
                "iou": [f32(row) for row in iou],
                "correct": bits(correct),
            }
        )

    for k in range(12):
        n_l = int(rng.integers(1, 9))
        xy = rng.uniform(0, 500, (n_l, 2))
        wh = rng.uniform(20, 140, (n_l, 2))
        # Crowded: some labels overlap each other, so predictions compete for them.
        if k % 3 == 0 and n_l > 1:
            xy[1:] = xy[0] + rng.uniform(-30, 30, (n_l - 1, 2))
        lb = np.concatenate([xy, xy + wh], 1)
        lc = rng.integers(0, 3, n_l)
        preds, pcls = [], []
        for b, c in zip(lb, lc):
            for _ in range(int(rng.integers(0, 4))):
                s = rng.uniform(0.0, 0.35) * (b[2:] - b[:2])
                preds.append(b + np.concatenate([rng.uniform(-1, 1, 2) * s, rng.uniform(-1, 1, 2) * s]))
                pcls.append(c if rng.uniform() < 0.85 else (c + 1) % 3)
        for _ in range(int(rng.integers(0, 4))):
            p = rng.uniform(0, 500, 2)
            preds.append(np.concatenate([p, p + rng.uniform(10, 100, 2)]))
            pcls.append(int(rng.integers(0, 3)))
        perm = rng.permutation(len(preds))  # NMS output order is by score, not by label
        add(f"random_{k}", lb, lc, [preds[i] for i in perm], [pcls[i] for i in perm])

    # Greedy, not optimal: the first prediction takes the label the second fits better.
    add(
        "greedy_not_hungarian",
        [[0, 0, 100, 100], [60, 0, 160, 100]],
        [0, 0],
        [[30, 0, 130, 100], [0, 0, 100, 100]],
        [0, 0],
    )
    add("no_labels", [], [], [[0, 0, 10, 10]], [0])
    add("no_predictions", [[0, 0, 10, 10]], [1], [], [])
    add("zero_area_label", [[5, 5, 5, 9]], [0], [[0, 0, 10, 10], [5, 5, 5, 9]], [0, 0])
    return {"thresholds": f32(validator.iouv.numpy()), "images": images}


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/metrics/reference.json")
    doc = {
        "generator": "tools/parity/metrics_reference.py",
        "ultralytics": ultralytics.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "ap_per_class": ap_cases(),
        "det_metrics": det_metrics_case(),
        "match": match_cases(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{len(doc['ap_per_class'])} ap_per_class cases, {len(doc['match']['images'])} match images -> {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Ultralytics' validation metrics for a model and dataset, for qdet's `val` parity test.

Usage: val_reference.py MODEL.onnx DATA.yaml OUT.json [--imgsz N] [--split val] [--conf 0.001] [--iou 0.7] [--ort-exact]

Runs `YOLO(model).val(data=..., batch=1, device="cpu", plots=False, conf=..., iou=...)` (ONNX
Runtime) and writes the "all" row (P, R, mAP50, mAP75, mAP50-95), every class row, and per
image what the validator saw: source and input size, the letterbox ratio and padding, the
labels in input pixels, and how many predictions it kept and matched at IoU 0.5.

The split's folders are linked into a temporary dataset first, so that
  * Ultralytics' label cache (labels/*.cache) is written there, not into the real dataset;
  * a relative `path:` is resolved as qdet resolves it (beside the yaml, then from the current
    folder); Ultralytics alone would look only in the current folder and its datasets_dir.
Only folder splits are supported here (not .txt image lists).
--ort-exact turns ONNX Runtime's graph optimizations off: the exact semantics of a QDQ file.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # no font or asset downloads

import numpy as np
import onnxruntime
import ultralytics
import yaml
from ultralytics import YOLO
from ultralytics.data.utils import IMG_FORMATS, img2label_paths
from ultralytics.models.yolo.detect import DetectionValidator


def resolve_split(data_yaml: Path, split: str):
    """The split's folders, resolved as qdet's `val::load_data` does, and the class names."""
    cfg = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    entry = cfg.get(split) or (cfg.get("validation") if split == "val" else None)
    if not entry:
        sys.exit(f"{data_yaml}: no '{split}:' images")
    names = cfg.get("names")
    if names is None:
        names = {i: f"class_{i}" for i in range(int(cfg["nc"]))}
    elif isinstance(names, list):
        names = dict(enumerate(names))
    here = data_yaml.parent
    p = cfg.get("path") or ""
    if not p:
        root = here
    elif Path(p).is_absolute():
        root = Path(p)
    else:
        root = here / p if (here / p).exists() else Path(p)
    folders = []
    for e in entry if isinstance(entry, list) else [entry]:
        f = root / e
        if not f.exists() and e.startswith("../"):
            f = root / e[3:]
        if not f.is_dir():
            sys.exit(f"{data_yaml}: '{split}' entry {e!r} is not a folder ({f}); this tool handles folder splits only")
        folders.append(f.resolve())
    return root.resolve(), folders, names


def link_split(folders, tmp: Path):
    """Links every image (and its label file) of the split under tmp/images/sK, tmp/labels/sK.

    Returns {linked image path: original image path}.
    """
    originals = {}
    for k, folder in enumerate(folders):
        for img in sorted(folder.rglob("*.*")):
            if img.suffix[1:].lower() not in IMG_FORMATS or any(p.startswith(".") for p in img.relative_to(folder).parts):
                continue
            rel = img.relative_to(folder)
            dst = tmp / "images" / f"s{k}" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(img)
            originals[str(dst)] = img
            label = Path(img2label_paths([str(img)])[0])
            if label.exists():
                ldst = tmp / "labels" / f"s{k}" / rel.with_suffix(".txt")
                ldst.parent.mkdir(parents=True, exist_ok=True)
                ldst.symlink_to(label)
    return originals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--imgsz", type=int, default=None)
    ap.add_argument("--split", default="val")
    ap.add_argument("--conf", type=float, default=0.001)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--ort-exact", action="store_true")
    a = ap.parse_args()
    if a.ort_exact:
        sys.path.insert(0, str(Path(__file__).parent))
        from ultralytics_reference import exact_onnxruntime

        exact_onnxruntime()

    root, folders, names = resolve_split(a.data, a.split)
    per_image = {}
    state = {}

    # Record what the validator compares, image by image, before it updates its statistics.
    original_update = DetectionValidator.update_metrics

    def update_metrics(self, preds, batch):
        for si, pred in enumerate(preds):
            pb = self._prepare_batch(si, batch)
            src = state["originals"][str(Path(pb["im_file"]))]
            (gain_h, gain_w), (pad_w, pad_h) = pb["ratio_pad"]
            tp = self._process_batch(pred, pb)["tp"]
            per_image[src.relative_to(root).as_posix()] = {
                "src": [int(v) for v in pb["ori_shape"]],
                "input": [int(v) for v in pb["imgsz"]],
                "gain": [float(gain_h), float(gain_w)],
                "pad": [int(pad_w), int(pad_h)],
                "labels": [
                    [int(c)] + [float(v) for v in b]
                    for c, b in zip(pb["cls"].tolist(), pb["bboxes"].float().cpu().numpy().astype(np.float32))
                ],
                "n_pred": int(len(pred["cls"])),
                "tp50": int(tp[:, 0].sum()) if len(tp) else 0,
            }
        return original_update(self, preds, batch)

    DetectionValidator.update_metrics = update_metrics

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        state["originals"] = link_split(folders, tmp)
        splits = [f"images/s{k}" for k in range(len(folders))]
        data_yaml = tmp / "data.yaml"
        data_yaml.write_text(yaml.safe_dump({"path": str(tmp), "train": splits, "val": splits, "names": names}))
        model = YOLO(a.model, task="detect")
        model.add_callback("on_val_end", lambda v: state.update(seen=v.seen))
        kw = {"imgsz": a.imgsz} if a.imgsz else {}
        m = model.val(
            data=str(data_yaml),
            split="val",
            batch=1,
            device="cpu",
            plots=False,
            conf=a.conf,
            iou=a.iou,
            project=str(tmp / "runs"),
            name="val",
            verbose=True,
            **kw,
        )

    box = m.box
    classes = []
    for i, c in enumerate(m.ap_class_index):
        p, r, ap50, ap = box.class_result(i)
        classes.append(
            {
                "class": int(c),
                "name": m.names[int(c)],
                "images": int(m.nt_per_image[c]),
                "instances": int(m.nt_per_class[c]),
                "precision": float(p),
                "recall": float(r),
                "map50": float(ap50),
                "map50_95": float(ap),
            }
        )
    doc = {
        "generator": "tools/parity/val_reference.py",
        "model": Path(a.model).name,
        "data": a.data.as_posix(),
        "split": a.split,
        "ultralytics": ultralytics.__version__,
        "onnxruntime": onnxruntime.__version__,
        "imgsz": a.imgsz,
        "conf": a.conf,
        "iou": a.iou,
        "images": int(state["seen"]),
        "instances": int(m.nt_per_class.sum()),
        "precision": float(box.mp),
        "recall": float(box.mr),
        "map50": float(box.map50),
        "map75": float(box.map75),
        "map50_95": float(box.map),
        "classes": classes,
        "per_image": dict(sorted(per_image.items())),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(
        f"{doc['images']} images, {doc['instances']} labels: P {doc['precision']:.4f} R {doc['recall']:.4f} "
        f"mAP50 {doc['map50']:.4f} mAP50-95 {doc['map50_95']:.4f} -> {a.out}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference detections from Ultralytics for qdet's parity tests.

Usage: ultralytics_reference.py MODEL.onnx OUT.json IMAGE_OR_DIR... [--conf 0.25] [--iou 0.7] [--imgsz N]
Runs `YOLO(model).predict` (ONNX Runtime backend, CPU) image by image and writes, per image
path (as given, relative to the current folder), the original size and every detection:
class, confidence and xyxy box in source pixels.
"""
import argparse
import json
from pathlib import Path

import ultralytics
from ultralytics import YOLO

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out", type=Path)
    ap.add_argument("sources", nargs="+", type=Path)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--imgsz", type=int, default=None)
    a = ap.parse_args()
    files = []
    for s in a.sources:
        files += sorted(p for p in s.rglob("*") if p.suffix.lower() in EXTS) if s.is_dir() else [s]
    model = YOLO(a.model, task="detect")
    kw = {"imgsz": a.imgsz} if a.imgsz else {}
    images = {}
    for f in files:
        r = model.predict(str(f), conf=a.conf, iou=a.iou, device="cpu", verbose=False, **kw)[0]
        h, w = r.orig_shape
        dets = [
            {"class": int(c), "conf": round(float(s), 6), "box": [round(float(v), 4) for v in b]}
            for b, s, c in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist())
        ]
        images[f.as_posix()] = {"width": w, "height": h, "detections": dets}
    doc = {
        "model": Path(a.model).name,
        "ultralytics": ultralytics.__version__,
        "conf": a.conf,
        "iou": a.iou,
        "images": images,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(images)} images, {sum(len(v['detections']) for v in images.values())} detections -> {a.out}")


if __name__ == "__main__":
    main()

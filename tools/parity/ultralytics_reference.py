#!/usr/bin/env python3
"""Reference detections from Ultralytics for qdet's parity tests.

Usage: ultralytics_reference.py MODEL.onnx OUT.json IMAGE_OR_DIR... [--conf 0.25] [--iou 0.7] [--imgsz N] [--ort-exact]
Runs `YOLO(model).predict` (ONNX Runtime backend, CPU) image by image and writes, per image
path (as given, relative to the current folder), the original size and every detection:
class, confidence and xyxy box in source pixels.

--ort-exact turns ONNX Runtime's graph optimizations off (ORT_DISABLE_ALL): for a QDQ model
this gives the exact semantics of the file (QuantizeLinear/DequantizeLinear in float) instead
of ORT's fused integer kernels, whose 16-bit saturation on AVX2 moves scores by up to 0.5.
"""
import argparse
import json
from pathlib import Path

import ultralytics
from ultralytics import YOLO

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def exact_onnxruntime():
    import onnxruntime as ort

    init = ort.InferenceSession.__init__

    def patched(self, path, sess_options=None, *args, **kw):
        so = sess_options or ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        init(self, path, so, *args, **kw)

    ort.InferenceSession.__init__ = patched


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out", type=Path)
    ap.add_argument("sources", nargs="+", type=Path)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--imgsz", type=int, default=None)
    ap.add_argument("--ort-exact", action="store_true")
    a = ap.parse_args()
    if a.ort_exact:
        exact_onnxruntime()
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
        "ort_exact": a.ort_exact,
        "images": images,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(images)} images, {sum(len(v['detections']) for v in images.values())} detections -> {a.out}")


if __name__ == "__main__":
    main()

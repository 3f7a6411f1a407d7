#!/usr/bin/env python3
"""Cross-check `qdet detect` against Ultralytics on any model and images.

Usage: compare.py MODEL.onnx IMAGE_OR_DIR... [--qdet target/release/qdet] [--conf 0.25] [--threads N]
                  [--imgsz N] (a dynamic export's inference size, given to both)
Runs Ultralytics predict (ONNX Runtime) and qdet on the same files and prints, per image,
the worst box and confidence differences of matched detections and any unmatched ones.
Exit status 1 if any detection above conf + 2e-3 has no partner within 1 px / 2e-3.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ultralytics import YOLO

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
BOX_TOL, CONF_TOL = 1.0, 2e-3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("sources", nargs="+", type=Path)
    ap.add_argument("--qdet", default="target/release/qdet")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--imgsz", type=int, default=None)
    a = ap.parse_args()
    files = []
    for s in a.sources:
        files += sorted(p for p in s.rglob("*") if p.suffix.lower() in EXTS) if s.is_dir() else [s]
    model = YOLO(a.model, task="detect")
    names = {v: k for k, v in model.names.items()}
    bad, worst_box, worst_conf, n = 0, 0.0, 0.0, 0
    with tempfile.TemporaryDirectory() as out:
        cmd = [a.qdet, "detect", "--model", a.model, "--out", out, "--conf", str(a.conf), "--json"]
        cmd += ["--threads", str(a.threads)] if a.threads else []
        cmd += ["--imgsz", str(a.imgsz)] if a.imgsz else []
        summary = json.loads(subprocess.run(cmd + [str(f) for f in files], check=False, capture_output=True, text=True).stdout)
        print(f"qdet mean ms: {summary['mean_ms']}, {summary['images_per_s']:.2f} images/s")
        for f in files:
            extra = {"imgsz": a.imgsz} if a.imgsz else {}
            r = model.predict(str(f), conf=a.conf, device="cpu", verbose=False, **extra)[0]
            ref = list(zip(r.boxes.cls.int().tolist(), r.boxes.conf.tolist(), r.boxes.xyxy.tolist()))
            doc = json.loads((Path(out) / f.with_suffix(".json").name).read_text())
            got = [(names[s["label"]], s["score"], [*s["points"][0], *s["points"][1]]) for s in doc["shapes"]]
            used = set()
            for c, s, b in ref:
                cands = [(max(abs(x - y) for x, y in zip(b, gb)), abs(s - gs), i)
                         for i, (gc, gs, gb) in enumerate(got) if gc == c and i not in used]
                best = min(cands, default=None)
                if best and best[0] <= BOX_TOL and best[1] <= CONF_TOL:
                    used.add(best[2])
                    worst_box, worst_conf, n = max(worst_box, best[0]), max(worst_conf, best[1]), n + 1
                elif s > a.conf + CONF_TOL:
                    bad += 1
                    print(f"{f}: Ultralytics {c} {s:.4f} {b} unmatched (closest {best})")
            for i, (gc, gs, gb) in enumerate(got):
                if i not in used and gs > a.conf + CONF_TOL:
                    bad += 1
                    print(f"{f}: qdet {gc} {gs:.4f} {gb} not in Ultralytics' output")
    print(f"{len(files)} images, {n} matched detections: max box diff {worst_box:.4f} px, "
          f"max conf diff {worst_conf:.2e}; {bad} unmatched")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

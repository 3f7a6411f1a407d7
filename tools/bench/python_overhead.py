#!/usr/bin/env python3
"""What the Python module costs over the Rust library, and how it compares with Ultralytics'
own ONNX Runtime path, on one model and one folder of images, in one run (no assertion).

    .venv/bin/pip install --no-deps target/wheels/qdet-*_x86_64.whl   # beside ultralytics
    .venv/bin/python tools/bench/python_overhead.py --model M.onnx --images DIR [--threads 2]

Rows, each the median over the images after a warm-up: `qdet bench` (the library: letterbox,
inference, postprocess, image already decoded) plus `qdet detect`'s mean decode; the module
on a path (decode included) and on a decoded numpy array; Ultralytics' `YOLO(M).predict` on
the path (its ONNX Runtime backend, `verbose=False`), skipped when ultralytics is missing.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

import qdet


def median_ms(fn, items, warmup=3):
    for x in items[:warmup]:
        fn(x)
    times = []
    for x in items:
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--model", required=True)
    a.add_argument("--images", required=True)
    a.add_argument("--threads", type=int, default=os.cpu_count())
    args = a.parse_args()
    paths = sorted(glob.glob(os.path.join(args.images, "*.jpg")))
    exe = qdet.binary()
    bench = json.loads(subprocess.check_output([exe, "bench", "--model", args.model, "--images", args.images,
                                                "--threads", str(args.threads), "--runs", "30", "--json"]))[0]
    with tempfile.TemporaryDirectory() as out:
        summary = json.loads(subprocess.check_output([exe, "detect", "--model", args.model, "--out", out, "--json",
                                                      "--threads", str(args.threads), args.images],
                                                     stderr=subprocess.DEVNULL))
    library = bench["total"]["p50_ms"] + summary["mean_ms"]["decode"]
    det = qdet.Detector(args.model, threads=args.threads)
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    on_path = median_ms(det, paths)
    on_array = median_ms(det, arrays)
    rows = [("qdet library (`qdet bench` p50 + `detect`'s mean decode)", library),
            ("qdet module, `det(path)`", on_path),
            ("qdet module, `det(array)` (decoded beforehand)", on_array)]
    try:
        from ultralytics import YOLO

        yolo = YOLO(args.model, task="detect")
        rows.append(("Ultralytics `YOLO(model).predict(path)`, ONNX Runtime",
                     median_ms(lambda p: yolo.predict(p, verbose=False), paths)))
    except ImportError:
        pass
    print(f"model {os.path.basename(args.model)}, {len(paths)} images in {args.images}, {args.threads} threads\n")
    print("| path | ms per image (median) | vs the library |\n|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {ms / library:.2f}x |")


if __name__ == "__main__":
    main()

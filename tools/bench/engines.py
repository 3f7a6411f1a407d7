#!/usr/bin/env python3
"""Issue 4's table: qdet fp32 and int8 against ONNX Runtime fp32 and int8, 1 and 2 threads,
measured back to back in one run on the same images (inference only, batch 1, p50 of the
timed runs after warm-up; each cell's median over interleaved rounds).

Usage: engines.py FP32.onnx CALIB_DIR IMAGES_DIR [--runs 15] [--rounds 3] [--qdet target/release/qdet] [--out DIR]
Makes qdet's int8 model with `qdet calibrate` (default settings) and ONNX Runtime's with
quantize_static (QDQ, per-channel, Conv only, tools/quant/ort_quantize_static.py), both from
CALIB_DIR; times qdet with `qdet bench --json` and ONNX Runtime (default graph optimizations,
its fused int8 kernels) on IMAGES_DIR letterboxed as qdet does.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from ultralytics.data.augment import LetterBox

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


def ort_p50(model, images, threads, runs, warmup=3):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    times = []
    for i in range(warmup + runs):
        x = images[i % len(images)]
        t = time.perf_counter()
        s.run(None, {name: x})
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def qdet_p50(qdet, model, images_dir, threads, runs):
    out = subprocess.run([qdet, "bench", "--model", str(model), "--images", str(images_dir), "--threads", str(threads),
                          "--runs", str(runs), "--json"], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)[0]
    return r["inference"]["p50_ms"], r.get("int8_kernel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("calib", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--qdet", default="target/release/qdet")
    ap.add_argument("--out", type=Path, default=Path("target/engines"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    q_int8 = a.out / "qdet.int8.onnx"
    o_int8 = a.out / "ort.int8.onnx"
    subprocess.run([a.qdet, "calibrate", "--model", str(a.model), "--images", str(a.calib), "--out", str(q_int8),
                    "--analysis-images", "0", "--overwrite"], check=True, capture_output=True)
    subprocess.run([sys.executable, str(Path(__file__).parent.parent / "quant/ort_quantize_static.py"), str(a.model),
                    str(a.calib), str(o_int8)], check=True, capture_output=True)
    size = tuple(ort.InferenceSession(str(a.model)).get_inputs()[0].shape[2:])
    images = []
    for f in sorted(p for p in a.images.rglob("*") if p.suffix.lower() in EXTS):
        lb = LetterBox(new_shape=size, auto=False, stride=32)(image=cv2.imread(str(f)))
        images.append(np.ascontiguousarray(lb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0))
    # Shared machines are noisy: every cell is measured once per round, the rounds
    # interleaved, and the table shows each cell's median over the rounds.
    samples = {}
    kernel = None
    for _ in range(a.rounds):
        for t in (1, 2):
            samples.setdefault(("ORT fp32", t), []).append(ort_p50(a.model, images, t, a.runs))
            samples.setdefault(("ORT int8", t), []).append(ort_p50(o_int8, images, t, a.runs))
            samples.setdefault(("qdet fp32", t), []).append(qdet_p50(a.qdet, a.model, a.images, t, a.runs)[0])
            p50, kernel = qdet_p50(a.qdet, q_int8, a.images, t, a.runs)
            samples.setdefault(("qdet int8", t), []).append(p50)
    rows = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{a.model.name}, input {size[1]}x{size[0]}, {len(images)} images, median over {a.rounds} interleaved rounds "
          f"of the p50 of {a.runs} runs; qdet int8 kernel: {kernel}")
    print("| engine | 1 thread | 2 threads |")
    print("|---|---|---|")
    for e in ("ORT fp32", "ORT int8", "qdet fp32", "qdet int8"):
        print(f"| {e} | {rows[(e, 1)]:.1f} ms | {rows[(e, 2)]:.1f} ms |")
    for t in (1, 2):
        q = rows[("qdet int8", t)]
        print(f"{t} thread(s): qdet int8 / ORT fp32 = {q / rows[('ORT fp32', t)]:.2f} (target <= 0.55), "
              f"/ ORT int8 = {q / rows[('ORT int8', t)]:.2f} (target <= 0.75), / qdet fp32 = {q / rows[('qdet fp32', t)]:.2f}")
    # The same ratios within each round (cells measured seconds apart, so a slow spell of the
    # machine hits both sides of most ratios), and each cell's fastest round.
    print("| ratio | threads | median of per-round ratios | per round | fastest rounds |")
    print("|---|---|---|---|---|")
    for t in (1, 2):
        q = samples[("qdet int8", t)]
        for ref, target in (("ORT fp32", 0.55), ("ORT int8", 0.75)):
            r = [a / b for a, b in zip(q, samples[(ref, t)])]
            print(f"| qdet int8 / {ref} (target <= {target}) | {t} | {statistics.median(r):.2f} | "
                  f"{' '.join(f'{x:.2f}' for x in r)} | {min(q) / min(samples[(ref, t)]):.2f} |")
    (a.out / "engines.json").write_text(json.dumps({f"{e} {t}": v for (e, t), v in samples.items()}, indent=1))


if __name__ == "__main__":
    main()

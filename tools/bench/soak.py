#!/usr/bin/env python3
"""Soak test: `qdet detect` over many generated images (mixed sizes, about 1% broken), with
the peak RSS and the time per image reported per window of the run, to show both stay flat.

    python3 tools/bench/soak.py [--images 10000] [--model models/shapes-yolov8n.int8.onnx]
                                [--threads 2] [--qdet target/release/qdet] [--keep DIR]

Standard library only: the images are PNGs (zlib) of random sizes from 24 to 1600 px a side,
striped in random colours; one in a hundred is broken (empty, truncated, or not an image).
While qdet runs, its resident memory (/proc/PID/status VmRSS) and the number of labelme
files written are sampled twice a second; the table gives, per tenth of the images, the
images/s and the largest RSS seen in that window. qdet's own exit status must be 2 (some
images failed) and the failed count must equal the broken files.
"""
import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path


def png(width, height, rng):
    colours = [bytes(rng.randrange(256) for _ in range(3)) for _ in range(4)]
    stripe = max(1, width // 4)
    row = b"".join(colours[min(3, x // stripe)] for x in range(width))
    raw = b"".join(b"\0" + (row if (y // 7) % 2 == 0 else row[3:] + row[:3]) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def generate(folder, n, seed):
    rng = random.Random(seed)
    broken = 0
    for i in range(n):
        sub = folder / f"{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i:05d}.png"
        if rng.random() < 0.01:
            broken += 1
            kind = rng.randrange(3)
            data = b"" if kind == 0 else png(64, 48, rng)[: rng.randrange(20, 120)] if kind == 1 else b"not an image at all"
        else:
            data = png(rng.randrange(24, 1601), rng.randrange(24, 1601), rng)
        path.write_bytes(data)
    return broken


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--model", default="models/shapes-yolov8n.int8.onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--qdet", default="target/release/qdet")
    ap.add_argument("--keep", help="generate into (or reuse) this folder instead of a temporary one")
    a = ap.parse_args()
    tmp = None if a.keep else tempfile.TemporaryDirectory()
    root = Path(a.keep or tmp.name)
    src = root / "images"
    if not src.exists():
        t = time.time()
        broken = generate(src, a.images, seed=0)
        (root / "broken.txt").write_text(str(broken))
        print(f"generated {a.images} images ({broken} broken) in {time.time() - t:.0f} s", file=sys.stderr)
    broken = int((root / "broken.txt").read_text())
    out = root / f"out-{int(time.time())}"
    cmd = [a.qdet, "detect", "--model", a.model, str(src), "--out", str(out), "--threads", str(a.threads), "--json"]
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    samples = []  # (seconds, files written, rss MB)
    while proc.poll() is None:
        time.sleep(0.5)
        done = sum(len(files) for _, _, files in os.walk(out)) if out.exists() else 0
        samples.append((time.time() - start, done, rss_mb(proc.pid)))
    summary = proc.stdout.read().decode()
    import json

    s = json.loads(summary)
    print(f"exit {proc.returncode}; {s['processed']} processed, {s['failed']} failed (broken: {broken}); "
          f"{s['images_per_s']:.1f} images/s overall; mean ms: {s['mean_ms']}")
    assert proc.returncode == 2 and s["failed"] == broken, "every broken file, and only those, must fail"
    total = s["processed"]
    print("| images written | images/s in the window | peak RSS in the window (MB) |")
    print("|---|---|---|")
    window = max(1, total // 10)
    prev_t, prev_n = 0.0, 0
    for k in range(1, 11):
        upto = min(total, k * window) if k < 10 else total
        inside = [x for x in samples if prev_n < x[1] <= upto]
        if not inside:
            continue
        t_end = inside[-1][0]
        rate = (inside[-1][1] - prev_n) / max(t_end - prev_t, 1e-9)
        peak = max((x[2] for x in inside if x[2] is not None), default=float("nan"))
        print(f"| {prev_n}-{inside[-1][1]} | {rate:.1f} | {peak:.0f} |")
        prev_t, prev_n = t_end, inside[-1][1]


if __name__ == "__main__":
    main()

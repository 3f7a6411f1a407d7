#!/usr/bin/env python3
"""Frames per second, latency and memory of `qdet detect` on live streams (standard library
and the system ffmpeg only; nothing is asserted).

Makes an H.264 clip of real photos (a slideshow, 2 photos a second, 30 fps) at each size,
then for each model, size and stream count runs

    qdet detect --model M s1.mp4 ... sN.mp4 --live --ffmpeg-input-args "-re -stream_loop -1"
        --jsonl - --threads THREADS

for SECONDS (every stream is the clip looped at its real pace, as a camera sends it), stops
it with SIGTERM and reports: frames processed per second (all streams), the share of the
streams' frames processed, `latency_ms` of the JSON lines (the frame's last byte out of
ffmpeg to its line) p50 / p95, and the peak and final RSS of qdet (its ffmpeg children not
counted). With --soak S, one stream of the smallest size and the first model runs S seconds
and RSS is printed every 30 s.

Usage: tools/bench/video_streams.py --photos DIR --model M [--model M2] [--qdet BIN]
       [--sizes 640x480,1920x1080] [--streams 1,4] [--seconds 20] [--threads 2] [--soak 600]
"""
import argparse
import glob
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time


def clip(photos, size, out):
    w, h = size.split("x")
    vf = f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1"
    # The rate as an output option: an fps filter after images of varying sizes gave no frame.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "2", "-pattern_type", "glob", "-i",
                    os.path.join(photos, "*.jpg"), "-vf", vf, "-r", "30", "-t", "20", "-c:v", "libx264",
                    "-preset", "veryfast", "-pix_fmt", "yuv420p", out], check=True)
    n = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of",
                        "csv=p=0", out], capture_output=True, text=True).stdout.strip()
    assert n == "600", f"{out}: {n} frames, not 600"



def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1]) / 1024
    except (OSError, TypeError):
        return 0.0


def run(a, model, clips, seconds, every=None):
    cmd = [a.qdet, "detect", "--model", model, *clips, "--live", "--ffmpeg-input-args", "-re -stream_loop -1",
           "--jsonl", "-", "--threads", str(a.threads), "--out", tempfile.mkdtemp()]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, rss = [], []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout))
    reader.start()
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(0.5)
        rss.append(rss_mb(p.pid))
        if every and len(rss) % (2 * every) == 0:
            print(f"  {time.monotonic() - start:5.0f} s: RSS {rss[-1]:.0f} MB", flush=True)
    p.send_signal(signal.SIGTERM)
    err = p.stderr.read()
    p.wait()
    reader.join()
    docs = [json.loads(line) for line in lines if line.startswith("{")]
    counts = [list(map(int, re.findall(r"(\d+) (?:frames|processed)", line))) for line in err.splitlines()
              if re.search(r": \d+ frames, \d+ processed", line)]
    read = sum(c[0] for c in counts)
    lat = sorted(d["latency_ms"] for d in docs if "latency_ms" in d)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    return {"fps": len(docs) / seconds, "share": len(docs) / read if read else 0.0, "p50": pct(0.5),
            "p95": pct(0.95), "rss_peak": max(rss), "rss_end": rss[-1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qdet", default="target/release/qdet")
    ap.add_argument("--photos", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--sizes", default="640x480,1920x1080")
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--soak", type=float, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for size in a.sizes.split(","):
            clips[size] = []
            clip(a.photos, size, f"{tmp}/{size}.mp4")
            for i in range(max(map(int, a.streams.split(",")))):
                os.symlink(f"{tmp}/{size}.mp4", f"{tmp}/{size}-s{i + 1}.mp4")
                clips[size].append(f"{tmp}/{size}-s{i + 1}.mp4")
        if a.soak:
            size = a.sizes.split(",")[0]
            print(f"soak: 1 stream of {size}, {os.path.basename(a.model[0])}, {a.soak:g} s")
            r = run(a, a.model[0], clips[size][:1], a.soak, every=30)
            print(f"  frames/s {r['fps']:.1f}, RSS peak {r['rss_peak']:.0f} MB, end {r['rss_end']:.0f} MB")
            return
        print(f"{a.threads} threads, {a.seconds:g} s per run, 30 fps streams\n")
        print("| model | size | streams | frames/s processed | share of frames | latency p50 ms | p95 ms | RSS peak MB |")
        print("|---|---|---|---|---|---|---|---|")
        for model in a.model:
            for size in a.sizes.split(","):
                for n in map(int, a.streams.split(",")):
                    r = run(a, model, clips[size][:n], a.seconds)
                    print(f"| {os.path.basename(model)} | {size} | {n} | {r['fps']:.1f} | {r['share']:.2f} | "
                          f"{r['p50']:.0f} | {r['p95']:.0f} | {r['rss_peak']:.0f} |", flush=True)


if __name__ == "__main__":
    main()

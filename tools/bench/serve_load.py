#!/usr/bin/env python3
"""Latency and throughput of `qdet serve` beside `qdet bench` and `qdet detect` on the same
machine and images (Python standard library only; no timing is asserted anywhere).

Starts `qdet serve --model MODEL` on a free port, then for each concurrency C sends
REQUESTS requests per client from C keep-alive clients to POST /v1/vision/detection
(multipart, as DeepStack clients do), cycling through the images, and reports requests/s,
p50/p99 latency as the client sees it, and the mean of the answers' inferenceMs. Then runs
`qdet bench` (inference p50 with 1 thread, what one serve worker does) and `qdet detect`
(images/s over the same folder) for comparison.

Usage: tools/bench/serve_load.py [--qdet target/release/qdet] [--model M] [--images DIR]
       [--concurrency 1,2,4,8] [--requests 60]
"""
import argparse
import glob
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid


def multipart(image):
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"i.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return boundary, head + image + f"\r\n--{boundary}--\r\n".encode()


def client(port, bodies, n, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(n):
        boundary, body = bodies[i % len(bodies)]
        t = time.perf_counter()
        conn.request("POST", "/v1/vision/detection", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        r = conn.getresponse()
        data = r.read()
        ms = (time.perf_counter() - t) * 1e3
        out.append((r.status, ms, json.loads(data).get("inferenceMs", 0) if r.status == 200 else 0))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def load(port, bodies, concurrency, requests):
    results = []
    threads = [threading.Thread(target=client, args=(port, bodies, requests, results)) for _ in range(concurrency)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    ok = [r for r in results if r[0] == 200]
    lat = [r[1] for r in ok]
    print(f"| {concurrency} | {len(ok) / wall:.1f} | {pct(lat, 50):.1f} | {pct(lat, 99):.1f} | "
          f"{statistics.mean(r[2] for r in ok):.1f} | {len(results) - len(ok)} |")


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--qdet", default="target/release/qdet")
    a.add_argument("--model", default="models/shapes-yolov8n.int8.onnx")
    a.add_argument("--images", default="datasets/shapes/images/val")
    a.add_argument("--concurrency", default="1,2,4,8")
    a.add_argument("--requests", type=int, default=60, help="requests per client")
    args = a.parse_args()
    paths = sorted(glob.glob(os.path.join(args.images, "*.jpg")))
    bodies = [multipart(open(p, "rb").read()) for p in paths]
    port = free_port()
    server = subprocess.Popen([args.qdet, "serve", "--model", args.model, "--bind", f"127.0.0.1:{port}"],
                              stderr=subprocess.PIPE, text=True)
    try:
        for line in server.stderr:
            if "listening on" in line:
                break
        threading.Thread(target=server.stderr.read, daemon=True).start()
        load(port, bodies, 1, 5)  # warm-up, printed for completeness
        print("\n| clients | requests/s | p50 ms | p99 ms | mean inferenceMs | failed |\n|---|---|---|---|---|---|")
        for c in (int(x) for x in args.concurrency.split(",")):
            load(port, bodies, c, args.requests)
    finally:
        server.terminate()
        server.wait()
    # A lone request runs on every core (the kernels' team), so its latency is comparable to
    # `qdet bench --threads <cores>`; one worker of a loaded server is `--threads 1`.
    for threads in sorted({1, os.cpu_count() or 1}):
        bench = json.loads(subprocess.check_output([args.qdet, "bench", "--model", args.model, "--images", args.images,
                                                    "--threads", str(threads), "--runs", "60", "--json"]))
        inf, total = bench[0]["inference"], bench[0]["total"]
        print(f"\nqdet bench --threads {threads}: inference p50 {inf['p50_ms']:.1f} ms, p99 {inf['p99_ms']:.1f} ms; "
              f"preprocess + inference + postprocess p50 {total['p50_ms']:.1f} ms")
    with tempfile.TemporaryDirectory() as out:
        summary = json.loads(subprocess.check_output(
            [args.qdet, "detect", "--model", args.model, "--out", out, "--json", args.images], stderr=subprocess.DEVNULL))
    print(f"qdet detect: {summary['images_per_s']:.1f} images/s over {summary['images']} images, "
          f"mean decode {summary['mean_ms']['decode']:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())

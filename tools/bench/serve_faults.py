#!/usr/bin/env python3
"""Load and fault scenarios against `qdet serve`, measured from outside (standard library
only, loopback only, bounded in clients, bytes and time; nothing is asserted).

    python3 tools/bench/serve_faults.py --qdet BIN [--model models/shapes-yolov8n.onnx]
        [--uploads 200] [--upload-mb 19] [--scenarios 1,2,3] [--env MALLOC_ARENA_MAX=2]

Each scenario starts its own server on a free port and prints a markdown table.
1. Burst: UPLOADS clients at once POST a form whose image is UPLOAD_MB MB of random bytes
   behind a JPEG SOI; per round (three): peak VmRSS (every 20 ms), answers by status, RSS
   1, 5 and 10 s after the last answer, and the server's heap trims so far.
2. Give-up (--threads 1 --queue 4): a 3000x3000 noise PNG holds the worker while three raw
   sockets send a small POST /v1/detect and close 50 ms later: the abandoned counter, and
   the server's CPU seconds beside the big and a small request each answered alone.
3. Capacity (--threads 2 --queue 4): six keep-alive clients x 25 requests back to back:
   the 503s out of 150, three times.
"""
import argparse
import collections
import glob
import http.client
import os
import random
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib


class Server:
    """`qdet serve` on a free loopback port, up once it says it listens."""

    def __init__(self, a, extra):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, **dict(kv.split("=", 1) for kv in a.env))
        cmd = [a.qdet, "serve", "--model", a.model, "--bind", f"127.0.0.1:{self.port}", *extra]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        self.pid, line = self.proc.pid, ""
        for line in self.proc.stderr:
            if "listening on" in line:
                break
        else:
            self.proc.wait()
            raise RuntimeError(f"the server did not start ({' '.join(extra)}): {line.strip()}")
        # Drained so that its warnings never fill the pipe and stall it.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1]) / 1024
    except (OSError, TypeError):  # gone, or a zombie without memory
        return 0.0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+) (\S+)$", text, re.M)}


def multipart(image, name="x.jpg"):
    boundary = "qdetfaults%016x" % random.getrandbits(64)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return f"multipart/form-data; boundary={boundary}", [head, image, f"\r\n--{boundary}--\r\n".encode()]


def post(port, path, ctype, parts):
    """The status of one POST. The body is written while watching for an early answer: a 503
    given before the body is read comes with the connection closing, and a client that reads
    only after writing it all would see a reset instead of the answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: "
                      f"{sum(map(len, parts))}\r\nConnection: close\r\n\r\n".encode())
            answered = False
            for part in parts:
                view, sent = memoryview(part), 0
                while sent < len(view) and not answered:
                    readable, writable, _ = select.select([s], [s], [], 120)
                    answered = bool(readable)
                    if writable and not answered:
                        sent += s.send(view[sent:sent + (1 << 20)])
            reply = s.recv(4096)  # the status line comes in the answer's first segment
            return int(reply.split()[1]) if reply else "closed"
    except OSError as e:
        return type(e).__name__


def run_all(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def burst(a, srv, ctype, parts):
    peak, done, stop = [0.0], [], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(srv.pid))
            if peak[0] > a.rss_limit_mb:  # the box is shared: never let a server take all of it
                srv.proc.kill()
            time.sleep(0.02)

    def client():
        done.append((post(srv.port, "/v1/vision/detection", ctype, parts), time.monotonic()))

    sampler = threading.Thread(target=sample)
    sampler.start()
    run_all([threading.Thread(target=client) for _ in range(a.uploads)])
    stop.set()
    sampler.join()
    last, after = max(t for _, t in done), []
    for s in (1, 5, 10):
        time.sleep(max(0.0, last + s - time.monotonic()))
        after.append(rss_mb(srv.pid))
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(collections.Counter(str(s) for s, _ in done).items()))
    if srv.proc.poll() is None:
        after.append(metrics(srv.port).get("qdet_heap_trims_total", 0))
    return peak[0], counts + (" (killed at --rss-limit-mb)" if srv.proc.poll() is not None else ""), after


def scenario_uploads(a, small):
    srv = Server(a, [])
    try:
        for _ in range(5):  # the first answers allocate what the later ones reuse
            post(srv.port, "/v1/detect", "image/jpeg", [small])
        time.sleep(1)
        print(f"\n### 1. {a.uploads} concurrent uploads of {a.upload_mb:g} MB\n\nidle RSS after warm-up: "
              f"{rss_mb(srv.pid):.0f} MB\n\n| round | peak RSS MB | answers | RSS MB +1 s | +5 s | +10 s | heap trims |\n"
              "|---|---|---|---|---|---|---|")
        # One image shared by every client: the burst tests the server's memory, not ours.
        ctype, parts = multipart(b"\xff\xd8\xff\xe0" + random.randbytes(int(a.upload_mb * 1e6) - 4))
        for r in range(3):
            peak, counts, after = burst(a, srv, ctype, parts)
            print(f"| {r + 1} | {peak:.0f} | {counts} | " + " | ".join(f"{x:.0f}" for x in after) + " |")
            if srv.proc.poll() is not None:
                break
    finally:
        srv.stop()


def noise_png(side, seed=7):
    # 16 levels per byte: noisy enough to decode slowly, compressible enough to stay under
    # --max-body; the Paeth filter on every row makes the decoder work on every byte.
    raw = random.Random(seed).randbytes(side * side * 3).translate(bytes(i & 0xF0 for i in range(256)))
    rows = b"".join(b"\x04" + raw[y * side * 3:(y + 1) * side * 3] for y in range(side))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


def settle(srv):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = metrics(srv.port)
        if m.get("qdet_queue_depth", 0) == 0 and m.get("qdet_in_flight", 0) == 0:
            break
        time.sleep(0.05)
    time.sleep(0.3)


def cpu_of(srv, fn):
    """Server CPU seconds over `fn` and until no job waits or runs, so that the jobs a
    given-up client left behind count too; and what `fn` returned."""
    settle(srv)
    before = cpu_s(srv.pid)
    result = fn()
    settle(srv)
    return cpu_s(srv.pid) - before, result


def scenario_give_up(a, small):
    print("\n### 2. clients that give up (--threads 1 --queue 4)\n")
    srv = Server(a, ["--threads", "1", "--queue", "4"])
    try:
        # As the raw body of /v1/detect: the form route of older servers refused forms over 2 MB.
        big = noise_png(3000)
        post_big = lambda: post(srv.port, "/v1/detect", "image/png", [big])
        post(srv.port, "/v1/detect", "image/jpeg", [small])
        small_cpu, small_status = cpu_of(srv, lambda: post(srv.port, "/v1/detect", "image/jpeg", [small]))
        big_cpu, big_status = cpu_of(srv, post_big)

        def scenario():
            answer = []
            t = threading.Thread(target=lambda: answer.append(post_big()))
            t.start()
            while metrics(srv.port).get("qdet_in_flight", 0) < 1 and t.is_alive():
                time.sleep(0.005)  # the small ones must find the worker busy
            socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(3)]
            for s in socks:
                s.sendall(f"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                          f"Content-Length: {len(small)}\r\n\r\n".encode() + small)
            time.sleep(0.05)
            for s in socks:
                s.close()
            t.join()
            return answer[0]

        scen_cpu, scen_status = cpu_of(srv, scenario)
        abandoned = metrics(srv.port).get("qdet_requests_abandoned_total")
        print(f"| measure | value |\n|---|---|\n"
              f"| qdet_requests_abandoned_total | {'not counted' if abandoned is None else int(abandoned)} |\n"
              f"| CPU s, scenario (big + 3 given up) | {scen_cpu:.2f} (big answered {scen_status}) |\n"
              f"| CPU s, big {len(big) / 1e6:.1f} MB PNG alone | {big_cpu:.2f} ({big_status}) |\n"
              f"| CPU s, one small request alone | {small_cpu:.3f} ({small_status}) |")
    finally:
        srv.stop()


def scenario_capacity(a, paths):
    print("\n### 3. six keep-alive clients at exactly the capacity (--threads 2 --queue 4)\n")
    srv = Server(a, ["--threads", "2", "--queue", "4"])
    bodies = [multipart(open(paths[i % len(paths)], "rb").read()) for i in range(6)]

    def client(i, out):
        # One connection throughout; after a 503 with Connection: close it reopens by itself.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        ctype, parts = bodies[i]
        for _ in range(25):
            conn.request("POST", "/v1/vision/detection", b"".join(parts), {"Content-Type": ctype})
            r = conn.getresponse()
            out.append((r.read(), r.status)[1])

    try:
        print("| round | 503s | other answers |\n|---|---|---|")
        for r in range(3):
            out = []
            run_all([threading.Thread(target=client, args=(i, out)) for i in range(6)])
            counts = collections.Counter(out)
            other = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if k != 503)
            print(f"| {r + 1} | {counts[503]}/{len(out)} | {other} |")
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qdet", default="target/release/qdet")
    ap.add_argument("--model", default="models/shapes-yolov8n.onnx")
    ap.add_argument("--images", default="datasets/shapes/images/val")
    ap.add_argument("--uploads", type=int, default=200)
    ap.add_argument("--upload-mb", type=float, default=19)
    ap.add_argument("--scenarios", default="1,2,3")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the servers (repeatable)")
    ap.add_argument("--rss-limit-mb", type=float, default=12000, help="kill the server above this RSS")
    a = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(a.images, "*.jpg")))
    small = open(paths[0], "rb").read()
    print(f"qdet: {a.qdet}  model: {a.model}  env: {' '.join(a.env) or '-'}")
    runs = {"1": lambda: scenario_uploads(a, small), "2": lambda: scenario_give_up(a, small),
            "3": lambda: scenario_capacity(a, paths)}
    for s in a.scenarios.split(","):
        try:
            runs[s]()
        except RuntimeError as e:  # an older server refusing an option: say so and go on
            print(f"\nscenario {s} could not run: {e}")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

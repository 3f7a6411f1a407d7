"""examples/fastapi_app.py started as a user would, on a free loopback port, and asked."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import qdet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, image: bytes) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_the_example_service_answers_the_detections(root, model, val_images):
    port = free_port()
    env = dict(os.environ, QDET_MODEL=model)
    app = subprocess.Popen([sys.executable, str(root / "examples" / "fastapi_app.py"), "--port", str(port)], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and app.poll() is None, "the example did not start"
                time.sleep(0.2)
        image = val_images[0].read_bytes()
        got = post(base + "/detect?conf=0.5", image)
        want = [r for r in qdet.Detector(model)(image) if r[4] > 0.5]
        assert len(want) > 0
        assert [(d["box"], d["score"], d["class"]) for d in got["detections"]] == [
            (list(r[:4]), r[4], r[5]) for r in want
        ]
        try:
            post(base + "/detect", b"not an image")
            raise AssertionError("a bad image was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and "not a supported image format" in e.read().decode()
    finally:
        app.terminate()
        app.wait(timeout=30)

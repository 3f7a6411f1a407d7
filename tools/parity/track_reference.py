#!/usr/bin/env python3
"""Reference tracks from Ultralytics' `track` for qdet's `detect --track` (tests/it/track.rs).

Usage (from the repository root; lap as for bytetrack_reference.py):

    .venv/bin/python -m pip install --target /tmp/qdet-lap --no-deps lap==0.5.13
    PYTHONPATH=/tmp/qdet-lap YOLO_AUTOINSTALL=0 .venv/bin/python tools/parity/track_reference.py

Written with Ultralytics 8.4.190. The clip's frames are extracted by ffmpeg as PNG exactly as
qdet decodes them (rgb24, every frame once), and `YOLO(model).track(source=FOLDER,
persist=True, tracker="bytetrack.yaml")` runs on that folder (ONNX Runtime backend,
`track`'s conf 0.1; 8.4's default tracker is TrackTrack, qdet's is ByteTrack): `persist`
keeps one tracker over the folder's images, which `yolo track` on a folder would reset at
every image. The frames are the clip's so that the decoder is not what
is compared (OpenCV's and ffmpeg's YUV to RGB differ by a level here and there).

Writes tests/data/video/moving.track.json: per frame, the rows [x1, y1, x2, y2, id, conf, cls].
"""
import json
import subprocess
import tempfile
from pathlib import Path

import ultralytics
from ultralytics import YOLO

CLIP = Path("tests/data/video/moving.mp4")
MODEL = "models/shapes-yolov8n.onnx"
OUT = Path("tests/data/video/moving.track.json")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(CLIP), "-map", "0:v:0", "-fps_mode", "passthrough",
                        "-pix_fmt", "rgb24", f"{tmp}/%06d.png"], check=True)
        frames = sorted(Path(tmp).glob("*.png"))
        model = YOLO(MODEL, task="detect")
        rows = []
        for r in model.track(source=tmp, tracker="bytetrack.yaml", persist=True, stream=True, verbose=False):
            b = r.boxes
            if b.id is None:
                rows.append([])
                continue
            rows.append([[*map(float, xyxy), int(i), float(c), int(k)]
                         for xyxy, i, c, k in zip(b.xyxy.tolist(), b.id.tolist(), b.conf.tolist(), b.cls.tolist())])
    assert len(rows) == len(frames), (len(rows), len(frames))
    OUT.write_text(json.dumps({"ultralytics": ultralytics.__version__, "model": MODEL, "clip": str(CLIP),
                               "frames": rows}, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(rows)} frames, {sum(map(len, rows))} tracked boxes, "
          f"{len({r[4] for f in rows for r in f})} ids")


if __name__ == "__main__":
    main()

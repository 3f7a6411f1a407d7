"""A detection service on FastAPI and uvicorn (with uvloop), using the qdet module.

    pip install qdet fastapi "uvicorn[standard]" python-multipart
    QDET_MODEL=best.onnx python examples/fastapi_app.py --port 8000
    curl -F image=@bus.jpg 'http://127.0.0.1:8000/detect?conf=0.5'

The detector runs in the default thread pool (`run_in_executor`): qdet releases the GIL while
it decodes and infers, so concurrent requests use every core while the event loop keeps
serving. For a service an NVR talks to, `qdet serve` is the better fit (the DeepStack API,
bounded memory and queue, no Python); this is the starting point for an app of your own:
your routes, your auth, your post-processing next to the detections.
"""
import argparse
import asyncio
import os

import uvicorn
from fastapi import FastAPI, File, HTTPException, Query, UploadFile

import qdet

det = qdet.Detector(os.environ.get("QDET_MODEL", "best.onnx"))
app = FastAPI(title="qdet example")


@app.post("/detect")
async def detect(image: UploadFile = File(...), conf: float = Query(0.25, ge=0, le=1)):
    data = await image.read()
    try:
        found = await asyncio.get_running_loop().run_in_executor(None, det, data)
    except qdet.QdetError as e:
        raise HTTPException(status_code=400, detail=str(e))
    height, width = found.shape
    return {
        "width": width,
        "height": height,
        "detections": [
            {"box": [x1, y1, x2, y2], "score": score, "class": cls, "name": name}
            for x1, y1, x2, y2, score, cls, name in found
            if score > conf
        ],
    }


@app.get("/healthz")
async def healthz():
    return {"status": "ok", "classes": len(det.names)}


if __name__ == "__main__":
    a = argparse.ArgumentParser()
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8000)
    args = a.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools", log_level="warning")

#!/usr/bin/env python3
"""Reference activation ranges for qdet calibrate's tests, computed with ONNX Runtime.

Usage: ort_calib_ranges.py MODEL.onnx CALIB_DIR OUT.json
Runs the fp32 model (graph optimizations off) with every Conv input (and the inputs of the
Concats a Conv reads) as an extra output on each
image of CALIB_DIR, letterboxed as qdet detect does (Ultralytics' LetterBox, auto=False), and
writes per tensor: the min and max over all images, and PPQ's percentile range (p = 0.9999):
the f32 mean over images of the order statistics sorted[trunc(n * (1 - p))] and
sorted[min(trunc(n * p), n - 1)].
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from ultralytics.data.augment import LetterBox

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
P = 0.9999


def main():
    model_path, calib, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    m = onnx.load(model_path)
    graph_inputs = {i.name for i in m.graph.input}
    tensors = {n.input[0] for n in m.graph.node if n.op_type == "Conv"}
    # The inputs of the Concats a Conv reads: `qdet calibrate` quantizes each on its own grid.
    concats = {n.output[0]: n for n in m.graph.node if n.op_type == "Concat"}
    tensors = sorted(tensors | {i for t in tensors if t in concats for i in concats[t].input})
    for t in tensors:
        if t not in graph_inputs:
            m.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inp = m.graph.input[0]
    size = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim[2:])
    names = [o.name for o in sess.get_outputs()]
    files = sorted(p for p in calib.rglob("*") if p.suffix.lower() in EXTS)
    acc = {t: {"min": np.inf, "max": -np.inf, "los": [], "his": []} for t in tensors}
    for f in files:
        img = cv2.imread(str(f))
        lb = LetterBox(new_shape=size, auto=False, stride=32)(image=img)
        x = np.ascontiguousarray(lb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        outs = dict(zip(names, sess.run(names, {inp.name: x})))
        outs[inp.name] = x
        for t in tensors:
            v = np.sort(outs[t].ravel())
            n = v.size
            a = acc[t]
            a["min"], a["max"] = min(a["min"], float(v[0])), max(a["max"], float(v[-1]))
            a["los"].append(v[int(n * (1 - P))])
            a["his"].append(v[min(int(n * P), n - 1)])
    doc = {
        "model": model_path.name,
        "images": len(files),
        "onnxruntime": ort.__version__,
        "tensors": {
            t: {
                "min": a["min"],
                "max": a["max"],
                "percentile_min": float(np.mean(np.array(a["los"], np.float32), dtype=np.float32)),
                "percentile_max": float(np.mean(np.array(a["his"], np.float32), dtype=np.float32)),
            }
            for t, a in acc.items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(tensors)} tensors over {len(files)} images -> {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What per-channel activation grids would buy: a QDQ file's activation Quantize/Dequantize
pairs given one uint8 grid per channel (axis 1, per-channel min/max over the calibration
images, or the per-channel clip of least squared error with --mse), run by ONNX Runtime
with its exact QDQ semantics and judged as peer_agreement.py judges (every fp32 box >= 0.5).

Only tensors whose float value nothing else reads are changed (a Split half or a Concat
input that also feeds float ops keeps its grid), and the weights keep theirs: the integer
kernels would have to fold each channel's scale into the next conv's weights, re-rounding
them, so this is an upper bound for the scheme.

Usage: perchannel_acts.py FP32.onnx QDQ.onnx CALIB_DIR JUDGE_DIR [--mse] [--out FILE]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from ultralytics.data.augment import LetterBox

sys.path.insert(0, str(Path(__file__).parent))
from drift_sources import activation_pairs, float_weights  # noqa: E402
from peer_agreement import EXTS, agreement, detections, runner  # noqa: E402

SAMPLES = 2000  # random positions per image and channel, plus each channel's extremes


def channel_samples(fp32, names, calib, size):
    """Per tensor, `[C, n]` values: random positions and the per-channel min and max."""
    m = onnx.load(str(fp32))
    for t in names:
        m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outputs.onnx"
        onnx.save(m, str(path))
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    out = {t: [] for t in names}
    for f in sorted(p for p in calib.iterdir() if p.suffix.lower() in EXTS):
        lb = LetterBox(new_shape=size, auto=False, stride=32)(image=cv2.imread(str(f)))
        x = np.ascontiguousarray(lb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        for t, o in zip(names, s.run(names, {s.get_inputs()[0].name: x})):
            v = o[0].reshape(o.shape[1], -1)
            pick = v[:, rng.choice(v.shape[1], min(v.shape[1], SAMPLES), replace=False)]
            out[t].append(np.concatenate([pick, v.min(1, keepdims=True), v.max(1, keepdims=True)], axis=1))
    return {t: np.concatenate(v, axis=1) for t, v in out.items()}


def fake_quant(v, scale, zp):
    return (np.clip(np.round(v / scale) + zp, 0, 255) - zp) * scale


def grid(v, mse):
    """uint8 (scale, zero point) covering `[min(v, 0), hi]`, hi the max or the best clip."""
    lo, top = min(0.0, float(v.min())), max(float(v.max()), 1e-6)
    best = None
    for hi in (top * np.linspace(0.2, 1.0, 33) if mse else [top]):
        scale = (hi - lo) / 255
        zp = int(np.clip(round(-lo / scale), 0, 255))
        err = float(np.mean((fake_quant(v, scale, zp) - v) ** 2))
        if best is None or err < best[0]:
            best = (err, scale, zp)
    return best[1], best[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32", type=Path)
    ap.add_argument("qdq", type=Path)
    ap.add_argument("calib", type=Path)
    ap.add_argument("judge", type=Path)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--mse", action="store_true", help="per-channel clip of least squared error, not min/max")
    ap.add_argument("--out", type=Path, help="also write the per-channel file")
    a = ap.parse_args()
    ort.set_default_logger_severity(3)
    size = (a.imgsz, a.imgsz)
    qdq = onnx.load(str(a.qdq))
    readers = {}
    for n in qdq.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    pairs = [(q, dqs) for q, dqs in activation_pairs(qdq)
             if q.input[0] != qdq.graph.input[0].name
             and all(r.op_type == "QuantizeLinear" for r in readers[q.input[0]])]
    names = [q.input[0] for q, _ in pairs]
    print(f"{len(names)} of {len(activation_pairs(qdq))} quantized activations get per-channel grids")
    samples = channel_samples(a.fp32, names, a.calib, size)
    inits = {i.name: i for i in qdq.graph.initializer}
    for (q, dqs), t in zip(pairs, names):
        v = samples[t]
        old = (float(numpy_helper.to_array(inits[q.input[1]])), int(numpy_helper.to_array(inits[q.input[2]])))
        grids = [grid(v[c], a.mse) for c in range(v.shape[0])]
        scale = np.array([g[0] for g in grids], np.float32)
        zp = np.array([g[1] for g in grids], np.uint8)
        for n in [q] + dqs:
            qdq.graph.initializer.extend([numpy_helper.from_array(scale, n.name + "_pc_scale"),
                                          numpy_helper.from_array(zp, n.name + "_pc_zp")])
            n.input[1], n.input[2] = n.name + "_pc_scale", n.name + "_pc_zp"
            n.attribute.append(helper.make_attribute("axis", 1))
        e_tensor = float(np.mean((fake_quant(v, *old) - v) ** 2))
        e_channel = float(np.mean((fake_quant(v, scale[:, None], zp[:, None].astype(np.float32)) - v) ** 2))
        print(f"  {t:52s} squared error per tensor {e_tensor:.2e}, per channel {e_channel:.2e}")
    if a.out:
        onnx.save(qdq, str(a.out))
    files = sorted(p for p in a.judge.iterdir() if p.suffix.lower() in EXTS)
    imgs = [cv2.imread(str(f)) for f in files]
    refs = [detections(runner(a.fp32, False), im, size, 0.25) for im in imgs]
    fp32 = onnx.load(str(a.fp32))
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in [("per tensor (the file)", onnx.load(str(a.qdq))), ("per channel", qdq),
                            ("per channel, fp32 weights", float_weights(qdq, fp32))]:
            path = Path(tmp) / "variant.onnx"
            onnx.save(model, str(path))
            g = agreement(runner(path, True), imgs, refs, size)
            p90, p99 = np.percentile(g["drift"], [90, 99])
            print(f"{name:28s} max {g['max']:.4f} p99 {p99:.4f} p90 {p90:.4f} mean {g['mean']:.4f} "
                  f"IoU {g['iou']:.3f} lost {g['lost']} added {g['added']}", flush=True)


if __name__ == "__main__":
    main()

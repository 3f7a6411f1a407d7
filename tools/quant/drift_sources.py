#!/usr/bin/env python3
"""Where a QDQ model's confidence drift comes from: the agreement of peer_agreement.py for
variants of the QDQ file run on ONNX Runtime with its exact QDQ semantics.

  weights only   activation Quantize/Dequantize pairs bypassed (float activations)
  activations    weight DequantizeLinear replaced by the fp32 model's weights and biases
  -T             one activation tensor T left float, all else quantized (--each)
  --float TEXT   the activations whose name contains TEXT left float

Usage: drift_sources.py FP32.onnx QDQ.onnx IMAGES_DIR [--each] [--top K]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
from peer_agreement import EXTS, agreement, detections, runner  # noqa: E402


def activation_pairs(model):
    """(Quantize node, [Dequantize nodes]) for each quantized activation tensor."""
    inits = {i.name for i in model.graph.initializer}
    readers = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    pairs = []
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
            dqs = [r for r in readers.get(n.output[0], []) if r.op_type == "DequantizeLinear"]
            pairs.append((n, dqs))
    return pairs


def bypass(model, keep):
    """A copy with the activation pairs whose float input is in `keep` removed."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    rename, drop = {}, set()
    for q, dqs in activation_pairs(m):
        if q.input[0] in keep:
            drop.add(q.name)
            for dq in dqs:
                drop.add(dq.name)
                rename[dq.output[0]] = q.input[0]
    nodes = [n for n in m.graph.node if n.name not in drop]
    for n in nodes:
        for k, i in enumerate(n.input):
            if i in rename:
                n.input[k] = rename[i]
    for o in m.graph.output:
        if o.name in rename:
            raise SystemExit(f"output {o.name} is a quantized activation")
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def float_weights(model, fp32):
    """A copy whose convs read the fp32 model's weights and biases (matched by node name)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    src = {n.name: n for n in fp32.graph.node if n.op_type == "Conv"}
    f_init = {i.name: i for i in fp32.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type != "Conv" or n.name not in src:
            continue
        for k in range(1, len(n.input)):
            orig = f_init[src[n.name].input[k]]
            t = numpy_helper.from_array(numpy_helper.to_array(orig), n.name + f"_float{k}")
            m.graph.initializer.append(t)
            n.input[k] = t.name
    del producers
    return m


def score(model, imgs, refs, size, tmp):
    path = Path(tmp) / "variant.onnx"
    onnx.save(model, str(path))
    return agreement(runner(path, True), imgs, refs, size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32", type=Path)
    ap.add_argument("qdq", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--each", action="store_true", help="leave each activation float in turn")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--float", action="append", default=[], metavar="TEXT",
                    help="also score the file with the activations whose name contains TEXT (or any of "
                         "TEXT's comma-separated parts) float")
    a = ap.parse_args()
    ort.set_default_logger_severity(3)
    size = (a.imgsz, a.imgsz)
    files = sorted(p for p in a.images.iterdir() if p.suffix.lower() in EXTS)
    imgs = [cv2.imread(str(f)) for f in files]
    refs = [detections(runner(a.fp32, False), im, size, 0.25) for im in imgs]
    qdq, fp32 = onnx.load(str(a.qdq)), onnx.load(str(a.fp32))
    acts = [q.input[0] for q, _ in activation_pairs(qdq)]

    def show(name, g):
        worst = int(np.argmax(g["drift"]))
        img, cls, ref, got, iou = g["where"][worst]
        p90, p99 = np.percentile(g["drift"], [90, 99])
        print(f"{name:40s} max {g['max']:.4f} ({files[img].name} class {cls} {ref:.3f}->{got:.3f} IoU {iou:.2f}) "
              f"p99 {p99:.4f} p90 {p90:.4f} mean {g['mean']:.4f} "
              f"IoU {g['iou']:.3f} lost {g['lost']} added {g['added']}", flush=True)
        return g

    with tempfile.TemporaryDirectory() as tmp:
        base = show("all quantized", score(qdq, imgs, refs, size, tmp))
        show("weights only (activations float)", score(bypass(qdq, set(acts)), imgs, refs, size, tmp))
        show("activations only (fp32 weights)", score(float_weights(qdq, fp32), imgs, refs, size, tmp))
        for text in a.float:
            keep = {t for t in acts if any(part and part in t for part in text.split(","))}
            show(f"{len(keep)} tensors with '{text}' float", score(bypass(qdq, keep), imgs, refs, size, tmp))
        if not a.each:
            return
        rows = []
        for t in acts:
            g = score(bypass(qdq, {t}), imgs, refs, size, tmp)
            rows.append((g["max"], g["mean"], t))
        rows.sort()
        print(f"\nleaving one activation float ({len(acts)} tensors), best first; "
              f"all quantized: max {base['max']:.4f} mean {base['mean']:.4f}")
        for mx, mean, t in rows[: a.top]:
            print(f"  {t:56s} max {mx:.4f} mean {mean:.4f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The agreement `qdet val --reference` measures, for the peer engines' int8 models: each
model's detections against the fp32 model's (ONNX Runtime) on the same letterboxed images,
with Ultralytics' own NMS and box scaling. Boxes >= 0.5 of the fp32 model: worst and mean
confidence drift of the same-class partner of highest IoU, worst IoU, boxes lost (no
partner at IoU >= 0.5 with conf > 0.25) and added.

Usage: peer_agreement.py FP32.onnx IMAGES_DIR MODEL... (.onnx: ONNX Runtime, exact QDQ
semantics with --ort-exact; .xml: OpenVINO IR, e.g. from tools/quant/nncf_quantize.py)
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.utils import ops
from ultralytics.utils.metrics import box_iou
from ultralytics.utils.nms import non_max_suppression

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


def runner(path, exact):
    if path.suffix == ".xml":
        import openvino as ov

        c = ov.Core().compile_model(str(path), "CPU")
        return lambda x: c([x])[c.output(0)]
    so = ort.SessionOptions()
    if exact:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]


def detections(run, img, size, conf):
    lb = LetterBox(new_shape=size, auto=False, stride=32)(image=img)
    x = np.ascontiguousarray(lb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    d = non_max_suppression(torch.from_numpy(run(x)), conf, 0.7, max_det=300)[0]
    d[:, :4] = ops.scale_boxes(size, d[:, :4], img.shape[:2])
    return d


def agreement(run, imgs, refs, size):
    """Drift of the same-class partner of highest IoU for each reference box >= 0.5."""
    drift, ious, lost, added, n, where = [], [], 0, 0, 0, []
    for idx, (im, r) in enumerate(zip(imgs, refs)):
        low = detections(run, im, size, 0.001)
        det = low[low[:, 4] > 0.25]
        for box in r[r[:, 4] >= 0.5]:
            n += 1
            same = low[low[:, 5] == box[5]]
            if len(same) == 0:
                drift.append(float(box[4]))
                where.append((idx, int(box[5]), float(box[4]), 0.0, 0.0))
                lost += 1
                continue
            iou = box_iou(box[None, :4], same[:, :4])[0]
            k = int(iou.argmax())
            drift.append(abs(float(same[k, 4] - box[4])))
            where.append((idx, int(box[5]), float(box[4]), float(same[k, 4]), float(iou[k])))
            hits = det[det[:, 5] == box[5]]
            if len(hits) == 0 or box_iou(box[None, :4], hits[:, :4]).max() < 0.5:
                lost += 1
            else:
                ious.append(float(iou[k]))
        for box in det[det[:, 4] >= 0.5]:
            same = r[r[:, 5] == box[5]]
            if len(same) == 0 or box_iou(box[None, :4], same[:, :4]).max() < 0.5:
                added += 1
    return {"boxes": n, "max": max(drift), "mean": float(np.mean(drift)), "drift": drift,
            "iou": min(ious, default=0.0), "lost": lost, "added": added, "where": where}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--ort-exact", action="store_true")
    a = ap.parse_args()
    size = (a.imgsz, a.imgsz)
    files = sorted(p for p in a.images.iterdir() if p.suffix.lower() in EXTS)
    imgs = [cv2.imread(str(f)) for f in files]
    ref_run = runner(a.fp32, False)
    refs = [detections(ref_run, im, size, 0.25) for im in imgs]
    for m in a.models:
        g = agreement(runner(m, a.ort_exact), imgs, refs, size)
        print(f"{m.name}: {g['boxes']} boxes >= 0.5, drift max {g['max']:.4f} mean {g['mean']:.4f}, "
              f"worst IoU {g['iou']:.3f}, lost {g['lost']}, added {g['added']}")

if __name__ == "__main__":
    main()

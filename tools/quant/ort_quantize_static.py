#!/usr/bin/env python3
"""The peer baseline of qdet calibrate: ONNX Runtime's quantize_static on the same images.

Usage: ort_quantize_static.py MODEL.onnx CALIB_DIR OUT.onnx [--method minmax|entropy|percentile]
QDQ format, per-channel int8 weights, uint8 activations, Conv only (ORT's usual recipe for
YOLO), calibrated on every image of CALIB_DIR letterboxed exactly as qdet detect does
(Ultralytics' LetterBox, auto=False, to the model's fixed input size).
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from ultralytics.data.augment import LetterBox

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class Reader(CalibrationDataReader):
    def __init__(self, files, name, size):
        self.files, self.name, self.size = list(files), name, size

    def get_next(self):
        if not self.files:
            return None
        img = cv2.imread(str(self.files.pop(0)))
        lb = LetterBox(new_shape=self.size, auto=False, stride=32)(image=img)
        x = lb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        return {self.name: np.ascontiguousarray(x)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("calib", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    a = ap.parse_args()
    m = onnx.load(a.model)
    inp = m.graph.input[0]
    size = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim[2:])
    files = sorted(p for p in a.calib.rglob("*") if p.suffix.lower() in EXTS)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[a.method]
    quantize_static(str(a.model), str(a.out), Reader(files, inp.name, size), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"], per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=method)
    print(f"{len(files)} images, {a.method} -> {a.out}")


if __name__ == "__main__":
    main()

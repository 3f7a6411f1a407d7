#!/usr/bin/env python3
"""The OpenVINO peer baseline of qdet calibrate: NNCF post-training quantization, the recipe
Ultralytics' own OpenVINO int8 export uses (ultralytics/utils/export/openvino.py).

Usage: nncf_quantize.py MODEL.onnx CALIB_DIR OUT.xml [--imgsz 640]
The ONNX model is converted to OpenVINO (ov.convert_model, input made static: --imgsz only
matters for a dynamic model), then nncf.quantize(preset=MIXED, model_type unset, subset_size =
every image of CALIB_DIR letterboxed exactly as qdet detect does: Ultralytics' LetterBox,
auto=False). The detect head's decode stays float, as in Ultralytics' export: ignored are the
ops of the last module (the scope of the last Convolution, `/model.N/` in an Ultralytics
export) that are not inside one of its conv branches, i.e. its direct ops (Reshape, Concat,
Split, Sigmoid, dist2bbox's Sub/Add/Div/Mul, an end-to-end head's TopK/GatherElements/...)
and its `dfl/` submodule. Its cv2/cv3 (one2one_*) branch convs are quantized.
Writes OUT.xml/.bin and prints one summary line.
"""
import argparse
import logging
from pathlib import Path

import cv2
import nncf
import numpy as np
import openvino as ov
from ultralytics.data.augment import LetterBox

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SKIP_TYPES = {"Constant", "Parameter", "Result"}


def head_decode_ops(model):
    """Friendly names of the detect head's non-conv ops (see the module docstring); [] when
    the names carry no module scope (not an Ultralytics export)."""
    ops = model.get_ordered_ops()
    convs = [op.get_friendly_name() for op in ops if op.get_type_name() == "Convolution"]
    parts = convs[-1].split("/") if convs else []
    if len(parts) < 3 or parts[0] != "":
        return []
    scope = f"/{parts[1]}/"
    names = []
    for op in ops:
        name = op.get_friendly_name()
        rest = name[len(scope):]
        if op.get_type_name() not in SKIP_TYPES and name.startswith(scope) and ("/" not in rest or rest.startswith("dfl/")):
            names.append(name)
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("calib", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--imgsz", type=int, default=640, help="input size of a dynamic model")
    a = ap.parse_args()
    nncf.set_log_level(logging.ERROR)
    model = ov.convert_model(str(a.model))
    shape = model.input(0).get_partial_shape()
    if shape.is_dynamic:
        model.reshape({model.input(0): [1, 3, a.imgsz, a.imgsz]})
    size = tuple(model.input(0).get_shape()[2:])
    files = sorted(p for p in a.calib.rglob("*") if p.suffix.lower() in EXTS)
    if not files:
        raise SystemExit(f"no images in {a.calib}")

    def tensor(f):
        lb = LetterBox(new_shape=size, auto=False, stride=32)(image=cv2.imread(str(f)))
        return np.ascontiguousarray(lb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)

    ignored = head_decode_ops(model)
    q = nncf.quantize(model, nncf.Dataset(files, tensor), preset=nncf.QuantizationPreset.MIXED,
                      subset_size=len(files), ignored_scope=nncf.IgnoredScope(names=ignored) if ignored else None)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(a.out), compress_to_fp16=False)  # as Ultralytics saves int8
    fq = sum(op.get_type_name() == "FakeQuantize" for op in q.get_ordered_ops())
    print(f"{len(files)} images, {len(ignored)} head decode ops ignored, {fq} FakeQuantize -> {a.out}")


if __name__ == "__main__":
    main()

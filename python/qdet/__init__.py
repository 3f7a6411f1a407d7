"""qdet: Ultralytics YOLO detection exports on the CPU, fp32 or exact int8.

``Detector`` runs in-process (decoding and inference release the GIL, so threads scale over
cores); ``calibrate`` and ``val`` run the bundled ``qdet`` binary and return what its
``--json`` / ``--report`` print, the same numbers as the commands.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Optional, Sequence, Tuple, Union

from ._binary import binary
from ._qdet import Detections, QdetError, set_threads
from ._qdet import Detector as _Detector

__all__ = ["Detector", "Detections", "QdetError", "calibrate", "val", "binary", "set_threads"]

# A path, encoded bytes, a PIL image, or an HxWx3 uint8 numpy array.
Image = Any


def _rows(d: Detections) -> Iterator[Tuple[float, float, float, float, float, int, str]]:
    for i in range(len(d)):
        yield d.row(i)


Detections.__iter__ = _rows  # type: ignore[attr-defined]


class Detector:
    """A model and its detection options, as ``qdet detect``'s flags.

    ``det(image)`` takes a path, encoded bytes, a PIL image, or an ``HxWx3`` uint8 numpy array
    (RGB; ``bgr=True`` for OpenCV frames) and returns :class:`Detections` in the image's
    pixels: the boxes ``qdet detect`` finds in the same image.
    """

    def __init__(self, model: Union[str, os.PathLike], conf: float = 0.25, iou: float = 0.7,
                 imgsz: Optional[Union[int, Tuple[int, int]]] = None, classes: Optional[Sequence[int]] = None,
                 max_det: int = 300, agnostic: bool = False, threads: Optional[int] = None):
        if threads is not None:
            set_threads(threads)
        size = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
        self._det = _Detector(os.fspath(model), conf, iou, size, list(classes) if classes is not None else None,
                              max_det, agnostic)

    @property
    def names(self) -> list:
        return self._det.names

    @property
    def imgsz(self) -> Tuple[int, int]:
        return self._det.imgsz

    def __call__(self, image: Image, bgr: bool = False) -> Detections:
        import numpy as np  # here, so that the `qdet` command starts without it

        if isinstance(image, (str, os.PathLike)):
            return self._det.detect_path(os.fspath(image))
        if isinstance(image, (bytes, bytearray, memoryview)):
            return self._det.detect_bytes(bytes(image))
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                raise QdetError(f"expected a uint8 array, got {image.dtype}")
            if image.ndim != 3 or image.shape[2] != 3:
                raise QdetError(f"expected an HxWx3 array (RGB, or BGR with bgr=True), got shape {image.shape}")
            return self._det.detect_array(image, bgr)
        if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
            return self._det.detect_array(np.asarray(image.convert("RGB")), False)
        raise QdetError(f"cannot detect in a {type(image).__name__}: give a path, bytes, a PIL image or an array")

    def batch(self, images: Iterable[Image], bgr: bool = False, workers: Optional[int] = None) -> Iterator[Detections]:
        """Detections for each image in order, decoding and inferring on ``workers`` threads."""
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            yield from pool.map(lambda im: self(im, bgr), images)


def _run(args: Sequence[str]) -> subprocess.CompletedProcess:
    done = subprocess.run([binary(), *args], capture_output=True, text=True)
    if done.returncode == 1:
        raise QdetError(done.stderr.strip() or f"qdet {args[0]} failed")
    return done


def calibrate(model: Union[str, os.PathLike], images: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
              out: Union[str, os.PathLike], **options: Any) -> dict:
    """``qdet calibrate``: writes the int8 QDQ model to ``out`` and returns its report.

    ``options`` are the command's flags with underscores (``method="mse"``, ``num=64``,
    ``weight_rounding="gptq"``, ``overwrite=True``); ``True`` passes a bare flag.
    """
    paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        args = ["calibrate", "--model", os.fspath(model), "--out", os.fspath(out), "--report", report]
        for p in paths:
            args += ["--images", os.fspath(p)]
        _run(args + _flags(options))
        with open(report) as f:
            return json.load(f)


def val(model: Union[str, os.PathLike], data: Optional[Union[str, os.PathLike]] = None, **options: Any) -> dict:
    """``qdet val --json``: mAP on a dataset yaml (``data``), or agreement with a reference
    model (``reference=..., images=...``); the dict the command prints."""
    args = ["val", "--model", os.fspath(model), "--json"]
    if data is not None:
        args += ["--data", os.fspath(data)]
    return json.loads(_run(args + _flags(options)).stdout)


def _flags(options: dict) -> list:
    out = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not False and value is not None:
            out += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return out

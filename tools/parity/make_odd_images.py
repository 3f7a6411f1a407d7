#!/usr/bin/env python3
"""Odd inputs for the parity tests, derived deterministically from fixture val images.

Writes OUT_DIR/{gray.jpg, rgba.png, wide.jpg, tiny_37x23.png, large_4000x3000.jpg,
exif_rot90.jpg, gray16.png, palette.png}. Each exercises one decoding or letterbox path
that Ultralytics (OpenCV imdecode, IMREAD_COLOR) handles in its own way.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main():
    val_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    src = [Image.open(val_dir / f"val_{i:04d}.jpg").convert("RGB") for i in range(6)]
    src[0].convert("L").save(out / "gray.jpg", quality=90)
    rgba = src[1].convert("RGBA")
    a = np.array(rgba)
    a[..., 3] = np.linspace(40, 255, a.shape[1], dtype=np.uint8)[None, :]  # alpha that must be ignored, not blended
    Image.fromarray(a, "RGBA").save(out / "rgba.png")
    w, h = src[2].size
    src[2].resize((w * 2, h // 2 + 1), Image.BILINEAR).save(out / "wide.jpg", quality=92)
    src[3].resize((37, 23), Image.BILINEAR).save(out / "tiny_37x23.png")
    src[4].resize((4000, 3000), Image.BICUBIC).save(out / "large_4000x3000.jpg", quality=70)
    # Stored rotated; EXIF orientation 6 (rotate 90 CW to view) brings it upright again.
    exif = Image.Exif()
    exif[0x0112] = 6
    src[5].transpose(Image.ROTATE_90).save(out / "exif_rot90.jpg", quality=92, exif=exif)
    g16 = (np.array(src[0].convert("L"), dtype=np.uint16) * 257 + np.arange(src[0].size[0], dtype=np.uint16)[None, :] % 200)
    Image.fromarray(g16.astype(np.uint16)).save(out / "gray16.png")
    src[1].quantize(64, method=Image.Quantize.MEDIANCUT).save(out / "palette.png")


if __name__ == "__main__":
    main()

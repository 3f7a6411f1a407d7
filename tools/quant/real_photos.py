#!/usr/bin/env python3
"""Real photos for judging calibration: the 5 photos this machine has (Ultralytics' bus.jpg and
zidane.jpg, labelme's 3 Pascal VOC photos), with --extra the photos that packages installable
here ship (matplotlib's grace_hopper.jpg, scikit-learn's china.jpg and flower.jpg,
scikit-image's astronaut, chelsea, coffee, motorcycle_left, rocket and camera), and seeded
variants of them as a user's camera would give: crops, rescales, mirror images, brightness,
contrast and JPEG quality.

Usage: real_photos.py OUT_DIR [--calib 32] [--judge 12] [--extra] [--hold-out NAME,...]
                      [--voc ../shared/labelme-examples/voc/JPEGImages]
Writes OUT_DIR/calib (variants to calibrate on) and OUT_DIR/judge (the originals and other
variants, none of them in calib) to judge the int8 model against fp32 on images it was not
calibrated on. --hold-out keeps whole photos out of calib: their originals and variants are
judged only, so the judge set has scenes calibration never saw. Deterministic: the same
inputs give the same files.
"""
import argparse
import io
import random
from pathlib import Path

import ultralytics
from PIL import Image, ImageEnhance, ImageOps


def variant(img, rng):
    w, h = img.size
    s = rng.uniform(0.55, 1.0)
    cw, ch = int(w * s), int(h * rng.uniform(max(0.55, s - 0.2), min(1.0, s + 0.2)))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    z = rng.uniform(0.6, 1.4)
    out = out.resize((max(32, int(cw * z)), max(32, int(ch * z))), Image.BILINEAR)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.3))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.3))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(60, 95))
    return buf.getvalue()


def extra_photos():
    """The real photos installed packages ship, by name (missing packages are skipped)."""
    import importlib.util

    found = []
    for pkg, rel, names in (
        ("matplotlib", "mpl-data/sample_data", ["grace_hopper.jpg"]),
        ("sklearn", "datasets/images", ["china.jpg", "flower.jpg"]),
        ("skimage", "data", ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "camera.png"]),
    ):
        spec = importlib.util.find_spec(pkg)
        if spec is None or spec.origin is None:
            print(f"{pkg} is not installed: its photos are skipped")
            continue
        root = Path(spec.origin).parent / rel
        found += [root / n for n in names if (root / n).exists()]
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--judge", type=int, default=12)
    ap.add_argument("--voc", type=Path, default=Path("../shared/labelme-examples/voc/JPEGImages"))
    ap.add_argument("--extra", action="store_true", help="also the photos installed packages ship")
    ap.add_argument("--hold-out", default="", help="photos (by name) whose variants are judged only")
    a = ap.parse_args()
    assets = Path(ultralytics.__file__).parent / "assets"
    photos = [assets / "bus.jpg", assets / "zidane.jpg"] + sorted(a.voc.glob("*.jpg"))
    if a.extra:
        photos += extra_photos()
    images = [(p.stem, Image.open(p).convert("RGB")) for p in photos]
    held = set(filter(None, a.hold_out.split(",")))
    unknown = held - {n for n, _ in images}
    if unknown:
        raise SystemExit(f"--hold-out names no photo here: {sorted(unknown)}")
    calib, judge = a.out / "calib", a.out / "judge"
    calib.mkdir(parents=True, exist_ok=True)
    judge.mkdir(parents=True, exist_ok=True)
    for name, img in images:
        img.save(judge / f"{name}.jpg", quality=95)
    seen = [(n, img) for n, img in images if n not in held]
    for split, n, seed, pool in (("calib", a.calib, 1, seen), ("judge", a.judge, 2, images)):
        rng = random.Random(seed)
        for i in range(n):
            name, img = pool[i % len(pool)]
            (a.out / split / f"{name}-v{i:02d}.jpg").write_bytes(variant(img, rng))
    print(f"{len(photos)} photos ({len(held)} held out of calibration): {a.calib} calibration variants in {calib}, "
          f"{len(photos) + a.judge} judge images in {judge}")


if __name__ == "__main__":
    main()

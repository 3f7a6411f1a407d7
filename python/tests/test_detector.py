"""The module against the `qdet` command of the same wheel, on the bundled fixture."""
import io
import json
import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

import qdet


def same(a, b):
    assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.conf, b.conf) and np.array_equal(a.cls, b.cls)


def test_labelme_and_yolo_text_are_what_detect_writes(det, model, val_images, tmp_path):
    images = val_images[:6]
    subprocess.run(["qdet", "detect", "--model", model, "--out", str(tmp_path), "--save-txt",
                    *map(str, images)], check=True, capture_output=True)
    for image in images:
        found = det(image)
        written = (tmp_path / (image.stem + ".json")).read_text()
        assert found.to_labelme(json.loads(written)["imagePath"]) == written
        assert found.to_yolo() == (tmp_path / "labels" / (image.stem + ".txt")).read_text()
        assert len(found) > 0 and found.xyxy.shape == (len(found), 4) and found.xyxy.dtype == np.float32
        assert found.cls.dtype == np.int64 and found.names == det.names
        x1, y1, x2, y2, conf, cls, name = next(iter(found))
        assert (x1, conf, name) == (float(found.xyxy[0, 0]), float(found.conf[0]), det.names[cls])


def test_paths_bytes_pil_and_arrays_give_the_same_detections(det, val_images, tmp_path):
    # A PNG: lossless, so PIL's pixels are qdet's own decoder's.
    png = tmp_path / "a.png"
    Image.open(val_images[3]).save(png)
    by_path = det(png)
    assert len(by_path) > 0
    same(det(str(png)), by_path)
    same(det(png.read_bytes()), by_path)
    same(det(Image.open(png)), by_path)
    rgb = np.asarray(Image.open(png).convert("RGB"))
    same(det(rgb), by_path)
    # OpenCV frames are BGR: reversed channels with bgr=True are the same image.
    same(det(np.ascontiguousarray(rgb[..., ::-1]), bgr=True), by_path)
    # A strided view is read as the image it shows.
    same(det(rgb[..., ::-1][..., ::-1]), by_path)
    # And without the flag the channels are taken as they are: the scores change.
    assert not np.array_equal(det(np.ascontiguousarray(rgb[..., ::-1])).conf, by_path.conf)


def test_batch_keeps_the_order(det, val_images):
    want = [det(p) for p in val_images[:8]]
    for got, w in zip(det.batch(val_images[:8], workers=2), want):
        same(got, w)


def test_bad_inputs_raise_clear_errors(det, tmp_path):
    with pytest.raises(qdet.QdetError, match="uint8"):
        det(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(qdet.QdetError, match=r"HxWx3.*\(32, 32, 4\)"):
        det(np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(qdet.QdetError, match="0 x 5 pixels is empty"):
        det(np.zeros((5, 0, 3), np.uint8))
    with pytest.raises(qdet.QdetError, match="cannot detect in a list"):
        det([1, 2, 3])
    with pytest.raises(qdet.QdetError, match="not a supported image format"):
        det(b"hello")
    text = tmp_path / "model.onnx"
    text.write_text("not a model\n")
    with pytest.raises(qdet.QdetError, match="model.onnx"):
        qdet.Detector(text)
    with pytest.raises(ValueError, match="conf"):
        qdet.Detector(text, conf=2)


def test_inference_releases_the_gil(det, val_images):
    # A thread woken just before the call gets to run while the call is still inside Rust
    # only if the call released the GIL; holding it, the thread would run only after.
    inside, seen, go = [False], [], threading.Event()

    def watcher():
        go.wait()
        seen.append(inside[0])

    t = threading.Thread(target=watcher)
    t.start()
    big = np.asarray(Image.open(val_images[0]).convert("RGB").resize((3000, 2000)))
    inside[0] = True
    go.set()
    det(big)
    inside[0] = False
    t.join()
    assert seen == [True]


def test_options_reach_the_detector(model, val_images):
    everything = qdet.Detector(model, conf=0.01)(val_images[0])
    one = qdet.Detector(model, conf=0.01, max_det=1, classes=[int(everything.cls[0])])(val_images[0])
    assert len(one) == 1 and one.cls[0] == everything.cls[0] and one.conf[0] == everything.conf[0]
    assert qdet.Detector(model).imgsz == (320, 320)


def test_the_command_is_the_binary(model, val_images):
    version = subprocess.run(["qdet", "--version"], check=True, capture_output=True, text=True).stdout
    assert version.startswith("qdet ")
    done = subprocess.run(["qdet", "detect", "--model", model, "--no-json", str(val_images[0])],
                          capture_output=True, text=True)
    # The command's own words and status, through the console script.
    assert done.returncode == 0 and "nothing written (--no-json without --save-txt or --save-img)" in done.stderr
    assert subprocess.run(["qdet", "detect"], capture_output=True).returncode == 1  # a required flag missing


def test_val_and_calibrate_return_the_commands_numbers(model, int8_model, root, tmp_path):
    images = str(root / "datasets" / "shapes" / "images" / "val")
    got = qdet.val(int8_model, reference=model, images=images)
    cli = json.loads(subprocess.run(["qdet", "val", "--model", int8_model, "--reference", model, "--images", images,
                                     "--json"], check=True, capture_output=True, text=True).stdout)
    assert got["map50_95"] == cli["map50_95"] and got["drift"] == cli["drift"]
    out = tmp_path / "int8.onnx"
    report = qdet.calibrate(model, root / "calibration", out, num=4, analysis_images=0)
    assert out.is_file() and report["images"] == 4
    with pytest.raises(qdet.QdetError, match="--num 1000"):
        qdet.calibrate(model, root / "calibration", tmp_path / "x.onnx", num=1000)

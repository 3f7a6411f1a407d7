#!/usr/bin/env python3
"""All engines in one run (issues 4, 16 item 7, 17 items 3-4): qdet, ONNX Runtime and
OpenVINO, fp32 and int8, 1 and 2 threads, measured back to back on the same images
(inference only, batch 1, one image in flight, p50 of the timed runs after warm-up; each
cell's median over interleaved rounds), for one or several models.

Usage:
  engines.py --model FP32.onnx[:CALIB_DIR:IMAGES_DIR] [--model ...] [--calib DIR] [--images DIR]
             [--runs 15] [--rounds 3] [--isa native|avx2] [--throughput [--throughput-images 200]]
             [--qdet target/release/qdet] [--out target/engines]
  e.g. (from the repository root)
  engines.py --model ../shared/models/yolov8n-coco.onnx:build/real/calib:build/real/judge \\
             --model models/shapes-yolov8n.onnx --calib calibration --images datasets/shapes/images/val

A model given without `:CALIB_DIR:IMAGES_DIR` uses --calib and --images. Each model runs at
its own input size (a dynamic model at its metadata imgsz, else 640).

Engines (rows):
* qdet fp32 / qdet int8: `qdet bench --json` (its preprocessing excluded); the int8 model made
  by `qdet calibrate` (default settings) from CALIB_DIR.
* ORT fp32 / ORT int8: ONNX Runtime CPU EP, default graph optimizations; the int8 model from
  its quantize_static (QDQ, per-channel, Conv only: tools/quant/ort_quantize_static.py).
* OpenVINO default / f32 hint / int8: CPU plugin in latency mode (PERFORMANCE_HINT=LATENCY,
  NUM_STREAMS=1, INFERENCE_NUM_THREADS=threads). "default" is the plugin's default inference
  precision, bf16 on a CPU with AVX512_BF16 or AMX (the row says which it used); "f32 hint"
  sets INFERENCE_PRECISION_HINT=f32. The int8 model is NNCF's (tools/quant/nncf_quantize.py:
  nncf.quantize, preset MIXED, head decode kept float as in Ultralytics' int8 export), run
  with the default precision for its float ops.
ORT and OpenVINO time their own inference call on CALIB/IMAGES letterboxed as qdet does
(Ultralytics' LetterBox, auto=False), cycling through the images.

A quantizer or engine that fails on a model (e.g. an end-to-end [1, 300, 6] head) gets the
reason in its cells; the rest of the table is still measured.

--isa avx2 measures the path an AVX2-only CPU would take: OpenVINO with
ONEDNN_MAX_CPU_ISA=AVX2 (the script re-executes itself with it set, since oneDNN reads it
once) and f32 as its default precision (an AVX2 CPU has no bf16; the capped oneDNN cannot run
bf16 while the plugin would still pick it), qdet with QDET_CPU=avx2 (every qdet kernel, float
loop and transpose on AVX2 + FMA, no AVX-512 instruction; qdet sets tract's TRACT_CPU_ISA to
match for the few ops tract still runs; the int8 convs on the kernel the file's weights allow,
`maddubs` for the default pair-bounded weights); ONNX Runtime as is (its MLAS dispatch has no
such switch).

--throughput adds images/s at 2 threads: `qdet detect --json` over IMAGES_DIR (decode,
letterbox, inference and NMS, several images in flight; the folder repeated through symlinks
up to --throughput-images) against OpenVINO's throughput mode (PERFORMANCE_HINT=THROUGHPUT,
INFERENCE_NUM_THREADS=2, an AsyncInferQueue of its optimal number of requests) over the same
count of already letterboxed tensors (inference only, so the comparison favours OpenVINO).

Output: per model a markdown table (ms; the qdet int8 kernel and its integer convs, the
OpenVINO precision and conv primitives in the notes) and a ratio block against the targets,
per thread count: cell medians, the median of the per-round ratios (cells measured seconds
apart, so a slow spell hits both sides of most ratios) and the ratio of the fastest rounds.
Every sample goes to OUT/engines-ISA.json (per model, keys "ENGINE THREADS" and "ENGINE
images/s", with the notes and the failures); the int8 models to OUT/<model name>/.
"""
import argparse
import collections
import functools
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
from ultralytics.data.augment import LetterBox

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
TOOLS = Path(__file__).resolve().parent.parent
THREADS = (1, 2)
ENGINES = ("qdet fp32", "qdet int8", "ORT fp32", "ORT int8", "OpenVINO default", "OpenVINO f32 hint", "OpenVINO int8")
# (numerator, denominator, target): the first three are issues 16/17's, the last two issue 4's.
RATIOS = (("qdet int8", "OpenVINO int8", 0.85), ("qdet fp32", "ORT fp32", 0.9), ("qdet fp32", "OpenVINO f32 hint", 1.0),
          ("qdet int8", "ORT fp32", 0.55), ("qdet int8", "ORT int8", 0.75))
AVX2_QDET_ENV = {"QDET_CPU": "avx2"}
AVX2_OV_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


@dataclass
class Spec:
    model: Path
    calib: Path
    images: Path


@dataclass
class Setup:
    """What one run shares across models."""
    qdet: str
    runs: int
    isa: str
    out: Path
    qdet_env: dict = field(default_factory=dict)
    ov_precision: str | None = None  # None: the plugin's default


class Failed(Exception):
    """A cell that could not be measured; its message goes into the table."""


def short_error(e):
    """The last meaningful line of an exception or a failed subprocess's stderr."""
    if isinstance(e, subprocess.CalledProcessError):
        # text=True everywhere; a traceback's last unindented line is the exception
        lines = [l.strip() for l in (e.stderr or e.stdout or "").splitlines() if l.strip() and not l.startswith(" ")]
        msg = lines[-1] if lines else f"exit status {e.returncode}"
    else:
        msg = f"{type(e).__name__}: {e}".splitlines()[0]
    return msg[:160]


def parse_spec(text, calib, images):
    parts = text.split(":")
    if len(parts) == 3:
        return Spec(*map(Path, parts))
    if len(parts) != 1:
        raise SystemExit(f"--model {text}: give PATH or PATH:CALIB_DIR:IMAGES_DIR")
    if calib is None or images is None:
        raise SystemExit(f"--model {text}: no CALIB_DIR/IMAGES_DIR in it and no --calib/--images default")
    return Spec(Path(text), calib, images)


def image_files(folder):
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTS)


def input_size(model):
    """(H, W) the model runs at: its static input shape, else its metadata imgsz, else 640."""
    m = onnx.load(model, load_external_data=False)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[2:]]
    if all(dims):
        return tuple(dims)
    meta = {p.key: p.value for p in m.metadata_props}
    sz = [int(s) for s in re.findall(r"\d+", meta.get("imgsz", ""))] or [640]
    return (sz[0], sz[-1])


@functools.lru_cache
def count_convs(model):
    return sum(n.op_type == "Conv" for n in onnx.load(model, load_external_data=False).graph.node)


def letterboxed(folder, size):
    """The images of `folder` as qdet detect feeds them to the model: NCHW RGB float in [0, 1]."""
    out = []
    for f in image_files(folder):
        lb = LetterBox(new_shape=size, auto=False, stride=32)(image=cv2.imread(str(f)))
        out.append(np.ascontiguousarray(lb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0))
    return out


def timed_p50(infer, images, runs, warmup=3):
    """p50 in ms of `infer(x)` over `runs` calls after `warmup`, cycling through `images`."""
    times = []
    for i in range(warmup + runs):
        x = images[i % len(images)]
        t = time.perf_counter()
        infer(x)
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


# ---- qdet ----------------------------------------------------------------------------------

def qdet_run(setup, args):
    return subprocess.run([setup.qdet, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **setup.qdet_env}).stdout


def qdet_calibrate(setup, spec, out):
    qdet_run(setup, ["calibrate", "--model", str(spec.model), "--images", str(spec.calib), "--out", str(out),
                     "--analysis-images", "0", "--overwrite"])


def qdet_p50(setup, model, spec, threads, notes):
    r = json.loads(qdet_run(setup, ["bench", "--model", str(model), "--images", str(spec.images),
                                    "--threads", str(threads), "--runs", str(setup.runs), "--json"]))[0]
    if r.get("int8_kernel"):
        m = re.search(r"int8_conv (\d+)", r.get("graph_passes") or "")
        fused = r.get("int8_fused") or {}
        kernels = ", ".join(f"{n} on {k}" for k, n in (r.get("int8_kernels") or {}).items())
        notes["qdet int8"] = (f"{m.group(1) if m else '?'} of {count_convs(spec.model)} convs on the integer "
                              f"kernels ({kernels}; {fused.get('silu', 0)} with SiLU fused)")
    return r["inference"]["p50_ms"]


def qdet_images_per_s(setup, model, folder, threads):
    r = json.loads(qdet_run(setup, ["detect", "--model", str(model), str(folder), "--out", str(setup.out / "detect"),
                                    "--no-json", "--overwrite", "--threads", str(threads), "--json"]))
    return r["images_per_s"]


# ---- ONNX Runtime --------------------------------------------------------------------------

def ort_quantize(spec, out):
    subprocess.run([sys.executable, str(TOOLS / "quant/ort_quantize_static.py"), str(spec.model), str(spec.calib),
                    str(out)], check=True, capture_output=True, text=True)


def ort_p50(model, images, threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return timed_p50(lambda x: s.run(None, {name: x}), images, runs)


# ---- OpenVINO ------------------------------------------------------------------------------

def ov_quantize(spec, size, out):
    # Calibration is the same on every ISA (NNCF collects its statistics in f32), so it runs
    # without the oneDNN cap.
    env = {k: v for k, v in os.environ.items() if k not in AVX2_OV_ENV}
    subprocess.run([sys.executable, str(TOOLS / "quant/nncf_quantize.py"), str(spec.model), str(spec.calib),
                    str(out), "--imgsz", str(size[0])], check=True, capture_output=True, text=True, env=env)


def ov_compile(core, model, size, config):
    m = core.read_model(str(model))
    if m.input(0).get_partial_shape().is_dynamic:
        m.reshape({m.input(0): [1, 3, *size]})
    return core.compile_model(m, "CPU", config)


def ov_describe(compiled):
    """The precision the plugin runs at and its convolution primitives, e.g.
    'bf16; convs: brgconv_avx512_bf16 x39, brgconv_avx512_1x1_bf16 x25'."""
    prims = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            prims[info["primitiveType"].astype(str)] += 1
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    return f"{precision}; convs: " + ", ".join(f"{k} x{v}" for k, v in prims.most_common())


def ov_config(threads, precision, mode="LATENCY"):
    cfg = {"PERFORMANCE_HINT": mode, "INFERENCE_NUM_THREADS": threads}
    if mode == "LATENCY":
        cfg["NUM_STREAMS"] = 1
    if precision:
        cfg["INFERENCE_PRECISION_HINT"] = precision
    return cfg


def ov_p50(core, model, size, images, threads, runs, precision, notes, row):
    compiled = ov_compile(core, model, size, ov_config(threads, precision))
    notes[row] = ov_describe(compiled)
    req = compiled.create_infer_request()
    return timed_p50(lambda x: req.infer([x]), images, runs)


def ov_images_per_s(core, model, size, images, threads, count, precision):
    compiled = ov_compile(core, model, size, ov_config(threads, precision, "THROUGHPUT"))
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    for x in images[:len(queue)]:  # warm-up: every request once
        queue.start_async([x])
    queue.wait_all()
    t = time.perf_counter()
    for i in range(count):
        queue.start_async([images[i % len(images)]])
    queue.wait_all()
    return count / (time.perf_counter() - t)


# ---- one model -----------------------------------------------------------------------------

def prepare(setup, spec, size):
    """The int8 models, each {engine: path} or {engine: Failed}."""
    d = setup.out / spec.model.stem
    d.mkdir(parents=True, exist_ok=True)
    made = {}
    for engine, path, make in (("qdet int8", d / "qdet.int8.onnx", lambda p: qdet_calibrate(setup, spec, p)),
                               ("ORT int8", d / "ort.int8.onnx", lambda p: ort_quantize(spec, p)),
                               ("OpenVINO int8", d / "ov.int8.xml", lambda p: ov_quantize(spec, size, p))):
        t = time.perf_counter()
        try:
            make(path)
            made[engine] = path
            print(f"  {engine}: made {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - reported in the table
            made[engine] = Failed(f"quantization failed: {short_error(e)}")
            print(f"  {engine}: {made[engine]}", file=sys.stderr)
    return made


def int8_model(int8, engine):
    """The int8 model `prepare` made for `engine`, or its failure raised."""
    if isinstance(int8[engine], Failed):
        raise int8[engine]
    return int8[engine]


def latency_cells(setup, core, spec, size, images, int8, notes):
    """{engine: function(threads) -> p50 ms}."""
    prec, runs = setup.ov_precision, setup.runs

    def ov(model, precision, row):
        return lambda t: ov_p50(core, model(), size, images, t, runs, precision, notes, row)

    return {
        "qdet fp32": lambda t: qdet_p50(setup, spec.model, spec, t, notes),
        "qdet int8": lambda t: qdet_p50(setup, int8_model(int8, "qdet int8"), spec, t, notes),
        "ORT fp32": lambda t: ort_p50(spec.model, images, t, runs),
        "ORT int8": lambda t: ort_p50(int8_model(int8, "ORT int8"), images, t, runs),
        "OpenVINO default": ov(lambda: spec.model, prec, "OpenVINO default"),
        "OpenVINO f32 hint": ov(lambda: spec.model, "f32", "OpenVINO f32 hint"),
        "OpenVINO int8": ov(lambda: int8_model(int8, "OpenVINO int8"), prec, "OpenVINO int8"),
    }


def throughput_cells(setup, core, spec, size, images, int8, count):
    """{engine: function() -> images/s} at 2 threads."""
    folder = repeated_folder(spec.images, setup.out / spec.model.stem / "throughput-images", count)
    prec = setup.ov_precision
    return {
        "qdet fp32": lambda: qdet_images_per_s(setup, spec.model, folder, 2),
        "qdet int8": lambda: qdet_images_per_s(setup, int8_model(int8, "qdet int8"), folder, 2),
        "OpenVINO default": lambda: ov_images_per_s(core, spec.model, size, images, 2, count, prec),
        "OpenVINO int8": lambda: ov_images_per_s(core, int8_model(int8, "OpenVINO int8"), size, images, 2, count, prec),
    }


def repeated_folder(src, dst, count):
    """A folder of `count` symlinks cycling through the images of `src` (qdet detect takes a
    folder once)."""
    files = image_files(src)
    dst.mkdir(parents=True, exist_ok=True)
    for old in dst.iterdir():
        old.unlink()
    for i in range(count):
        f = files[i % len(files)].resolve()
        (dst / f"r{i // len(files):03d}_{f.name}").symlink_to(f)
    return dst


def measure(cell, samples, errors, key):
    """One sample of one cell; a failure is kept (once) instead of a sample."""
    if key in errors:
        return
    try:
        samples.setdefault(key, []).append(cell())
    except Exception as e:  # noqa: BLE001 - reported in the table
        errors[key] = str(e) if isinstance(e, Failed) else f"failed: {short_error(e)}"


def run_model(setup, core, spec, rounds, throughput):
    size = input_size(spec.model)
    images = letterboxed(spec.images, size)
    if not images:
        raise Failed(f"no images in {spec.images}")
    print(f"{spec.model}: preparing the int8 models", file=sys.stderr)
    int8 = prepare(setup, spec, size)
    notes, samples, errors = {}, {}, {}
    latency = latency_cells(setup, core, spec, size, images, int8, notes)
    tput = throughput_cells(setup, core, spec, size, images, int8, throughput) if throughput else {}
    # Shared machines are noisy: every cell is measured once per round, the rounds interleaved.
    for r in range(rounds):
        print(f"{spec.model.name}: round {r + 1}/{rounds}", file=sys.stderr)
        for t in THREADS:
            for engine, cell in latency.items():
                measure(lambda: cell(t), samples, errors, (engine, t))
        for engine, cell in tput.items():
            measure(cell, samples, errors, (engine, "images/s"))
    return {"model": str(spec.model), "calib": str(spec.calib), "images": str(spec.images), "size": size,
            "n_images": len(images), "notes": notes, "samples": samples, "errors": errors}


# ---- report --------------------------------------------------------------------------------

def cell_text(res, key, unit="ms"):
    if key in res["errors"]:
        return res["errors"][key]
    v = res["samples"].get(key)
    return f"{statistics.median(v):.1f} {unit}".strip() if v else "-"


def print_report(res, setup, rounds):
    h, w = res["size"]
    print(f"\n### {Path(res['model']).name}, input {w}x{h}, {res['n_images']} images ({res['images']}), "
          f"calibrated on {res['calib']}; ISA mode: {setup.isa}")
    print(f"Median over {rounds} interleaved round(s) of the p50 of {setup.runs} runs, inference only, batch 1.\n")
    print("| engine | 1 thread | 2 threads | notes |")
    print("|---|---|---|---|")
    for e in ENGINES:
        label = e
        if e == "OpenVINO default" and e in res["notes"]:
            label = f"OpenVINO default ({res['notes'][e].split(';')[0]})"
        print(f"| {label} | {cell_text(res, (e, 1))} | {cell_text(res, (e, 2))} | {res['notes'].get(e, '')} |")
    s = res["samples"]
    print("\n| ratio | target | threads | of cell medians | median of per-round ratios | per round | fastest rounds |")
    print("|---|---|---|---|---|---|---|")
    for num, den, target in RATIOS:
        for t in THREADS:
            a, b = s.get((num, t)), s.get((den, t))
            if not a or not b:
                print(f"| {num} / {den} | <= {target} | {t} | - | - | - | - |")
                continue
            per_round = [x / y for x, y in zip(a, b)]
            med = statistics.median(per_round)
            print(f"| {num} / {den} | <= {target} | {t} | {statistics.median(a) / statistics.median(b):.2f} | "
                  f"{med:.2f} {'ok' if med <= target else 'MISS'} | {' '.join(f'{x:.2f}' for x in per_round)} | "
                  f"{min(a) / min(b):.2f} |")
    if any(k[1] == "images/s" for k in list(s) + list(res["errors"])):
        print("\nThroughput, 2 threads (qdet: `qdet detect` end to end incl. decode, letterbox and NMS; "
              "OpenVINO: THROUGHPUT hint, AsyncInferQueue, inference only):\n")
        print("| engine | images/s |")
        print("|---|---|")
        for e in ("qdet fp32", "qdet int8", "OpenVINO default", "OpenVINO int8"):
            label = f"{e} ({res['notes'][e].split(';')[0]})" if e == "OpenVINO default" and e in res["notes"] else e
            print(f"| {label} | {cell_text(res, (e, 'images/s'), '')} |")
        a, b = s.get(("qdet int8", "images/s")), s.get(("OpenVINO int8", "images/s"))
        if a and b:
            print(f"\nqdet int8 / OpenVINO int8 throughput: {statistics.median(a) / statistics.median(b):.2f}")


def to_json(res):
    key = lambda k: f"{k[0]} {k[1]}"  # noqa: E731
    return {**res, "samples": {key(k): v for k, v in res["samples"].items()},
            "errors": {key(k): v for k, v in res["errors"].items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="FP32.onnx[:CALIB_DIR:IMAGES_DIR]")
    ap.add_argument("--calib", type=Path, help="CALIB_DIR of a --model given without one")
    ap.add_argument("--images", type=Path, help="IMAGES_DIR of a --model given without one")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--isa", choices=["native", "avx2"], default="native")
    ap.add_argument("--throughput", action="store_true", help="also images/s at 2 threads: qdet detect vs OpenVINO")
    ap.add_argument("--throughput-images", type=int, default=200)
    ap.add_argument("--qdet", default="target/release/qdet")
    ap.add_argument("--out", type=Path, default=Path("target/engines"))
    a = ap.parse_args()
    specs = [parse_spec(m, a.calib, a.images) for m in a.model]
    setup = Setup(qdet=a.qdet, runs=a.runs, isa=a.isa, out=a.out)
    if a.isa == "avx2":
        if any(os.environ.get(k) != v for k, v in AVX2_OV_ENV.items()):
            # oneDNN reads its ISA cap once, when OpenVINO's CPU plugin loads: start again with it set.
            os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_OV_ENV})
        setup.qdet_env, setup.ov_precision = AVX2_QDET_ENV, "f32"
    logging.getLogger("ultralytics").setLevel(logging.WARNING)
    core = ov.Core()
    print(f"ISA mode: {a.isa}; qdet env: {setup.qdet_env or 'none'}; OpenVINO {ov.get_version()} "
          f"(env {AVX2_OV_ENV if a.isa == 'avx2' else 'none'}), CPU capabilities "
          f"{core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}, default precision "
          f"{core.get_property('CPU', 'INFERENCE_PRECISION_HINT').to_string()}"
          f"{', used: f32 (an AVX2 CPU has no bf16)' if a.isa == 'avx2' else ''}; "
          f"ONNX Runtime {ort.__version__} as is")
    a.out.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in specs:
        try:
            results.append(run_model(setup, core, spec, a.rounds, a.throughput_images if a.throughput else 0))
        except Exception as e:  # noqa: BLE001 - one model's failure (no images, unreadable file) spares the others
            print(f"\n### {spec.model.name}: not measured: {short_error(e)}")
            continue
        print_report(results[-1], setup, a.rounds)
        sys.stdout.flush()
    out = a.out / f"engines-{a.isa}.json"
    out.write_text(json.dumps({"isa": a.isa, "runs": a.runs, "rounds": a.rounds, "qdet_env": setup.qdet_env,
                               "openvino": ov.get_version(), "onnxruntime": ort.__version__,
                               "models": [to_json(r) for r in results]}, indent=1))
    print(f"\nsamples: {out}")


if __name__ == "__main__":
    main()

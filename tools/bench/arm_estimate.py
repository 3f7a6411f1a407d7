#!/usr/bin/env python3
"""Paper estimate of qdet's int8 convolution time on an Arm core, from a model's per-layer
multiply-add counts and each NEON kernel's peak multiply-adds per cycle.

qemu runs ARM code exactly but cannot time it, so this is arithmetic, not a measurement:
    python tools/bench/arm_estimate.py ../shared/models/yolov8n-coco.onnx [--ghz 2.4] [--cores 4]

Peak multiply-adds per cycle per kernel on a Cortex-A76 (two 128-bit ASIMD pipes V0/V1;
Arm's Cortex-A76 Software Optimization Guide: SDOT/UDOT 2 per cycle on V0/V1, SMULL/SMLAL
1 per cycle on V0 only, SADALP 1 per cycle on V1; the Cortex-A720 guide lists the same
throughputs, and its SUDOT/USDOT at 2 per cycle):
  dotprod (SDOT):  per 4 k-groups of a 5-pixel tile, 80 SDOT of 16 MACs + 5 EOR on the same
                   pipes: 1280 MACs / 42.5 cycles = 30.1 MACs/cycle (loads on the load pipes).
  i8mm (SUDOT):    the same loop without the EOR: 1280 / 40 = 32 MACs/cycle. (An A76 has no
                   i8mm; this is for an A710/A720/Neoverse N2 at the same clock.)
  neon (SMULL):    per 2 k-groups of a pixel, 16 SMULL/SMLAL (8 MACs each) on V0 and 8 SADALP
                   on V1: 128 MACs / 16 cycles = 8 MACs/cycle.
Each layer's work is counted as the kernels do it: input channels rounded up to groups of 4,
output channels to blocks of 16.

Left out: memory bandwidth (the deep layers' weights and the early layers' images exceed the
A76's 512 KB L2), the epilogue (scale, bias, SiLU, requantization: about a quarter of the
conv time on x86), the ops outside the convs (about 3 ms of 32 on x86 at 1 thread), and the
threads' imperfect scaling (x86 measured 1.6x from the second thread).
"""
import argparse
import math

import onnx
from onnx import shape_inference

PEAK = {"dotprod (SDOT)": 1280 / 42.5, "i8mm (SUDOT)": 32.0, "neon (SMULL/SADALP)": 8.0}


def conv_layers(path):
    m = shape_inference.infer_shapes(onnx.load(path))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in list(m.graph.value_info) + list(m.graph.output)}
    inits = {i.name: i for i in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type != "Conv" or node.input[1] not in inits:
            continue
        oc, ic, kh, kw = inits[node.input[1]].dims
        oh, ow = shapes[node.output[0]][2:4]
        yield node.name, oc, ic, kh, kw, oh, ow


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--ghz", type=float, default=2.4, help="core clock (Raspberry Pi 5: 2.4)")
    ap.add_argument("--cores", type=int, default=4)
    a = ap.parse_args()
    macs = done = 0
    for name, oc, ic, kh, kw, oh, ow in conv_layers(a.model):
        if "dfl" in name:  # the DFL conv stays float
            continue
        macs += oc * ic * kh * kw * oh * ow
        done += math.ceil(oc / 16) * 16 * math.ceil(ic / 4) * 4 * kh * kw * oh * ow
    print(f"{a.model}: {macs / 1e9:.3f} GMACs in the quantized convs, {done / 1e9:.3f} G as the kernels count them")
    print(f"| kernel | MACs/cycle | 1 core @ {a.ghz} GHz | {a.cores} cores |")
    print("|---|---|---|---|")
    for k, per_cycle in PEAK.items():
        ms = done / (per_cycle * a.ghz * 1e9) * 1e3
        print(f"| {k} | {per_cycle:.1f} | {ms:.1f} ms | {ms / a.cores:.1f} ms |")


if __name__ == "__main__":
    main()

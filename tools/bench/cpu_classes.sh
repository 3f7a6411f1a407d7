#!/usr/bin/env bash
# What each class of CPU gets from the same files, on one machine: `qdet bench` under each
# QDET_CPU cap this CPU can stand in for (native, avxvnni, avx512, avx2, sse4 on x86_64), with
# no instruction of a wider ISA run, for an fp32 model and its int8 files. Prints a markdown
# table of inference p50 (ms, 1 thread) per class and model, with the int8 kernels and the
# int8 / fp32 ratio of each int8 file, each cell the median of ROUNDS rounds, classes and
# models interleaved. The speed of a class measured here is this CPU's core running that
# class's code, not that class's own CPU.
# Usage: tools/bench/cpu_classes.sh IMAGES FP32 INT8 [INT8...]   (env: ROUNDS=3, RUNS=15,
#        THREADS=1, CLASSES="native avxvnni avx512 avx2 sse4", QDET=target/release/qdet)
set -euo pipefail
images=$1
shift
QDET=${QDET:-target/release/qdet}
python3 - "$QDET" "$images" "${ROUNDS:-3}" "${RUNS:-15}" "${THREADS:-1}" "${CLASSES:-native avxvnni avx512 avx2 sse4}" "$@" <<'PY'
import json, os, statistics, subprocess, sys
qdet, images, rounds, runs, threads, classes, *models = sys.argv[1:]
classes = classes.split()
p50 = {}
kernels = {}
for _ in range(int(rounds)):
    for c in classes:
        for m in models:
            out = subprocess.run([qdet, "bench", "--model", m, "--images", images, "--threads", threads,
                                  "--runs", runs, "--warmup", "2", "--json"], check=True, capture_output=True,
                                 text=True, env={**os.environ, "QDET_CPU": c}).stdout
            r = json.loads(out)[0]
            p50.setdefault((c, m), []).append(r["inference"]["p50_ms"])
            kernels[(c, m)] = ", ".join(f"{n} {k}" for k, n in (r.get("int8_kernels") or {}).items())
names = [os.path.basename(m) for m in models]
print(f"{threads} thread(s), inference p50 in ms, median of {rounds} rounds of {runs} runs")
print("| CPU class (`QDET_CPU`) | " + " | ".join(names) + " |")
print("|---" * (len(models) + 1) + "|")
for c in classes:
    base = statistics.median(p50[(c, models[0])])
    cells = [f"{base:.1f}"]
    for m in models[1:]:
        t = statistics.median(p50[(c, m)])
        cells.append(f"{t:.1f} ({t / base:.2f}x; {kernels[(c, m)] or 'float graph'})")
    print(f"| {c} | " + " | ".join(cells) + " |")
PY

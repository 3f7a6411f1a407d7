#!/usr/bin/env bash
# A/B timing of qdet builds on a noisy machine: each round runs `qdet bench` (inference p50
# of RUNS runs) once per binary, binaries interleaved, and prints per binary the min and the
# median of those p50s over the rounds. Save a build (cp target/release/qdet /tmp/qdet-a),
# change the code, build again, and compare.
# Usage: tools/bench/ab.sh ROUNDS MODEL IMAGES BIN [BIN...]   (env: THREADS=1, RUNS=8)
set -euo pipefail
rounds=$1 model=$2 images=$3
shift 3
declare -A p50s
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    p=$("$bin" bench --model "$model" --images "$images" --threads "${THREADS:-1}" --runs "${RUNS:-8}" --warmup 1 --json \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["inference"]["p50_ms"])')
    p50s[$bin]="${p50s[$bin]:-} $p"
  done
done
for bin in "$@"; do
  echo "$bin: $(echo ${p50s[$bin]} | tr ' ' '\n' | sort -n | awk '{a[NR] = $1} END {printf "min %.1f ms, median %.1f ms over %d rounds", a[1], a[int((NR + 1) / 2)], NR}')"
done

#!/usr/bin/env bash
# Images/s of `qdet detect` for the thread layouts the "Throughput" table of docs/performance.md compares,
# measured back to back in one run. Usage: tools/bench_threads.sh MODEL IMAGES_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 images=$2
cargo build --release --quiet
out=$(mktemp -d)
for cfg in "1 1" "2 1" "2 2"; do
  set -- $cfg
  target/release/qdet detect --model "$model" "$images" --out "$out" --overwrite --threads "$1" --inflight "$2" --json 2>/dev/null |
    python3 -c "import json,sys; s=json.load(sys.stdin); m=s['mean_ms']; print('threads=$1 inflight=$2', s['processed'], 'images:', ', '.join(f'{k} {v:.1f} ms' for k, v in m.items()), f\"; {s['images_per_s']:.2f} images/s\")"
done
rm -rf "$out"

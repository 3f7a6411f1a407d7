#!/usr/bin/env bash
# Issue 3's accuracy table: the fixture model in fp32, calibrated by qdet with each method,
# with and without bias correction, and by ONNX Runtime's quantize_static (the peer
# baseline, tools/quant/ort_quantize_static.py), all scored by `qdet val` on the same split.
# Usage: tools/quant/accuracy.sh [MODEL] [CALIB_DIR] [DATA_YAML]   (OUT=dir for the models)
# Needs the tools venv (tools/setup-venv.sh) for the ONNX Runtime row; skipped without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-models/shapes-yolov8n.onnx}
CALIB=${2:-calibration}
DATA=${3:-datasets/shapes/data.yaml}
OUT=${OUT:-target/accuracy}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
cargo build --release --locked --quiet
QDET=target/release/qdet

score() { # model label
  "$QDET" val --model "$1" --data "$DATA" --json 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $2 | {r['map50_95']:.4f} | {r['map50']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} |\")"
}

echo "| model | mAP50-95 | mAP50 | P | R |"
echo "|---|---|---|---|---|"
score "$MODEL" "fp32"
for method in minmax percentile kl mse; do
  for bc in "" --bias-correct; do
    out="$OUT/$method${bc:+-bc}.onnx"
    "$QDET" calibrate --model "$MODEL" --images "$CALIB" --out "$out" --method "$method" $bc \
      --analysis-images 0 --overwrite >/dev/null 2>&1
    score "$out" "qdet $method${bc:+ + bias correction}"
  done
done
if [ -x "$PY" ]; then
  "$PY" tools/quant/ort_quantize_static.py "$MODEL" "$CALIB" "$OUT/ort-minmax.onnx" >/dev/null 2>&1
  score "$OUT/ort-minmax.onnx" "ONNX Runtime quantize_static (minmax)"
fi

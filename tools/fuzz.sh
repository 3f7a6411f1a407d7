#!/usr/bin/env bash
# Fuzzes qdet's parsers of user files with cargo-fuzz (libFuzzer + AddressSanitizer, nightly):
# labelme JSON, Pascal VOC XML, YOLO txt (both readers), YAML (data.yaml, class lists), the
# ONNX metadata literals, and image decoding under a pixel limit. Not part of CI.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 300 s, every target)
#
# Seeds are copied from the repository's own fixtures; the corpus grows in fuzz/corpus/ and
# crashes land in fuzz/artifacts/ (both ignored by git). Commit a crash as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
targets=${*:-labelme voc yolo_txt data_yaml onnx_metadata image}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seed() {
    local t=$1; shift
    mkdir -p "fuzz/corpus/$t"
    for f in "$@"; do [ -f "$f" ] && cp -n "$f" "fuzz/corpus/$t/" || true; done
}
seed labelme $(find tests/data -name '*.json' -size -64k | head -50)
seed voc $(find tests/data ../shared/labelme-examples -name '*.xml' -size -64k 2>/dev/null | head -50)
seed yolo_txt $(ls datasets/shapes/labels/val/*.txt | head -50)
seed data_yaml datasets/shapes/data.yaml $(find tests/data -name '*.yaml' | head -20)
mkdir -p fuzz/corpus/onnx_metadata
printf "{0: 'circle', 1: 'square'}" > fuzz/corpus/onnx_metadata/names.txt
printf "[320, 320]" > fuzz/corpus/onnx_metadata/imgsz.txt
seed image $(find tests/data/odd -type f -size -256k | head -20) datasets/shapes/images/val/val_0000.jpg

for t in $targets; do
    echo "== $t: ${secs} s"
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 2>&1 \
        | grep -E "^(==|#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|ERROR|INFO: .*crash)" || true
    if ls "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/oom-* "fuzz/artifacts/$t"/timeout-* >/dev/null 2>&1; then
        echo "!! $t found inputs in fuzz/artifacts/$t"
    fi
done

#!/usr/bin/env bash
# Peak RSS of `qdet detect` over N copies of the fixture val images (symlinks), for a model,
# against the same run over the first 100: flat memory means the two peaks are about equal.
# Usage: tools/bench/memory.sh MODEL [N=1080]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1 n=${2:-1080}
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/all" "$dir/first100" "$dir/out"
i=0
while [ $i -lt "$n" ]; do
  for f in "$PWD"/datasets/shapes/images/val/*.jpg; do
    [ $i -ge "$n" ] && break
    ln -s "$f" "$dir/all/$i.jpg"
    [ $i -lt 100 ] && ln -s "$f" "$dir/first100/$i.jpg"
    i=$((i + 1))
  done
done
for set in first100 all; do
  /usr/bin/time -f "%M" -o "$dir/rss" target/release/qdet detect --model "$model" "$dir/$set" --out "$dir/out/$set" --save-txt >/dev/null 2>&1
  echo "$(basename "$model") $set ($(ls "$dir/$set" | wc -l) images): peak RSS $(( $(cat "$dir/rss") / 1024 )) MiB"
done

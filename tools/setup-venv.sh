#!/usr/bin/env bash
# Creates .venv with the pinned Python tools (Ultralytics, ONNX Runtime) used by tools/ to
# regenerate fixtures and cross-check qdet. The product and its tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -r tools/requirements.txt
echo "ready: .venv/bin/python"

#!/usr/bin/env bash
# Creates .venv with the pinned Python tools (Ultralytics, ONNX Runtime) used by tools/ to
# regenerate fixtures and cross-check qdet. The product and its tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -r tools/requirements.txt
# PPQ only for its observer reference (tools/parity/ppq_observers_reference.py); its own
# dependency pins are old and would downgrade the tools above, and the observers need none.
.venv/bin/pip install --quiet --no-deps ppq==0.6.6
echo "ready: .venv/bin/python"

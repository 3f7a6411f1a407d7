#!/usr/bin/env bash
# The Python package's tests, on the wheel tools/wheel.sh built, installed into a fresh venv
# with none of the build tools: what `pip install qdet` gives a user.
#   tools/test-python.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(ls target/wheels/qdet-*-manylinux_*_x86_64.whl | tail -1)
venv=target/py-test-venv
rm -rf $venv
python3 -m venv $venv
$venv/bin/pip install --quiet --upgrade pip
$venv/bin/pip install --quiet -r python/requirements-test.txt "$wheel"
# The installed command, not one from the source tree or ~/.cargo/bin.
PATH="$PWD/$venv/bin:$PATH" $venv/bin/python -m pytest -q python/tests "$@"

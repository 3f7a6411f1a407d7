#!/usr/bin/env bash
# Builds the qdet wheel for this machine (x86_64) and, with --aarch64, for ARM boxes too:
# the Python module (python/, maturin) and the `qdet` binary the command runs, stripped,
# inside the package. The binary is the one `cargo build --release` makes (one target dir),
# so after the usual build only the small module is compiled.
#
#   tools/wheel.sh [--prebuilt] [--aarch64]      -> target/wheels/qdet-*.whl
#   pip install target/wheels/qdet-*-manylinux_*_x86_64.whl
# --prebuilt takes the binaries as they are in target/ (CI: `cargo test` and .ci/aarch64.sh
# built them from the same sources) instead of building them again with the features of a
# plain build, which would recompile the whole dependency tree once more per target.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/wheel-venv
if [ ! -x $venv/bin/maturin ]; then
  python3 -m venv $venv
  $venv/bin/pip install --quiet --upgrade pip
  $venv/bin/pip install --quiet -r python/requirements-build.txt
fi
prebuilt=false aarch64=false
for a in "$@"; do
  case $a in
    --prebuilt) prebuilt=true ;;
    --aarch64) aarch64=true ;;
    *) echo "tools/wheel.sh: unknown argument $a (--prebuilt, --aarch64)"; exit 1 ;;
  esac
done
build() { # TARGET
  local target=$1 out=target/release
  [ "$target" = native ] || out=target/$target/release
  if $prebuilt; then
    [ -x $out/qdet ] || { echo "tools/wheel.sh: --prebuilt, but no $out/qdet"; exit 1; }
  elif [ "$target" = native ]; then
    cargo build --release --locked --bin qdet
  else
    cargo build --release --locked --bin qdet --target "$target"
  fi
  mkdir -p python/qdet/bin
  # Stripped: the wheel carries code, not the debug line tables (245 MB -> about 30).
  local strip=strip
  [ "$target" = native ] || strip=aarch64-linux-gnu-strip
  $strip -o python/qdet/bin/qdet $out/qdet
  local args=(--release --strip --locked --out target/wheels -m python/Cargo.toml)
  # The module's dependencies resolved as `cargo test` resolved them, so the build reuses that
  # build's artifacts (python/Cargo.toml's shared-build feature says why).
  ! $prebuilt || args+=(--features shared-build)
  [ "$target" = native ] || args+=(--target "$target")
  PATH="$PWD/$venv/bin:$PATH" maturin build "${args[@]}"
  rm -f python/qdet/bin/qdet
}
build native
if $aarch64; then
  tools/setup-aarch64.sh
  build aarch64-unknown-linux-gnu
fi
ls -la target/wheels/

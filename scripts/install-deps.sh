#!/usr/bin/env bash
# Installs routescope's build and test dependencies from Debian packages (skips what is present).
# libtorch-dev: the trainer and the reference forward; libopenblas0-openmp: the BLAS libtorch's CPU
# matmuls get (about 18x faster than the reference BLAS here); chromium + librsvg2-bin: the report's
# headless-browser test and PNG figure export.
# llama.cpp itself is obtained by scripts/get-llama.sh from the npm registry during configure.
set -euo pipefail

PKGS=(build-essential cmake ninja-build git pkg-config
      nlohmann-json3-dev libcli11-dev libfmt-dev libssl-dev libxxhash-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      python3 python3-numpy
      libtorch-dev libopenblas0-openmp
      chromium librsvg2-bin fonts-dejavu-core)
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Obtain and build llama.cpp v0.5.0 (libllama + ggml, static, CPU by default) without a network
# download other than the npm registry: the source tree ships as a git bundle inside the npm
# package node-llama-cpp@3.22.1 (llama/gitRelease.bundle). See docs/architecture.md, "Obtaining llama.cpp".
#
# Usage: scripts/get-llama.sh [PREFIX]       prints the install prefix on its last line
#   env: ROUTESCOPE_CACHE (default ~/.cache/routescope), LLAMA_CMAKE_ARGS (extra, e.g. -DGGML_CUDA=ON)
# The result is cached under $ROUTESCOPE_CACHE/llama-v0.5.0-<hash of cmake args>; a finished build
# is marked by a stamp file, so an interrupted build is redone rather than half-used.
set -euo pipefail

NPM_PKG="node-llama-cpp@3.22.1"
LLAMA_TAG="v0.5.0"
CACHE="${ROUTESCOPE_CACHE:-$HOME/.cache/routescope}"
EXTRA="${LLAMA_CMAKE_ARGS:-}"
# Always built: the RPC backend and its rpc-server tool (non-host tensors on loopback in the tests,
# a model spread over several machines). Part of the cache key, so older caches are rebuilt.
BASE_ARGS="-DGGML_RPC=ON"
KEY=$(printf '%s %s' "$BASE_ARGS" "$EXTRA" | sha256sum | cut -c1-8)
PREFIX="${1:-$CACHE/llama-$LLAMA_TAG-$KEY}"
STAMP="$PREFIX/.routescope-built"

if [[ -f "$STAMP" ]]; then
  echo "$PREFIX"
  exit 0
fi

command -v npm >/dev/null || { echo "get-llama: npm not found (apt-get install npm)" >&2; exit 1; }
command -v git >/dev/null || { echo "get-llama: git not found (apt-get install git)" >&2; exit 1; }

WORK="$CACHE/work-$LLAMA_TAG-$KEY"
rm -rf "$WORK"
mkdir -p "$WORK"
echo "get-llama: fetching $NPM_PKG from the npm registry" >&2
(cd "$WORK" && npm pack --silent "$NPM_PKG" >/dev/null)
tar -xzf "$WORK"/node-llama-cpp-*.tgz -C "$WORK" package/llama/gitRelease.bundle package/llama/binariesGithubRelease.json
release=$(sed -n 's/.*"release": *"\([^"]*\)".*/\1/p' "$WORK/package/llama/binariesGithubRelease.json")
if [[ "$release" != "$LLAMA_TAG" ]]; then
  echo "get-llama: $NPM_PKG ships llama.cpp $release, expected $LLAMA_TAG" >&2
  exit 1
fi
git clone -q "$WORK/package/llama/gitRelease.bundle" "$WORK/llama.cpp" 2>/dev/null
rm -rf "$WORK/package" "$WORK"/node-llama-cpp-*.tgz

echo "get-llama: building libllama + ggml (static) into $PREFIX" >&2
# shellcheck disable=SC2086
cmake -S "$WORK/llama.cpp" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
  -DGGML_NATIVE=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX="$PREFIX" $BASE_ARGS $EXTRA >&2
cmake --build "$WORK/build" -j "$(nproc)" >&2
cmake --install "$WORK/build" >&2
# rpc-server (tools/rpc) only needs ggml; LLAMA_BUILD_TOOLS would configure every tool, so it is
# compiled here against the installed static libraries.
mkdir -p "$PREFIX/bin"
# shellcheck disable=SC2046
c++ -O2 -std=c++17 "$WORK/llama.cpp/tools/rpc/rpc-server.cpp" -I"$PREFIX/include" -o "$PREFIX/bin/rpc-server" \
  -L"$PREFIX/lib" -Wl,--start-group $(cd "$PREFIX/lib" && ls libggml*.a | sed 's/^lib\(.*\)\.a$/-l\1/') -Wl,--end-group \
  -fopenmp -lpthread -ldl >&2
touch "$STAMP"
rm -rf "$WORK"
echo "$PREFIX"

#!/usr/bin/env bash
# Recording on a GPU (issue #11, item 6): plain decoding vs decoding + router tap vs the whole `trace`,
# tokens/s, every layer offloaded (--gpu-layers 999), on the bench model and on issue #11's wider one.
# Builds routescope with -DGGML_CUDA=ON into build-cuda/ (llama.cpp's CUDA build is cached under
# ~/.cache/routescope like the CPU one) and runs bench_record_overhead there.
#
# Where there is no CUDA (no nvcc, or no GPU visible to nvidia-smi) it prints why and exits 0: the script
# is safe to run anywhere (`make bench`, CI). Not a test: prints numbers, asserts nothing about time.
#
# usage: bench/bench_gpu_record.sh [extra bench_record_overhead args, e.g. --reps 7 --groups 80]
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "bench_gpu_record: skipped: $1"
    exit 0
}
command -v nvcc >/dev/null 2>&1 || skip "no CUDA compiler (nvcc) on PATH"
command -v nvidia-smi >/dev/null 2>&1 || skip "no nvidia-smi: no NVIDIA driver"
nvidia-smi -L 2>/dev/null | grep -q '^GPU ' || skip "nvidia-smi lists no GPU"

BUILD=${BUILD_CUDA:-build-cuda}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DRS_BUILD_TESTS=OFF \
    ${CUDA_ARCH:+-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH} >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target bench_record_overhead >/dev/null

nvidia-smi -L
THREADS=${THREADS:-2}
echo "== bench model (olmoe 8 layers, 32 experts, top-4, embd 128), all layers on the GPU"
"$BUILD/bench/bench_record_overhead" --gpu-layers 999 --threads "$THREADS" "$@"
echo "== issue #11 model (embd 384, 64 experts, top-8, 8 layers), all layers on the GPU"
"$BUILD/bench/bench_record_overhead" --wide --gpu-layers 999 --threads "$THREADS" "$@"
echo "== the same on the CPU, for the ratio GPU/CPU overhead"
"$BUILD/bench/bench_record_overhead" --wide --gpu-layers 0 --threads "$THREADS" "$@"

#!/usr/bin/env bash
# Trains the bundled model models/tiny-polyglot-moe.gguf exactly as committed (see models/MODEL_CARD.md):
# a Qwen3-MoE-architecture model (8 MoE blocks, 16 experts, top-2) on the FLoRes-200 dev split of
# all 24 languages, weighted by models/tiny-polyglot-moe.mix.tsv. About 70 minutes on one CPU core.
# The exported weights are those of the best validation step. One thread makes the run reproducible bit
# for bit from the seed (tests/train_test.cpp checks that on a small config); more threads change the
# float summation order.
# Interrupted? Run it again with --resume appended.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTESCOPE=${ROUTESCOPE:-build/src/cli/routescope}
exec "$ROUTESCOPE" train \
  --corpus flores:data/flores200/dev \
  --mix models/tiny-polyglot-moe.mix.tsv \
  --out models/tiny-polyglot-moe.gguf \
  --checkpoint-dir "${CKPT_DIR:-runs/tiny-polyglot-moe.ckpt}" \
  --name tiny-polyglot-moe \
  --vocab 4096 --layers 8 --embd 128 --heads 4 --head-dim 32 \
  --experts 16 --top-k 2 --expert-ff 64 --ctx 512 \
  --seq-len 128 --batch 32 --steps 1200 \
  --lr 3e-3 --min-lr 3e-4 --warmup 100 --weight-decay 0.1 --aux 0.01 \
  --val-lines 50 --eval-every 100 --checkpoint-every 100 \
  --seed 20261130 --threads 1 "$@"

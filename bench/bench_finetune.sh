#!/usr/bin/env bash
# Tokens/s and peak memory of `routescope finetune` (RISE's subnetwork, a late-block subnetwork, every
# expert) against full training of the same model shape (`routescope train`, every parameter trainable),
# interleaved repetitions in one run, ratios to full training printed at the end. Issue #13's benchmark.
#
#   bench/bench_finetune.sh [REPS] [THREADS]        (defaults 3, 2; about 2 minutes)
# The bundled model (8 blocks, 16 experts, top-2, embd 128): finetune trains on 160 FLoRes dev lines of
# Swahili (10 optimizer steps of 2 × 8 sequences, ~72 tokens each); train runs 10 steps of 16 × 72 tokens
# (--batch 16 --seq-len 72) on the same lines, so both see about the same tokens per step; the RISE set
# also runs with micro-batches of 16 × 1, the shape of train's steps (small micro-batches cost throughput).
set -euo pipefail
cd "$(dirname "$0")/.."
RS=${ROUTESCOPE:-build/src/cli/routescope}
REPS=${1:-3}
THREADS=${2:-2}
MODEL=models/tiny-polyglot-moe.gguf
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
SHA=$(sha256sum "$MODEL" | cut -d" " -f1)
# RISE's choice on the bundled model (scripts/rise-finetune-experiment.sh): 16 experts over all 8 blocks,
# from block 0; "late": the same budget in blocks 6-7 only (backward stops there)
cat >"$W/sel.json" <<EOF
{"model": {"sha256": "$SHA"}, "sets": {
 "rise": {"0": [0, 6], "1": [2, 3], "2": [0], "3": [13, 14], "4": [8, 9], "5": [3, 10], "6": [2, 11, 12], "7": [9, 14]},
 "late": {"6": [0, 1, 2, 3, 4, 5, 6, 7], "7": [0, 1, 2, 3, 4, 5, 6, 7]}}}
EOF
corpus=flores:data/flores200/dev
ft() {  # name, extra args…
  local name=$1
  shift
  /usr/bin/time -f "%M" -o "$W/$name.rss" "$RS" finetune --model "$MODEL" --corpus "$corpus" --langs swh_Latn \
    --limit 160 --epochs 1 --lr 1e-3 --threads "$THREADS" --no-progress --checkpoint-every 0 \
    --out "$W/$name.gguf" "$@" >"$W/$name.out"
  rm -rf "$W/$name.gguf" "$W/$name.gguf.ckpt"
  sed -n 's/.* at \([0-9.]*\) tok\/s.*/\1/p' "$W/$name.out"
}
full() {
  /usr/bin/time -f "%M" -o "$W/full.rss" "$RS" train --corpus "$corpus" --langs swh_Latn --vocab 4096 \
    --layers 8 --embd 128 --heads 4 --head-dim 32 --experts 16 --top-k 2 --expert-ff 64 --seq-len 72 \
    --batch 16 --steps 10 --warmup 2 --eval-every 0 --checkpoint-every 0 --val-lines 50 --threads "$THREADS" \
    --out "$W/full.gguf" >"$W/full.out" 2>"$W/full.err"
  rm -rf "$W/full.gguf" "$W/full.gguf.ckpt"
  # tokens seen / training seconds from the log (the vocabulary is trained first: not training work)
  awk -F, 'END {printf "%.0f\n", $6 / $7}' "$W/full.gguf.log.csv"
}
declare -A tps rss
names=(rise rise16 late all full)
for ((r = 1; r <= REPS; r++)); do
  for n in "${names[@]}"; do
    case $n in
      rise) v=$(ft rise --experts "$W/sel.json" --set rise) ;;
      rise16) v=$(ft rise16 --experts "$W/sel.json" --set rise --batch 16 --grad-accum 1) ;;
      late) v=$(ft late --experts "$W/sel.json" --set late) ;;
      all) v=$(ft all --subnetwork all) ;;
      full) v=$(full) ;;
    esac
    tps[$n]+="$v "
    rss[$n]+="$(cat "$W/$n.rss") "
    echo "rep $r $n: $v tok/s, peak RSS $(cat "$W/$n.rss") KiB" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
f=$(echo "${tps[full]}" | median)
printf "\n%-46s %10s %8s %14s\n" "run ($THREADS threads, median of $REPS)" "tok/s" "× full" "peak RSS MiB"
for n in "${names[@]}"; do
  t=$(echo "${tps[$n]}" | median)
  m=$(echo "${rss[$n]}" | median)
  case $n in
    rise) label="finetune: RISE set (16 experts, from block 0)" ;;
    rise16) label="  the same, micro-batch 16 as train's" ;;
    late) label="finetune: 16 experts in blocks 6-7" ;;
    all) label="finetune: every expert (128)" ;;
    full) label="train: every parameter" ;;
  esac
  printf "%-46s %10.0f %8.2f %14.0f\n" "$label" "$t" "$(echo "$t / $f" | bc -l)" "$(echo "$m / 1024" | bc -l)"
done

#!/usr/bin/env bash
# RISE's experiment on the bundled model (docs/rise-finetune.md): select the target language's expert
# subnetwork (`experts --method rise` on a trace of FLoRes dev), finetune only it on the target's FLoRes dev
# lines, and compare held-out FLoRes devtest bits per character in every language against
#   (a) a random subnetwork with as many experts in every block (--subnetwork random),
#   (b) every expert trained (--subnetwork all; attention and routers frozen in all three),
#   (c) the base model,
# each trained condition with SEEDS seeds (data order; the random draw). Writes OUT/results.csv (one row per
# condition, seed and language) and OUT/summary.md (means, seed standard deviations, changes vs base).
#
#   scripts/rise-finetune-experiment.sh            # the committed run (~30 min on 2 cores)
#   TARGET=yor_Latn SEEDS="1 2" EPOCHS=1 scripts/rise-finetune-experiment.sh
# Interrupted? Run it again: finished models and tables are kept, a finetune resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
RS=${ROUTESCOPE:-build/src/cli/routescope}
MODEL=${MODEL:-models/tiny-polyglot-moe.gguf}
TARGET=${TARGET:-swh_Latn}
SEEDS=${SEEDS:-1 2 3}
EPOCHS=${EPOCHS:-3}
LR=${LR:-1e-3}                    # RISE's 2e-5 is for a 30B model; see docs/rise-finetune.md
TRAIN_LIMIT=${TRAIN_LIMIT:-997}   # FLoRes dev lines of the target (all)
SELECT_LIMIT=${SELECT_LIMIT:-200} # FLoRes dev lines per language in the selection trace
EVAL_LIMIT=${EVAL_LIMIT:-200}     # FLoRes devtest sentences per language
EVAL_LANGS=${EVAL_LANGS:-}        # default: all 24
OUT=${OUT:-runs/rise-finetune-$TARGET}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
langs_opt=()
[[ -n "$EVAL_LANGS" ]] && langs_opt=(--langs "$EVAL_LANGS")

# 1. selection: RISE's tripartite choice on the routing of FLoRes dev (training text, not the evaluation's)
if [[ ! -f "$OUT/rise.json" ]]; then
  "$RS" trace --model "$MODEL" --corpus flores:data/flores200/dev --limit "$SELECT_LIMIT" \
    "${langs_opt[@]}" --threads "$THREADS" --no-progress --out "$OUT/select-trace"
  "$RS" experts "$OUT/select-trace" --method rise --target-lang "$TARGET" --out "$OUT/rise.json"
fi

# 2. finetunes: rise | random | all, one per seed
for cond in rise random all; do
  for seed in $SEEDS; do
    m="$OUT/$cond-seed$seed.gguf"
    [[ -f "$m" ]] && continue
    case $cond in
      rise) sub=(--experts "$OUT/rise.json" --subnetwork selected) ;;
      random) sub=(--experts "$OUT/rise.json" --subnetwork random) ;;
      all) sub=(--subnetwork all) ;;
    esac
    resume=()
    [[ -d "$m.ckpt" ]] && resume=(--resume)
    "$RS" finetune --model "$MODEL" "${sub[@]}" --corpus flores:data/flores200/dev --langs "$TARGET" \
      --limit "$TRAIN_LIMIT" --epochs "$EPOCHS" --lr "$LR" --seed "$seed" --threads "$THREADS" \
      --out "$m" "${resume[@]}" | tee "$m.txt"
  done
done

# 3. held-out bits per character in every language (no sentence cut: --max-tokens 1024)
ppl() {  # model, csv
  [[ -f "$2" ]] || "$RS" ppl --model "$1" --corpus flores:data/flores200/devtest --limit "$EVAL_LIMIT" \
    "${langs_opt[@]}" --max-tokens 1024 --threads "$THREADS" --no-progress --out "$2" >/dev/null
}
ppl "$MODEL" "$OUT/base.ppl.csv"
for cond in rise random all; do
  for seed in $SEEDS; do ppl "$OUT/$cond-seed$seed.gguf" "$OUT/$cond-seed$seed.ppl.csv"; done
done

# 4. tables
{
  echo "condition,seed,lang,bpc,nll,n_tokens"
  awk -F, 'NR>1 {print "base,-," $1 "," $7 "," $4 "," $3}' "$OUT/base.ppl.csv"
  for cond in rise random all; do
    for seed in $SEEDS; do
      awk -F, -v c="$cond" -v s="$seed" 'NR>1 {print c "," s "," $1 "," $7 "," $4 "," $3}' \
        "$OUT/$cond-seed$seed.ppl.csv"
    done
  done
} >"$OUT/results.csv"
awk -F, -v target="$TARGET" '
  NR == 1 { next }
  $1 == "base" { base[$3] = $4; langs[++nl] = $3; next }
  { k = $1 SUBSEP $3; n[k]++; s[k] += $4; ss[k] += $4 * $4 }
  function mean(c, l) { return s[c, l] / n[c, l] }
  function sd(c, l,   m) { m = mean(c, l); return n[c, l] > 1 ? sqrt((ss[c, l] - n[c, l] * m * m) / (n[c, l] - 1)) : 0 }
  END {
    printf "Held-out FLoRes devtest bits per character (mean ± seed s.d.; Δ = change vs base, negative is better). Target: %s.\n\n", target
    printf "| language | base | RISE | Δ RISE | random | Δ random | all experts | Δ all |\n|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= nl; i++) {
      l = langs[i]
      if (l == "all") continue
      printf "| %s%s | %.4f", l, l == target ? " (target)" : "", base[l]
      split("rise random all", cs, " ")
      for (j = 1; j <= 3; j++) printf " | %.4f ± %.4f | %+.4f", mean(cs[j], l), sd(cs[j], l), mean(cs[j], l) - base[l]
      printf " |\n"
    }
    for (j = 1; j <= 3; j++) {
      c = cs[j]; t = 0; m = 0
      for (i = 1; i <= nl; i++) { l = langs[i]; if (l == "all" || l == target) continue; t += mean(c, l) - base[l]; m++ }
      other[c] = t / m
    }
    printf "\nMean Δ over the %d other languages: RISE %+.4f, random %+.4f, all experts %+.4f.\n", m, other["rise"], other["random"], other["all"]
  }' "$OUT/results.csv" >"$OUT/summary.md"
cat "$OUT/summary.md"

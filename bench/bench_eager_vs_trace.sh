#!/usr/bin/env bash
# `routescope trace` against the way routing is recorded today with HF transformers: a PyTorch-eager forward
# with hooks on the routers (bench/eager_recorder.py, Debian's python3-torch), forward only, padded
# length-sorted batches and one sequence at a time; the same GGUF weights, the same token ids (read from
# routescope's own trace), the same threads; interleaved repetitions in one run. Issue #11's target:
# routescope ≥ 2× the padded length-sorted recorder. Two more rows give the ceiling of any recorder built on
# llama.cpp (bench_record_overhead --model, same corpus): llama.cpp's own forward pass without recording, in
# the same batches, plain, and with the tap stopping after the last router as trace does.
#
#   bench/bench_eager_vs_trace.sh [REPS] [THREADS] [LIMIT]     (defaults 3, 2, 100 sentences per language)
# Needs python3-torch (apt-get install python3-torch); says so and stops if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RS=${ROUTESCOPE:-build/src/cli/routescope}
BRO=${BENCH_RECORD_OVERHEAD:-build/bench/bench_record_overhead}
REPS=${1:-3}
THREADS=${2:-2}
LIMIT=${3:-100}
MODEL=${MODEL:-models/tiny-polyglot-moe.gguf}
LANGS=eng_Latn,deu_Latn,fra_Latn,rus_Cyrl,zho_Hans,hin_Deva,swh_Latn,yor_Latn
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "bench_eager_vs_trace: skipped: Debian's python3-torch is not installed (apt-get install python3-torch)"
  exit 0
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }
fail() { echo "bench_eager_vs_trace: $*" >&2; exit 1; }
# tok/s of one row of bench_record_overhead's output; a missing row stops the script instead of reading as 0
bro_row() {
  local v
  v=$(sed -n "s/^$1 *\([0-9]*\) tok.*/\1/p" "$W/bro.out")
  [[ -n $v ]] || fail "no '$1' row in bench_record_overhead's output"
  echo "$v"
}
declare -A wall inner
for ((r = 1; r <= REPS; r++)); do
  rm -rf "$W/t"
  t0=$(now)
  "$RS" trace --model "$MODEL" --corpus flores:data/flores200/devtest --langs "$LANGS" --limit "$LIMIT" \
    --threads "$THREADS" --no-progress --out "$W/t" >"$W/trace.out"
  t1=$(now)
  tokens=$(sed -n 's/.*sequences, \([0-9]*\) tokens recorded.* in \([0-9.]*\) s.*/\1/p' "$W/trace.out")
  secs=$(sed -n 's/.*tokens recorded.* in \([0-9.]*\) s.*/\1/p' "$W/trace.out")
  wall[trace]+="$(echo "$tokens / ($t1 - $t0)" | bc -l) "
  inner[trace]+="$(echo "$tokens / $secs" | bc -l) "
  for mode in sorted single; do
    extra=()
    [[ $mode == single ]] && extra=(--single)
    t0=$(now)
    j=$(/usr/bin/python3 bench/eager_recorder.py "$MODEL" "$W/t" --threads "$THREADS" "${extra[@]}")
    t1=$(now)
    n=$(echo "$j" | sed -n 's/.*"tokens": \([0-9]*\).*/\1/p')
    wall[$mode]+="$(echo "$n / ($t1 - $t0)" | bc -l) "
    inner[$mode]+="$(echo "$j" | sed -n 's/.*"tok_per_s": \([0-9.e+-]*\).*/\1/p') "
    echo "rep $r $mode: $j" >&2
  done
  echo "rep $r trace: $(cat "$W/trace.out")" >&2
  "$BRO" --model "$MODEL" --langs "$LANGS" --groups "$LIMIT" --reps 1 --threads "$THREADS" >"$W/bro.out"
  # the same corpus as trace's, or the rows would compare different work
  [[ $(sed -n 's/.*FLoRes sequences, \([0-9]*\) tokens.*/\1/p' "$W/bro.out") == "$tokens" ]] ||
    fail "bench_record_overhead decoded another corpus than trace recorded ($tokens tokens): $(head -1 "$W/bro.out")"
  inner[plain]+="$(bro_row 'plain decoding') "
  inner[forward]+="$(bro_row 'decoding + tap') "
  echo "rep $r llama.cpp alone: $(cat "$W/bro.out")" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf "\n%s, %s threads, %s tokens, median of %s\n" "$(basename "$MODEL")" "$THREADS" "$tokens" "$REPS"
printf "%-44s %14s %14s\n" "recorder" "tok/s (run)" "tok/s (wall)"
for m in trace sorted single plain forward; do
  case $m in
    trace) label="routescope trace" ;;
    sorted) label="PyTorch eager + hooks, padded sorted x32" ;;
    single) label="PyTorch eager + hooks, one sequence" ;;
    plain) label="llama.cpp plain decoding, no recording" ;;
    forward) label="llama.cpp forward + tap, to the last router" ;;
  esac
  w=""  # the llama.cpp rows are timed inside bench_record_overhead: no wall time of their own
  [[ -n ${wall[$m]:-} ]] && w=$(printf %.0f "$(echo "${wall[$m]}" | median)")
  printf "%-44s %14.0f %14s\n" "$label" "$(echo "${inner[$m]}" | median)" "$w"
done
for m in sorted single; do
  printf "routescope / %-6s: %.2f× (run), %.2f× (wall, start-up included)\n" "$m" \
    "$(echo "$(echo "${inner[trace]}" | median) / $(echo "${inner[$m]}" | median)" | bc -l)" \
    "$(echo "$(echo "${wall[trace]}" | median) / $(echo "${wall[$m]}" | median)" | bc -l)"
done
# the best any recorder on llama.cpp's CPU kernels could reach against the sorted peer
printf "llama.cpp forward + tap / sorted: %.2f× (trace is this forward plus its shard writes: its ceiling)\n" \
  "$(echo "$(echo "${inner[forward]}" | median) / $(echo "${inner[sorted]}" | median)" | bc -l)"

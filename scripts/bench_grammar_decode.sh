#!/usr/bin/env bash
# Decode speed with a JSON-schema constraint against the same model unconstrained (issue 17,
# acceptance 3): `engram run` -t 1, temperature 1, the two interleaved ROUNDS times; prints each
# model's median decode tok/s (the figure `engram run` reports on stderr, prefill excluded)
# both ways and their ratio.
#
#   scripts/bench_grammar_decode.sh [ENGRAM] [MODEL ...]
#     (default build/engram; models/engram-tiny-chat.gguf and, if present,
#      build/bench/bench-125m-q8_0.gguf: tools/py/make_bench_model.py --shape 125m, then
#      engram quantize --type q8_0)
#   ROUNDS (9), N_PREDICT (480: the chat model's context is 512), SCHEMA (tests/fixtures/grammar/decode_bench.schema.json: 30+
#   objects of a bounded string and an integer list, so that the output is long and crosses
#   every kind of lexeme boundary).
set -euo pipefail
cd "$(dirname "$0")/.."
engram=${1:-build/engram}
shift || true
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(models/engram-tiny-chat.gguf)
  [ -f build/bench/bench-125m-q8_0.gguf ] && models+=(build/bench/bench-125m-q8_0.gguf)
fi
rounds=${ROUNDS:-9}
n=${N_PREDICT:-480}
schema=${SCHEMA:-tests/fixtures/grammar/decode_bench.schema.json}

tok_s() {  # the decode tok/s of one run
  "$engram" run -m "$1" -p "Memories as JSON:" -n "$n" -t 1 --temp 1 --seed "$2" "${@:3}" \
    2>&1 >/dev/null | sed -n 's/.*generated: \([0-9]*\) tokens, \([0-9.]*\) tok\/s.*/\1 \2/p'
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for m in "${models[@]}"; do
  free=() constrained=() tokens=()
  for r in $(seq 1 "$rounds"); do
    read -r _ a < <(tok_s "$m" "$r")
    read -r k b < <(tok_s "$m" "$r" --json-schema "$schema")
    free+=("$a") constrained+=("$b") tokens+=("$k")
  done
  fa=$(printf '%s\n' "${free[@]}" | median)
  fb=$(printf '%s\n' "${constrained[@]}" | median)
  kt=$(printf '%s\n' "${tokens[@]}" | median)
  printf '%s: unconstrained %.1f tok/s, json-schema %.1f tok/s (median of %d; %s tokens), ratio %.3f\n' \
    "$(basename "$m")" "$fa" "$fb" "$rounds" "$kt" "$(awk -v a="$fa" -v b="$fb" 'BEGIN {print b / a}')"
done

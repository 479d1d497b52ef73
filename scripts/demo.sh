#!/usr/bin/env bash
# The main job: set up, build, and run the shipped model: what it is, a continuation, and its
# perplexity on held-out text. (Its in-context recall is not there yet: docs/MODEL.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" --target engram_cli

model=models/engram-tiny.gguf
[ -f "$model" ] || { echo "demo: $model is missing (see docs/MODEL.md to train it)"; exit 1; }

./build/engram inspect "$model" | head -n 14
echo
echo "== a sampled continuation (the shipped model is tiny: expect Brown-corpus-flavoured English)"
./build/engram run -m "$model" -n 48 --seed 1 -p "The committee said that the city"
echo
echo "== perplexity on held-out Brown text, computed as llama.cpp's llama-perplexity does"
./build/engram perplexity -m "$model" -f data/heldout_sample.txt --chunks 8

#!/usr/bin/env bash
# The main job: set up, build, and run the shipped model on a prompt that exercises what it
# was trained for -- recalling a pass key hidden in text it has just read.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" --target engram_cli

model=models/engram-tiny.gguf
[ -f "$model" ] || { echo "demo: $model is missing (see docs/MODEL.md to train it)"; exit 1; }

./build/engram inspect "$model" | head -n 12
echo
echo "== greedy continuation of a passkey prompt (the model read 'the pass key' once, above)"
./build/engram run -m "$model" --temp 0 -n 8 -p "$(cat data/demo_prompt.txt)"

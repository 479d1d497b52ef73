#!/usr/bin/env bash
# The main job: set up, build, and show what engram is for. The shipped 512-token model reads a
# ~128K-token stream of held-out Brown text with a pass key hidden in it, once with attention
# sinks (StreamingLLM) and once with episodic memory (EM-LLM), and answers the question.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" --target engram_cli

model=models/engram-tiny.gguf
[ -f "$model" ] || { echo "demo: $model is missing (see docs/MODEL.md to train it)"; exit 1; }
# The held-out Brown text (the model never saw it) from the npm corpus setup.sh installed.
[ -f build/data/heldout.txt ] || python3 tools/train/prepare_data.py --out build/data >/dev/null

./build/engram demo -m "$model" "$@"

#!/bin/sh
# Export the trained checkpoint and regenerate every shipped figure and fixture.
# Usage: sh tools/train/finalize.sh [checkpoint]   (default build/run/final.pt)
set -e
cd "$(dirname "$0")/../.."
CKPT=${1:-build/run/final.pt}
/usr/bin/python3 tools/train/export_gguf.py --ckpt "$CKPT" --out models/engram-tiny.gguf
/usr/bin/python3 tools/train/reference.py check --ckpt "$CKPT" --threads 1
/usr/bin/python3 tools/train/reference.py greedy --threads 1
/usr/bin/python3 tools/train/reference.py perplexity --threads 1
/usr/bin/python3 tools/train/reference.py passkey --threads 1
/usr/bin/python3 tools/train/plot_log.py

#!/bin/sh
# Replays the shipped engram-tiny run exactly (same data, same steps, same learning-rate
# history). The run was resumed three times with a new --max-steps (the length of its cosine
# decay) as the session's time became clear, and once with the C2 stage added (C_STEPS in
# train.py records where); --stop-at reproduces those cut points. Every batch is generated from
# PCG64(seed, step), so a resumed run sees exactly what an uninterrupted one would.
# About 75 minutes of training on one core of a quiet 2-core machine (plus evaluation).
#   sh tools/train/reproduce.sh [OUT_DIR]     (then: sh tools/train/finalize.sh OUT_DIR/final.pt)
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-build/run-replay}
T="/usr/bin/python3 tools/train/train.py --out $OUT --log $OUT/log.csv --threads 1 --max-minutes 600"
export OMP_WAIT_POLICY=PASSIVE
$T --max-steps 3400 --stop-at 1049
$T --max-steps 4600 --stop-at 1907 --resume
$T --max-steps 4600 --stop-at 2326 --resume
$T --max-steps 3050 --resume

#!/bin/sh
# Replays the engram-tiny-chat run (tools/train/train_chat.py) from engram-tiny's weights: the same
# data (every batch from PCG64(seed, step)), the same steps and learning-rate history.
# One thread: OpenBLAS's own worker thread is off (it spent more system time than it saved), and
# the malloc settings keep glibc from unmapping and re-faulting the large attention buffers every
# step. The committed log is tools/train/logs/engram-tiny-chat.csv; compare a partial rerun
# (e.g. MINUTES=10) with
#   /usr/bin/python3 tools/train/compare_logs.py OUT_DIR/log.csv --ref tools/train/logs/engram-tiny-chat.csv --fields loss,chat_loss,lm_loss
# Usage: sh tools/train/reproduce-chat.sh [OUT_DIR] [MINUTES]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-build-chatmodel/run-replay}
MIN=${2:-82}
[ -f build-chatmodel/data/train.txt ] || /usr/bin/python3 tools/train/prepare_data.py --out build-chatmodel/data
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=536870912
/usr/bin/python3 tools/train/train_chat.py --out "$OUT" --grow 2 --steps 2200 --minutes "$MIN" --augment-from 672

#!/bin/sh
# Replays the engram-tiny-chat run (tools/train/train_chat.py) from engram-tiny's weights: the same
# data (every batch from PCG64(seed, step)), the same steps and learning-rate history. One torch
# thread; the malloc settings keep glibc from returning (and re-faulting) the large attention
# buffers every step, which otherwise cost more system time than the training itself.
# The committed log is tools/train/logs/engram-tiny-chat.csv; compare a partial rerun with
#   /usr/bin/python3 tools/train/compare_logs.py (or by eye: loss columns within 2%).
#   sh tools/train/reproduce-chat.sh [OUT_DIR] [MINUTES]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-build-chatmodel/run-replay}
MIN=${2:-86}
[ -f build-chatmodel/data/train.txt ] || /usr/bin/python3 tools/train/prepare_data.py --out build-chatmodel/data
export OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=536870912
/usr/bin/python3 tools/train/train_chat.py --out "$OUT" --grow 2 --steps 2300 --minutes "$MIN"

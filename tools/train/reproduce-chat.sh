#!/bin/sh
# Replays the engram-tiny-chat run (tools/train/train_chat.py) from engram-tiny's weights: the same
# data (every batch from PCG64(seed, step)), the same steps and learning-rate history (step-based:
# a pause of the process changes nothing but the elapsed column).
# Session 3's run: engram-tiny grown by 2 identity blocks to 4 layers, 2900 steps of batch 8 x 512,
# the training-only compositional wordings from step 0 (--augment-from 0; chat_data version 3), 16% of rows from
# engram-tiny's own text/recall data, the logged probe on the validation split.
# One thread: OpenBLAS's own worker thread is off (it spent more system time than it saved), and
# the malloc settings keep glibc from unmapping and re-faulting the large attention buffers every
# step. The committed log is tools/train/logs/engram-tiny-chat.csv; compare a partial rerun
# (e.g. STOP_AT=280, about the first 10 minutes) with
#   /usr/bin/python3 tools/train/compare_logs.py OUT_DIR/log.csv --ref tools/train/logs/engram-tiny-chat.csv --fields loss,chat_loss,lm_loss
# Usage: sh tools/train/reproduce-chat.sh [OUT_DIR] [STOP_AT_STEP]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-build-chatmodel/run-replay}
STOP=${2:-2900}
[ -f build-chatmodel/data/train.txt ] || /usr/bin/python3 tools/train/prepare_data.py --out build-chatmodel/data
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=536870912
/usr/bin/python3 tools/train/train_chat.py --out "$OUT" --grow 2 --steps 2900 --stop-at "$STOP" --minutes 150 \
  --augment-from 0 --lm-share 0.16 --seed 1919 --threads 1 --ckpt-minutes 4 --data-version 3 $RESUME

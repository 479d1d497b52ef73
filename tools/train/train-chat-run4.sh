#!/bin/sh
# The next engram-tiny-chat run (planned in session 4, NOT YET TRAINED; docs/MODEL.md, "Next run").
# From engram-tiny's weights: grown by 3 identity blocks to 5 layers (6.03 M parameters, ~12 MB in
# F16), 3000 steps of batch 8 x 512 on chat_data version 4 (the grammar of statement and question
# forms, near-kind abstention and Add/Merge distractors) from step 0, 16% of rows engram-tiny's own
# data, seed 1919, one torch thread. 2.68 s of CPU a step measured (tools/train/chat_step_time.py), so
# ~135 minutes with a core to itself; --minutes 148 stops it (with a checkpoint) if the machine is
# slower, and the same command resumes it from OUT/last.pt, bit for bit, in a later session.
# The process runs in its own session (setsid), so its autogroup is its own, and that autogroup's
# nice is raised to -15 (what session 3's run had); stdout goes to OUT/train.out; OUT/stepN.pt every
# 500 steps are for dev evaluations while it runs (chat_eval.py --ckpt OUT/step1500.pt --split dev).
# Usage: sh tools/train/train-chat-run4.sh [OUT_DIR] [STOP_AT_STEP]     (returns when training stops)
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-build-chatmodel/run4}
STOP=${2:-3000}
mkdir -p "$OUT"
[ -f build-chatmodel/data/train.txt ] || /usr/bin/python3 tools/train/prepare_data.py --out build-chatmodel/data
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=536870912
RESUME=
[ -f "$OUT/last.pt" ] && RESUME=--resume
setsid /usr/bin/python3 tools/train/train_chat.py --out "$OUT" --grow 3 --steps 3000 --stop-at "$STOP" --minutes 148 \
  --lr 8e-4 --lr-min 6e-5 --warmup 40 --augment-from 0 --lm-share 0.16 --seed 1919 --threads 1 --ckpt-minutes 3 \
  --keep-every 500 --data-version 4 $RESUME >> "$OUT/train.out" 2>&1 &
PID=$!
echo "$PID" > "$OUT/train.pid"
sleep 1
if echo -15 > /proc/$PID/autogroup 2>/dev/null; then
  echo "train_chat.py pid $PID, $(cat /proc/$PID/autogroup)"
else
  echo "train_chat.py pid $PID: could not raise its autogroup's priority (not root?); it runs at nice 0"
fi
wait $PID
tail -n 1 "$OUT/train.out"

#!/bin/sh
# Checks that train_chat.py resumes bit for bit: a tiny run (4 layers, batch 2 x 128, 14 steps) straight
# through, the same run stopped at step 5 (inside a log row) and resumed, and the same run sent SIGTERM
# after step 6 and resumed; the log rows (all but the elapsed and tok_per_s columns), the weights and
# AdamW's state must be equal. About 1.5 minutes on one thread.
# Usage: sh tools/train/chat_resume_check.sh [WORK_DIR]
set -e
cd "$(dirname "$0")/../.."
D=${1:-build-chatmodel/resume-check}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
T="/usr/bin/python3 tools/train/train_chat.py --grow 2 --steps 14 --warmup 3 --batch 2 --ctx 128 --log-every 2
   --probe-every 4 --augment-from 0 --lm-share 0.16 --seed 1919 --threads 1 --data-version 4"
rm -rf "$D"
mkdir -p "$D"
$T --out "$D/full" > "$D/full.out" 2>&1
$T --out "$D/cut" --stop-at 5 > "$D/cut1.out" 2>&1
$T --out "$D/cut" --resume > "$D/cut2.out" 2>&1
$T --out "$D/sig" > "$D/sig1.out" 2>&1 &
P=$!
while ! grep -q "^step=6 " "$D/sig1.out" 2>/dev/null; do sleep 0.2; done
kill -TERM $P
wait $P
$T --out "$D/sig" --resume > "$D/sig2.out" 2>&1
/usr/bin/python3 - "$D" <<'PY'
import csv, sys
import torch
D = sys.argv[1]
cols = ("step", "tokens", "loss", "chat_loss", "lm_loss", "probe_exact", "lr")
rows = lambda p: [{k: r[k] for k in cols} for r in csv.DictReader(open(p))]  # noqa: E731
full, a = rows(f"{D}/full/log.csv"), torch.load(f"{D}/full/last.pt")
ok = True
for name in ("cut", "sig"):
    b = torch.load(f"{D}/{name}/last.pt")
    same_log = rows(f"{D}/{name}/log.csv") == full
    same_w = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    same_o = all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    print(f"{name}: {len(full)} log rows equal {same_log}, weights equal {same_w}, AdamW state equal {same_o}")
    ok &= same_log and same_w and same_o
sys.exit(0 if ok else 1)
PY

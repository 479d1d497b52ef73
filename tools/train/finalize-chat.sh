#!/bin/sh
# Export a train_chat.py checkpoint as the shipped chat model and regenerate its figures:
# the GGUF, the golden fixtures (tests/fixtures/shipped_chat/greedy.json), the held-out evaluation
# (tools/train/logs/engram-tiny-chat-eval.json, one process per task), the training log.
# Usage: sh tools/train/finalize-chat.sh [CHECKPOINT] [RUN_LOG]
set -e
cd "$(dirname "$0")/../.."
CKPT=${1:-build-chatmodel/run/last.pt}
LOG=${2:-build-chatmodel/run/log.csv}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
/usr/bin/python3 tools/train/export_chat_gguf.py --ckpt "$CKPT" --out models/engram-tiny-chat.gguf
cp "$LOG" tools/train/logs/engram-tiny-chat.csv
/usr/bin/python3 tools/train/chat_fixtures.py &
for t in recall memory extract addmerge passkey; do
  /usr/bin/python3 tools/train/chat_eval.py --tasks $t --out build-chatmodel/eval-$t.json > build-chatmodel/eval-$t.log 2>&1 &
done
# diagnostic: held-out values in the training wordings (half the trials)
/usr/bin/python3 tools/train/chat_eval.py --tasks recall,memory --wordings train --scale 0.5 \
  --out build-chatmodel/eval-trainwordings.json > build-chatmodel/eval-trainwordings.log 2>&1 &
wait
/usr/bin/python3 - <<'PY'
import json
res = {}
for t in ["recall", "memory", "extract", "addmerge", "passkey"]:
    r = json.load(open(f"build-chatmodel/eval-{t}.json"))
    res.update({k: v for k, v in r.items() if k not in res})
d = json.load(open("build-chatmodel/eval-trainwordings.json"))
res["diagnostic_training_wordings"] = {"recall": d["recall"], "memory": d["memory"]}
json.dump(res, open("tools/train/logs/engram-tiny-chat-eval.json", "w"), indent=1)
print(json.dumps(res, indent=1))
PY

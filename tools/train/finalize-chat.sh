#!/bin/sh
# Export a train_chat.py checkpoint as the shipped chat model and regenerate its figures:
# the GGUF, the golden fixtures (tests/fixtures/shipped_chat/greedy.json), the held-out evaluation,
# the dev evaluation (chat_data's DEV_* wordings and values) and the validation evaluation (tools/train/logs/engram-tiny-chat-eval.json, one process per
# task), the training log. Extraction is decoded under the JSON-schema constraint
# (chat_eval.ExtractionConstraint, tools/train/extract_schema.json); extract_free is the same
# conversations decoded without it (a diagnostic).
# SPLITS="dev valid" leaves the held-out split out (a candidate judged on dev first; the held-out split
# is measured once, for the model chosen).
# Usage: [SPLITS="heldout dev valid"] sh tools/train/finalize-chat.sh [CHECKPOINT] [RUN_LOG] [GGUF_OUT]
set -e
cd "$(dirname "$0")/../.."
CKPT=${1:-build-chatmodel/run3/last.pt}
LOG=${2:-build-chatmodel/run3/log.csv}
OUT=${3:-models/engram-tiny-chat.gguf}
E=${EVAL_DIR:-build-chatmodel/eval}
SCALE=${SCALE:-1}
mkdir -p $E
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
/usr/bin/python3 tools/train/export_chat_gguf.py --ckpt "$CKPT" --out "$OUT"
if [ "$OUT" = models/engram-tiny-chat.gguf ]; then
  cp "$LOG" tools/train/logs/engram-tiny-chat.csv
  /usr/bin/python3 tools/train/chat_fixtures.py &
fi
for s in ${SPLITS:-heldout dev valid}; do
  for t in recall memory extract extract_free addmerge passkey; do
    /usr/bin/python3 tools/train/chat_eval.py --model "$OUT" --split $s --tasks $t --scale $SCALE --out $E/$s-$t.json > $E/$s-$t.log 2>&1 &
  done
  if [ $s = heldout ]; then
    # (these use held-out conversations too)
    # diagnostic: held-out values in the training wordings (half the trials)
    /usr/bin/python3 tools/train/chat_eval.py --model "$OUT" --tasks recall,memory --wordings train --scale 0.5 \
      --out $E/trainwordings.json > $E/trainwordings.log 2>&1 &
    if [ -x build-chatmodel/engram ]; then
      # extraction decoded by engram's grammar engine (engram serve, response_format json_schema), against PyTorch's
      /usr/bin/python3 tools/train/chat_extract_engram.py --model "$OUT" --compare --n $(/usr/bin/python3 -c "print(max(2, int(100 * $SCALE)))") --out $E/extract-engram.json \
        > $E/extract-engram.log 2>&1 &
      /usr/bin/python3 tools/train/chat_engram_check.py --engram build-chatmodel/engram --model "$OUT" > $E/engram-check.log 2>&1 &
    fi
    [ "$OUT" = models/engram-tiny-chat.gguf ] && node bench/llamacpp/chat_check.mjs > $E/llamacpp-check.log 2>&1 &
  fi
  wait
done
RES=tools/train/logs/engram-tiny-chat-eval.json
[ "$OUT" = models/engram-tiny-chat.gguf ] || RES=$E/summary.json
/usr/bin/python3 - "$RES" <<'PY'
import json, sys
import os
E = os.environ.get("EVAL_DIR", "build-chatmodel/eval")
tasks = ["recall", "memory", "extract", "extract_free", "addmerge", "passkey"]
res = {}
for s in [x for x in ["heldout", "dev", "valid"] if os.path.exists(f"{E}/{x}-recall.json")]:
    r = {}
    for t in tasks:
        d = json.load(open(f"{E}/{s}-{t}.json"))
        r[t] = d[t]
        r.setdefault("model", d["model"])
    res[s] = r
try:
    d = json.load(open(f"{E}/extract-engram.json"))
    res["heldout"]["extract_engram"] = {k: v for k, v in d.items() if k != "replies"}
except (OSError, KeyError):
    pass
if "heldout" in res:
    d = json.load(open(f"{E}/trainwordings.json"))
    res["diagnostic_heldout_values_training_wordings"] = {"recall": d["recall"], "memory": d["memory"]}
json.dump(res, open(sys.argv[1], "w"), indent=1)
print(json.dumps(res, indent=1))
PY

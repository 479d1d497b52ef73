#!/usr/bin/env python3
"""How surprised is a model where a new document starts? The evidence behind issue 5, item 3.

Reads a document file as `engram eval segment` does without --separator (documents split on blank
lines, each tokenized on its own, concatenated after BOS), scores every token with the model given
256-511 tokens of context (windows of 512 advancing by 256, the first token of each window
replaced by BOS, as the perplexity protocol does), and reports, per model:
  - held-out-style perplexity of the stream and the spread of surprise;
  - mean surprise at offsets -2..+15 from a document start, minus the stream's mean;
  - the percentile of the document's first token and of the mean over its first 16 tokens among
    all tokens / all 16-token windows;
split by whether the boundary changes the source (with --sources, one label per document).

Usage: /usr/bin/python3 tools/train/boundary_surprise.py --docs build/data/segment_mixed.txt \\
           [--sources build/data/segment_mixed.sources] MODEL.gguf [MODEL2.gguf ...]
"""
import argparse
import math
import os
import sys

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from finetune_text import model_from_gguf  # noqa: E402
from tasks import BOS  # noqa: E402


def stream_of(sp, docs):
    toks, starts = [BOS], []
    for i, d in enumerate(docs):
        if i:
            starts.append(len(toks))
        toks += sp.encode(d)
    return np.array(toks, dtype=np.int64), np.array(starts, dtype=np.int64)


def surprise(model, toks, L=512, batch=16):
    """-log p(token | context) for tokens 1..n-1 (index t = surprise of toks[t]); NaN for toks[0]"""
    n = len(toks)
    out = np.full(n, np.nan)
    starts = list(range(0, max(1, n - L) + 1, L // 2))
    if starts[-1] + L < n:
        starts.append(n - L)
    scored = 1  # tokens before this index have their surprise (toks[0] never does)
    model.eval()
    with torch.no_grad():
        for b in range(0, len(starts), batch):
            ss = starts[b:b + batch]
            x = torch.tensor(np.stack([toks[s:s + L] for s in ss]))
            x[:, 0] = BOS
            lg = model(x[:, :-1])
            ce = F.cross_entropy(lg.reshape(-1, lg.size(-1)), x[:, 1:].reshape(-1), reduction="none").view(len(ss), -1)
            for j, s in enumerate(ss):
                # each token once, from the first window that gives it 256+ tokens before it
                first = scored - s
                out[scored:s + L] = ce[j, first - 1:].numpy()
                scored = s + L
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--docs", default=os.path.join(ROOT, "build", "data", "segment_mixed.txt"))
    ap.add_argument("--sources", default=None)
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    with open(a.docs, encoding="utf-8") as f:
        docs = [d.strip("\n") for d in f.read().split("\n\n") if d.strip()]
    labels = None
    if a.sources:
        with open(a.sources, encoding="utf-8") as f:
            labels = [ln.strip() for ln in f if ln.strip()]
        assert len(labels) == len(docs), (len(labels), len(docs))
    toks, starts = stream_of(sp, docs)
    groups = {"all": np.arange(len(starts))}
    if labels:
        change = np.array([labels[i] != labels[i + 1] for i in range(len(starts))])
        groups["source changes"] = np.nonzero(change)[0]
        groups["same source"] = np.nonzero(~change)[0]
    print(f"{a.docs}: {len(toks):,} tokens, {len(docs)} documents, {len(starts)} boundaries"
          + (f" ({len(groups['source changes'])} change the source)" if labels else ""))
    offsets = list(range(-2, 16))
    for path in a.models:
        model, _ = model_from_gguf(path)
        s = surprise(model, toks)
        valid = ~np.isnan(s)
        mu, sd = s[valid].mean(), s[valid].std()
        w16 = np.convolve(np.nan_to_num(s, nan=mu), np.ones(16) / 16, mode="valid")  # w16[t] = mean of s[t..t+15]
        print(f"\n{os.path.basename(path)}: perplexity {math.exp(mu):.1f}, surprise mean {mu:.2f} nats, std {sd:.2f}")
        print("  excess surprise (nats over the mean) at offsets " + " ".join(f"{o:+d}" for o in offsets))
        for name, idx in groups.items():
            st = starts[idx]
            st = st[(st + offsets[-1] < len(s)) & (st + offsets[0] > 0)]
            ex = [np.nanmean(s[st + o]) - mu for o in offsets]
            first_pct = np.mean([(s[valid] < s[t]).mean() for t in st]) * 100
            win_pct = np.mean([(w16 < w16[t]).mean() for t in st if t < len(w16)]) * 100
            after = np.nanmean(np.stack([s[t:t + 16] for t in st])) - mu
            print(f"  {name:15s} n={len(st):3d} " + " ".join(f"{e:+.1f}" for e in ex)
                  + f" | first token pct {first_pct:.0f}, 16-token window pct {win_pct:.0f}, excess over 16 {after:+.2f}")


if __name__ == "__main__":
    main()

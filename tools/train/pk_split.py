#!/usr/bin/env python3
"""Pass-key accuracy of a training checkpoint, split by whether the key's first four digits are
all different (a copier that matches only the previous token can answer only those).
Teacher-forced exact match (= greedy), InfiniteBench wording, held-out filler, 512 tokens.

Usage: /usr/bin/python3 tools/train/pk_split.py CHECKPOINT.pt [N_KEYS]
"""
import os, sys
import numpy as np
import sentencepiece as spm
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
torch.set_num_threads(1)
from model import Config, Model
import train
from tasks import IB_INTRO, IB_NEEDLE, IB_QUESTION
ck = torch.load(sys.argv[1])
m = Model(Config(**ck['cfg'])); m.load_state_dict(ck['model']); m.eval()
sp = spm.SentencePieceProcessor(model_file=os.path.join(train.ROOT, 'models', 'engram-tiny.tokenizer.model'))
sents = train.heldout_sentences()
n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
rng = np.random.Generator(np.random.PCG64([4242]))
res = []
for i in range(n):
    key = str(rng.integers(10000, 100000))
    start = int(rng.integers(0, len(sents)))
    fill = [sents[(start + j) % len(sents)] for j in range(60)]
    depth = i / (n - 1)
    while True:
        pos = int(round(depth * len(fill)))
        prompt = " ".join([IB_INTRO] + fill[:pos] + [IB_NEEDLE.format(k=key)] + fill[pos:] + [IB_QUESTION])
        full = [1] + sp.encode(prompt + " " + key)
        if len(full) <= 512: break
        fill = fill[:-1]
    a = len([1] + sp.encode(prompt))
    x = torch.tensor([full])
    with torch.no_grad():
        pred = m(x[:, :-1]).argmax(-1)[0]
    ok = bool(torch.equal(pred[a - 1:len(full) - 1], x[0, a:]))
    rep = len(set(key[:4])) < 4
    res.append((ok, rep))
ok = sum(r[0] for r in res); 
nr = [r for r in res if not r[1]]; rr = [r for r in res if r[1]]
print(f"all {ok}/{n}; first-4-distinct {sum(r[0] for r in nr)}/{len(nr)}; repeated {sum(r[0] for r in rr)}/{len(rr)}")

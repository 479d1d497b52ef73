#!/usr/bin/env python3
"""Seconds per training step of train_chat.py's candidates (depth by --grow, torch threads), measured on
the real batches (PCG64(seed, step), chat_data version 4) without logging, probes or checkpoints: the
mean wall and process-CPU seconds of --steps steps after --warm steps. On a shared machine the wall
figure depends on the load; report it with the load average (printed).

Usage: /usr/bin/python3 tools/train/chat_step_time.py --grow 2 4 6 --threads 1 2 [--steps 4] [--warm 1]
"""
import argparse
import itertools
import os
import sys
import time

import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from chat_data import ChatGen  # noqa: E402
from finetune_text import model_from_gguf  # noqa: E402
from model import Config, Model, grow_identity  # noqa: E402
from tasks import TaskGen  # noqa: E402
from train_chat import extend_vocab, forward, load_split, make_batch  # noqa: E402


def grown(gguf, n):
    model, cfg = model_from_gguf(gguf)
    if n:
        g = Model(Config(**dict(cfg.to_dict(), n_layer=cfg.n_layer + n)))
        g.load_state_dict(model.state_dict(), strict=False)
        grow_identity(g, cfg.n_layer)
        model = g
    extend_vocab(model, 2)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "engram-tiny.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--data", default=os.path.join(ROOT, "build-chatmodel", "data"))
    ap.add_argument("--grow", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warm", type=int, default=1)
    a = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    sents, toks = load_split(a.data, "train", sp, cache_tokens=True)
    chat, lm = ChatGen(sp, sents, "train", 4), TaskGen(sp, toks, sents, sp.get_piece_size())
    for grow, threads in itertools.product(a.grow, a.threads):
        torch.set_num_threads(threads)
        model = grown(a.gguf, grow)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
        model.train()
        wall, cpu = [], []
        for step in range(a.warm + a.steps):
            w0, c0 = time.perf_counter(), time.process_time()
            x, seg, sc, _ = make_batch(chat, lm, 1919, step, a.batch, a.ctx, 0.16, True)
            lg = forward(model, x[:, :-1], seg[:, :-1])
            ce = F.cross_entropy(lg.reshape(-1, lg.size(-1)), x[:, 1:].reshape(-1), reduction="none")
            loss = ce.view(x.size(0), -1)[sc].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step >= a.warm:
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
        n_par = sum(p.numel() for p in model.parameters())
        print(f"layers {model.cfg.n_layer} threads {threads} params {n_par} f16 file ~{2 * n_par / 1e6:.1f} MB: "
              f"{sum(wall) / len(wall):.2f} s/step wall, {sum(cpu) / len(cpu):.2f} s/step CPU "
              f"(steps {' '.join(f'{w:.2f}' for w in wall)}; load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train engram-tiny (llama architecture, GQA, interleaved RoPE) with a copy-first curriculum.

Curriculum (stages advance only when the step minimum is met AND the running copy loss
(EMA of the loss on repeated-span tokens in the training batches) is below the gate, so
young induction heads are not destroyed by a sudden change of data):
  A   L=64  copy_random only (the known-good start: induction/copying appears first); only the
            repeated tokens are optimised, the unpredictable random ones are not
  A2  L=64  the same data while the 8 key/value heads are tied in pairs into 4 (GQA)
  B1  L=64  + Brown text, copied Brown spans (learning rate starts its cosine decay here)
  B2  L=128 + passkey, key-value
  B3  L=256 + multi-key
  C   L=512 final mix (480 steps)
  C2  L=512 the same plus recurring numbers in text (copy_digits), to the end
Everything is seeded: batch b of the run is generated from numpy's PCG64 seeded with
(seed, step), so a resumed run or a rerun sees exactly the same data.

Usage:
  /usr/bin/python3 tools/train/train.py --out build/run [--resume] [--max-steps N] [--max-minutes M]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import (Config, Model, apply_maps, grow_identity, head_group_maps, kv_pool_maps,  # noqa: E402
                   n_params, shrink_kv_groups)
from tasks import TaskGen, split_sentences, IB_INTRO, IB_NEEDLE, IB_QUESTION  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A stage advances when its minimum is met and the copy-loss EMA is under the gate, or, at the
# latest, after max_steps. Optionally (--layers N --grow-at STAGE) the model trains its first 2
# blocks and appends identity blocks (zero output weights) on entering a later stage, which leaves
# the function, and the young copying circuit, unchanged at the moment of growth.
C_STEPS = 480  # stage C's length in the shipped run (C2 was added at its end)

STAGES = [
    dict(name="A", L=64, B=64, min_steps=300, gate=1.0, mix={"copy_random": 1.0}),
    # A2: multi-head -> grouped-query attention without a shock: the heads that will share a key/value
    # head are made adjacent, then their key/value projections are pulled to the group mean a little
    # each step (reaching it exactly at the end), while the model keeps training on copying
    dict(name="A2", L=64, B=64, min_steps=200, gate=1.0, mix={"copy_random": 1.0}),
    dict(name="B1", L=64, B=32, min_steps=40, max_steps=400, gate=1.0, mix={"copy_random": 0.6, "copy_text": 0.1, "brown": 0.3}),
    dict(name="B2", L=128, B=32, min_steps=60, max_steps=300, gate=1.0,
         mix={"copy_random": 0.35, "copy_text": 0.15, "brown": 0.35, "passkey": 0.1, "kv": 0.05}),
    dict(name="B3", L=256, B=16, min_steps=60, max_steps=300, gate=1.0,
         mix={"copy_random": 0.2, "copy_text": 0.15, "brown": 0.4, "passkey": 0.15, "kv": 0.05, "multikey": 0.05}),
    dict(name="C", L=512, B=8, min_steps=C_STEPS, max_steps=C_STEPS, gate=0.0,
         mix={"copy_random": 0.12, "copy_text": 0.1, "brown": 0.48, "passkey": 0.18, "kv": 0.06, "multikey": 0.06}),
    # C2 (added during the shipped run, see docs/MODEL.md): in C the pass-key probe stalled near
    # the share of keys whose digits never repeat (~50%), the mark of a copier that only knows the
    # previous token; numbers that recur in text train copying that tracks its place in a number
    dict(name="C2", L=512, B=8, min_steps=10 ** 9, gate=0.0,
         mix={"copy_random": 0.08, "copy_text": 0.07, "copy_digits": 0.15, "brown": 0.38, "passkey": 0.2,
              "kv": 0.06, "multikey": 0.06}),
]

LOG_FIELDS = ["step", "tokens", "stage", "seq_len", "loss", "copy_loss_train", "copy_loss_eval", "lr",
              "elapsed_s", "tok_per_s", "passkey_probe"]


def load_data(sp):
    with open(os.path.join(ROOT, "build", "data", "train.txt"), encoding="utf-8") as f:
        train_text = f.read()
    cache = os.path.join(ROOT, "build", "data", "train_tokens.npy")
    if os.path.exists(cache):
        toks = np.load(cache)
    else:
        toks = np.array(sp.encode(train_text), dtype=np.int32)
        np.save(cache, toks)
    sents = []
    for doc in train_text.split("\n\n"):
        sents += split_sentences(doc)
    return toks, sents


def heldout_sentences():
    with open(os.path.join(ROOT, "build", "data", "heldout.txt"), encoding="utf-8") as f:
        text = f.read()
    out = []
    for doc in text.split("\n\n"):
        out += split_sentences(doc)
    return out


GROW_AT = 2  # stage index at which the model grows from 2 to n_layer blocks (--grow-at; >= len(STAGES): never)


def active_layers(stage_idx, n_layer, start_layers=2):
    return min(start_layers, n_layer) if stage_idx < GROW_AT else n_layer


def make_batch(gen, stage, seed, step):
    """-> tokens [B, L], copy mask [B, L-1] (targets that repeat earlier context), loss mask [B, L-1]
    (targets that are optimised: everything except the unpredictable random tokens of copy_random
    sequences, whose only lesson would be a uniform unigram that fights the language's)"""
    rng = np.random.Generator(np.random.PCG64([seed, step]))
    kinds = list(stage["mix"].keys())
    p = np.array([stage["mix"][k] for k in kinds])
    seqs = []
    cmask = torch.zeros(stage["B"], stage["L"] - 1, dtype=torch.bool)
    lmask = torch.ones(stage["B"], stage["L"] - 1, dtype=torch.bool)
    for i in range(stage["B"]):
        kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
        seq, ranges = gen.sample(kind, rng, stage["L"])
        assert len(seq) == stage["L"], (kind, len(seq))
        seqs.append(seq)
        for a, b in ranges:  # target tokens a..b-1 are predicted at positions a-1..b-2
            cmask[i, a - 1:b - 1] = True
        if kind == "copy_random":
            lmask[i] = cmask[i]
    return torch.tensor(seqs, dtype=torch.long), cmask, lmask


def passkey_probe(model, sp, sents, n=16, L=512, seed=777, n_active=None):
    """teacher-forced exact match of a 5-digit key (== greedy exact match), IB wording, held-out filler"""
    rng = np.random.Generator(np.random.PCG64([seed]))
    rows, spans = [], []
    for i in range(n):
        key = str(rng.integers(10000, 100000))
        start = int(rng.integers(0, len(sents)))
        fill = []
        j = start
        while sum(len(s) for s in fill) < 4 * (L - 90):
            fill.append(sents[j % len(sents)])
            j += 1
        depth = i / max(1, n - 1)
        while True:
            pos = int(round(depth * len(fill)))
            prompt = " ".join([IB_INTRO] + fill[:pos] + [IB_NEEDLE.format(k=key)] + fill[pos:] + [IB_QUESTION])
            ptoks = [1] + sp.encode(prompt)
            full = [1] + sp.encode(prompt + " " + key)
            if len(full) <= L:
                break
            fill = fill[:-1]
        rows.append(full + [2] * (L - len(full)))
        spans.append((len(ptoks), len(full)))
    x = torch.tensor(rows)
    with torch.no_grad():
        pred = model(x[:, :-1], n_active).argmax(-1)
    ok = 0
    for i, (a, b) in enumerate(spans):
        ok += int(torch.equal(pred[i, a - 1:b - 1], x[i, a:b]))
    return ok / n


def stage_index(name):
    return [st["name"] for st in STAGES].index(name)


def lr_at(step, args, stage_starts):
    """linear warm-up, constant through the copy stages, then a cosine from lr_late (entering B1, the
    first stage with language: a smaller step protects the young copying circuit) down to lr_min"""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    s2 = stage_starts.get(stage_index("B1"))
    if s2 is None or step < s2:
        return args.lr
    span = max(1, args.max_steps - s2)
    t = min(1.0, (step - s2) / span)
    return args.lr_min + (args.lr_late - args.lr_min) * 0.5 * (1 + math.cos(math.pi * t))


def remap(model, opt, maps, args, lr, n_head_kv=None):
    """apply_maps to the model and carry the optimizer over: every parameter keeps its Adam moments,
    passed through the same map as its weight (fresh moments would jolt every mapped weight by ~lr)"""
    old = {n: opt.state.get(p) for n, p in model.named_parameters()}
    apply_maps(model, maps, n_head_kv)
    new = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, args.beta2), eps=1e-8, weight_decay=0.0)
    for n, p in model.named_parameters():
        st = old.get(n)
        if st:
            fn = maps.get(n)
            new.state[p] = {k: (fn(v).contiguous() if fn is not None and torch.is_tensor(v) and v.dim() > 0 else v)
                            for k, v in st.items()}
    return new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "run"))
    ap.add_argument("--log", default=os.path.join(ROOT, "tools", "train", "logs", "engram-tiny.csv"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-steps", type=int, default=2800)
    ap.add_argument("--max-minutes", type=float, default=120.0)
    ap.add_argument("--stop-at", type=int, default=None,
                    help="save and exit after this step (to replay a run that was resumed with new flags)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-late", type=float, default=7e-4)
    ap.add_argument("--lr-min", type=float, default=7e-5)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--grow-at", type=int, default=9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--gqa-kv", type=int, default=4, help="key/value heads of the shipped model (A2 converts)")
    ap.add_argument("--tie-steps", type=int, default=200, help="steps of stage A2 over which k/v heads are tied")
    ap.add_argument("--a-max-steps", type=int, default=10 ** 9,
                    help="cap on stage A (copying) steps; by default it ends only when copy loss < gate")
    ap.add_argument("--init", choices=["small", "torch", "shared"], default="small")
    args = ap.parse_args()
    global GROW_AT
    GROW_AT = args.grow_at
    STAGES[0]["max_steps"] = args.a_max_steps
    STAGES[stage_index("A2")]["min_steps"] = args.tie_steps

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(os.path.dirname(args.log), exist_ok=True)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    toks, sents = load_data(sp)
    gen = TaskGen(sp, toks, sents, sp.get_piece_size())
    held_sents = heldout_sentences()

    cfg = Config(vocab_size=sp.get_piece_size(), dim=args.dim, n_layer=args.layers, n_head=args.heads,
                 n_head_kv=args.kv_heads, ffn_dim=args.ffn)
    ckpt_path = os.path.join(args.out, "last.pt")
    ck = torch.load(ckpt_path) if args.resume and os.path.exists(ckpt_path) else None
    if ck is not None:
        cfg = Config(**ck["cfg"])  # the checkpoint's shape (it may have been converted to GQA)
    model = Model(cfg, args.init)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, args.beta2), eps=1e-8, weight_decay=0.0)
    state = dict(step=0, stage=0, stage_starts={0: 0}, copy_ema=None, elapsed=0.0, tokens=0)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        print(f"resumed at step {state['step']} stage {STAGES[state['stage']]['name']}", flush=True)
        # drop log lines past the checkpoint
        if os.path.exists(args.log):
            with open(args.log) as f:
                lines = f.read().splitlines()
            keep = [lines[0]] + [l for l in lines[1:] if int(l.split(",")[0]) <= state["step"]]
            with open(args.log, "w") as f:
                f.write("\n".join(keep) + "\n")
    else:
        with open(args.log, "w") as f:
            f.write(",".join(LOG_FIELDS) + "\n")
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(dict(cfg=cfg.to_dict(), args=vars(args), stages=STAGES), f, indent=1)
    print(f"params {n_params(model)} cfg {cfg}", flush=True)

    # fixed copy-eval batch: random spans at random gaps, L=128
    erng = np.random.Generator(np.random.PCG64([999]))
    ev = [gen.copy_random(erng, 128) for _ in range(16)]
    ev_x = torch.tensor([s for s, _ in ev])
    ev_m = torch.zeros(16, 127, dtype=torch.bool)
    for i, (_, rr) in enumerate(ev):
        for a, b in rr:
            ev_m[i, a - 1:b - 1] = True

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), state=state, cfg=cfg.to_dict()), tmp)
        os.replace(tmp, ckpt_path)

    t0 = time.time() - state["elapsed"]
    last_ck = time.time()
    acc_loss, acc_copy, acc_n, acc_tok, t_log = 0.0, [], 0, 0, time.time()
    while state["step"] < args.max_steps:
        step = state["step"]
        if args.stop_at is not None and step >= args.stop_at:
            print(f"stopping at step {step} (--stop-at)", flush=True)
            break
        if (time.time() - t0) / 60 > args.max_minutes:
            print("time budget reached", flush=True)
            break
        st = STAGES[state["stage"]]
        lr = lr_at(step, args, state["stage_starts"])
        for g in opt.param_groups:
            g["lr"] = lr
        x, cm, lm = make_batch(gen, st, args.seed, step)
        model.train()
        na = active_layers(state["stage"], cfg.n_layer)
        logits = model(x[:, :-1], na)
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="none").view(x.size(0), -1)
        loss = ce.mean()
        # the logged loss stays the mean over all targets; the optimised one skips the random tokens
        # (their gradient is noise that drowned the weak early signal of the copying circuit)
        opt_loss = ce[lm].mean()
        opt.zero_grad(set_to_none=True)
        opt_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if st["name"] == "A2" and cfg.n_head_kv > args.gqa_kv:
            i = state["step"] - state["stage_starts"][state["stage"]]  # steps taken in A2 before this one
            n = args.tie_steps
            shrink_kv_groups(model, args.gqa_kv, max(0.0, (n - i - 1) / (n - i)) if i < n else 0.0)
        state["step"] = step + 1
        state["tokens"] += x.numel()
        acc_loss += loss.item()
        acc_n += 1
        acc_tok += x.numel()
        if cm.any():
            c = ce.detach()[cm].mean().item()
            acc_copy.append(c)
            state["copy_ema"] = c if state["copy_ema"] is None else 0.9 * state["copy_ema"] + 0.1 * c
        # stage advance
        in_stage = state["step"] - state["stage_starts"][state["stage"]]
        gate_ok = state["copy_ema"] is not None and state["copy_ema"] < st["gate"]
        if (state["stage"] + 1 < len(STAGES) and in_stage >= st["min_steps"]
                and (gate_ok or in_stage >= st.get("max_steps", 10 ** 9))):
            state["stage"] += 1
            state["stage_starts"][state["stage"]] = state["step"]
            print(f"step {state['step']}: stage -> {STAGES[state['stage']]['name']}", flush=True)
            entered = STAGES[state["stage"]]["name"]
            if entered == "A2" and cfg.n_head_kv > args.gqa_kv:
                opt = remap(model, opt, head_group_maps(model, args.gqa_kv), args, lr)
                print("grouped heads for the key/value tie", flush=True)
            if entered == "B1" and cfg.n_head_kv > args.gqa_kv:
                shrink_kv_groups(model, args.gqa_kv, 0.0)
                opt = remap(model, opt, kv_pool_maps(model, args.gqa_kv), args, lr, args.gqa_kv)
                print(f"converted attention to GQA with {args.gqa_kv} kv heads", flush=True)
            if active_layers(state["stage"], cfg.n_layer) > na:
                grow_identity(model, na)
                print(f"grown from {na} to {active_layers(state['stage'], cfg.n_layer)} layers", flush=True)
        if state["step"] % args.log_every == 0:
            model.eval()
            with torch.no_grad():
                na = active_layers(state["stage"], cfg.n_layer)
                el = model(ev_x[:, :-1], na)
                ece = F.cross_entropy(el.reshape(-1, el.size(-1)), ev_x[:, 1:].reshape(-1), reduction="none").view(16, -1)
                copy_eval = ece[ev_m].mean().item()
            pk = ""
            if st["L"] >= 256 and state["step"] % 50 == 0:
                pk = f"{passkey_probe(model, sp, held_sents, L=st['L'], n_active=na):.4f}"
            now = time.time()
            row = [state["step"], state["tokens"], st["name"], st["L"], f"{acc_loss / acc_n:.5f}",
                   f"{np.mean(acc_copy):.5f}" if acc_copy else "", f"{copy_eval:.5f}", f"{lr:.3e}",
                   f"{now - t0:.1f}", f"{acc_tok / (now - t_log):.0f}", pk]
            with open(args.log, "a") as f:
                f.write(",".join(map(str, row)) + "\n")
            print(" ".join(f"{k}={v}" for k, v in zip(LOG_FIELDS, row)), flush=True)
            acc_loss, acc_copy, acc_n, acc_tok, t_log = 0.0, [], 0, 0, time.time()
        state["elapsed"] = time.time() - t0
        if time.time() - last_ck > args.ckpt_minutes * 60:
            save()
            last_ck = time.time()
    state["elapsed"] = time.time() - t0
    save()
    # the shipped model is the blocks in use at the end (all of them unless growth never happened)
    na = active_layers(state["stage"], cfg.n_layer)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.") or int(k.split(".")[1]) < na}
    fcfg = dict(cfg.to_dict(), n_layer=na)
    torch.save(dict(model=sd, cfg=fcfg, state=state), os.path.join(args.out, "final.pt"))
    print(f"done step {state['step']} elapsed {state['elapsed'] / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train engram-tiny-chat: engram-tiny's weights, two ChatML control tokens more, on chat_data.py's
synthetic conversations mixed with engram-tiny's own recall/text data.

Start: models/engram-tiny.gguf (optionally --grow N identity blocks on top, as finetune_text.py);
the vocabulary gets <|im_start|> (4096) and <|im_end|> (4097), their embedding and output rows
initialised to the mean of the existing rows.
Batches: row i of step s comes from PCG64([seed, s]); a row is either a window of tasks.py's
recall/text data (every token scored, --lm-share of the rows) or chat samples packed one after
another, each attending only to itself (a block-diagonal causal mask, so a packed sample sees what
it would see alone at position 0: RoPE is relative), scored on assistant tokens only. The rest of
a packed row is a Brown window of its own, scored.
Resumable (--resume): a checkpoint (every --ckpt-minutes, at --stop-at, at the end, and when the process
is sent SIGTERM or SIGINT, after the step under way) holds the weights, AdamW's state, the step, the
partial sums of the log row under way and the arguments that shape the run; a batch is a pure function of
(seed, step), so a resumed run computes bit for bit what the uninterrupted one does (the elapsed and
tok_per_s columns aside). The CSV log is cut back to the checkpoint's step; a resume with other shaping
arguments than the checkpoint's is refused. --keep-every N also keeps a copy of the checkpoint at every
N-th step (stepN.pt) for evaluation.

Usage:
  /usr/bin/python3 tools/train/prepare_data.py --out build-chatmodel/data
  sh tools/train/reproduce-chat.sh build-chatmodel/run3     (the shipped run: --grow 2 --steps 2900 --data-version 3 ...)
  sh tools/train/train-chat-run4.sh build-chatmodel/run4    (the next run, planned: --grow 3 --steps 3000 --data-version 4)
  /usr/bin/python3 tools/train/train_chat.py --out DIR [--grow N] [--steps N] [--stop-at N] [--resume]
  sh tools/train/finalize-chat.sh build-chatmodel/run3/last.pt build-chatmodel/run3/log.csv
"""
import argparse
import math
import os
import signal
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from chat_data import ChatGen  # noqa: E402
from finetune_text import model_from_gguf  # noqa: E402
from model import Config, Model, grow_identity  # noqa: E402
from tasks import TaskGen, split_sentences  # noqa: E402

LM_MIX = {"brown": 0.4, "passkey": 0.25, "copy_digits": 0.15, "kv": 0.1, "multikey": 0.1}
LOG_FIELDS = ["step", "tokens", "loss", "chat_loss", "lm_loss", "probe_exact", "lr", "elapsed_s", "tok_per_s"]


def load_split(data_dir, name, sp, cache_tokens=False):
    with open(os.path.join(data_dir, f"{name}.txt"), encoding="utf-8") as f:
        text = f.read()
    sents = []
    for doc in text.split("\n\n"):
        sents += split_sentences(doc)
    toks = None
    if cache_tokens:
        cache = os.path.join(data_dir, f"{name}_tokens.npy")
        if os.path.exists(cache):
            toks = np.load(cache)
        else:
            toks = np.array(sp.encode(text), dtype=np.int32)
            np.save(cache, toks)
    return sents, toks


def extend_vocab(model, n_new):
    """append n_new rows to the embedding and output matrices, each the mean of the existing rows"""
    cfg = model.cfg
    with torch.no_grad():
        e, o = model.tok.weight.data, model.out.weight.data
        model.tok = torch.nn.Embedding(cfg.vocab_size + n_new, cfg.dim)
        model.tok.weight.data.copy_(torch.cat([e, e.mean(0, keepdim=True).repeat(n_new, 1)]))
        model.out = torch.nn.Linear(cfg.dim, cfg.vocab_size + n_new, bias=False)
        model.out.weight.data.copy_(torch.cat([o, o.mean(0, keepdim=True).repeat(n_new, 1)]))
    cfg.vocab_size += n_new


def forward(model, x, seg):
    """Model.forward with a block-diagonal causal mask: token t attends to s <= t of its own segment"""
    B, T = x.shape
    if T not in model._rope:
        from model import rope_tables
        model._rope[T] = rope_tables(model.cfg, T)
    cos, sin = model._rope[T]
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    mask = causal[None] | (seg[:, :, None] != seg[:, None, :])
    mask = mask[:, None]
    h = model.tok(x)
    for b in model.blocks:
        h = b(h, cos, sin, mask)
    return model.out(model.norm(h))


def make_batch(chat, lm, seed, step, B, L, lm_share, augment=False):
    """-> x [B, L] tokens, seg [B, L] segment ids, score [B, L-1] (target t+1 scored at t), is_chat [B]"""
    rng = np.random.Generator(np.random.PCG64([seed, step]))
    chat.augment = augment
    xs, segs, scores, kinds = [], [], [], []
    lm_kinds = list(LM_MIX)
    p = np.array([LM_MIX[k] for k in lm_kinds])
    for _ in range(B):
        if rng.random() < lm_share:
            kind = lm_kinds[int(rng.choice(len(lm_kinds), p=p / p.sum()))]
            seq, _ = lm.sample(kind, rng, L)
            xs.append(seq)
            segs.append([0] * L)
            scores.append([True] * L)
            kinds.append(False)
            continue
        ids, mask, seg, k = [], [], [], 0
        while True:
            msgs = chat.sample(rng)
            t, m = chat.encode_messages(msgs)
            if len(t) > L:
                continue  # an over-long sample (a long extraction) is drawn again
            if len(ids) + len(t) > L:
                break
            ids += t
            mask += m
            seg += [k] * len(t)
            k += 1
        rest = L - len(ids)
        if rest > 0:
            w = [1] + lm.stream_window(rng, rest - 1) if rest > 1 else [1]
            ids += w
            mask += [False] + [True] * (len(w) - 1)
            seg += [k] * len(w)
        xs.append(ids)
        segs.append(seg)
        scores.append(mask)
        kinds.append(True)
    x = torch.tensor(xs, dtype=torch.long)
    seg = torch.tensor(segs, dtype=torch.long)
    sc = torch.tensor(scores, dtype=torch.bool)[:, 1:]
    # a target is scored only within its own segment (the first token of a segment is never a target)
    sc &= seg[:, 1:] == seg[:, :-1]
    return x, seg, sc, torch.tensor(kinds)


def probe_set(chat_held, n_each=6, seed=4242):
    """samples of every chat task (the validation split since session 3; the held-out split before);
    scored by teacher-forced exact match of the last reply"""
    rng = np.random.Generator(np.random.PCG64([seed]))
    items = []
    for kind in ["recall", "memory", "extract", "addmerge", "passkey"]:
        for _ in range(n_each):
            while True:
                msgs = chat_held.sample(rng, kind)
                ids, _ = chat_held.encode_messages(msgs)
                if len(ids) <= 512:
                    break
            p = chat_held.prompt_ids(msgs)
            items.append((p, ids[len(p):len(ids) - 2]))  # the reply and its <|im_end|>, no trailing "\n"
    return items


def probe(model, items):
    model.eval()
    ok = 0
    with torch.no_grad():
        for p, ans in items:
            x = torch.tensor([p + ans[:-1]])
            pred = forward(model, x, torch.zeros_like(x))[0, len(p) - 1:].argmax(-1).tolist()
            ok += int(pred == ans)
    return ok / len(items)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "engram-tiny.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--data", default=os.path.join(ROOT, "build-chatmodel", "data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build-chatmodel", "run"))
    ap.add_argument("--log", default=None, help="CSV log (default OUT/log.csv)")
    ap.add_argument("--grow", type=int, default=0)
    ap.add_argument("--init", default=None,
                    help="start from the weights of a train_chat.py checkpoint instead of --gguf (a pilot "
                         "measurement, e.g. new data on the shipped run's last.pt; fresh optimizer, step 0)")
    ap.add_argument("--steps", type=int, default=2400, help="horizon of the cosine decay")
    ap.add_argument("--minutes", type=float, default=80.0,
                    help="stop (with a checkpoint) after this many minutes of this process")
    ap.add_argument("--stop-at", type=int, default=None, help="save and exit after this step")
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--lr-min", type=float, default=6e-5)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--lm-share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1919)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--probe-every", type=int, default=100)
    ap.add_argument("--ckpt-minutes", type=float, default=4.0)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    ap.add_argument("--keep-every", type=int, default=0, help="also keep OUT/stepN.pt every N steps")
    ap.add_argument("--data-version", type=int, default=4,
                    help="chat_data.ChatGen version: 3 replays session 3's data (the shipped model), 4 its grammar")
    ap.add_argument("--probe-split", choices=["valid", "heldout"], default="valid")
    ap.add_argument("--augment-from", type=int, default=10 ** 9,
                    help="from this step on, training questions/statements also take chat_data's extra wordings")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    log = a.log or os.path.join(a.out, "log.csv")

    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    sents, toks = load_split(a.data, "train", sp, cache_tokens=True)
    held_sents, _ = load_split(a.data, "heldout", sp)
    chat = ChatGen(sp, sents, "train", a.data_version)
    lm = TaskGen(sp, toks, sents, sp.get_piece_size())
    # the logged probe is on the validation split (training names, values, wordings; other seeds):
    # the held-out split is only ever measured by chat_eval.py at the end
    probe_items = probe_set(ChatGen(sp, held_sents if a.probe_split == "heldout" else sents, a.probe_split,
                                    a.data_version))
    # the arguments that shape the run's numbers; a resume must use the same ones
    # (--threads too changes the sums' order, so keep it as well for a bit-identical resume)
    shape = {k: getattr(a, k) for k in ("grow", "steps", "lr", "lr_min", "warmup", "batch", "ctx", "lm_share", "seed",
                                        "log_every", "probe_every", "probe_split", "augment_from", "data_version",
                                        "init")}

    ckpt = os.path.join(a.out, "last.pt")
    if a.resume and os.path.exists(ckpt):
        ck = torch.load(ckpt, map_location="cpu")
        cfg = Config(**ck["cfg"])
        model = Model(cfg)
        model.load_state_dict(ck["model"])
        step, elapsed, tokens = ck["state"]["step"], ck["state"]["elapsed"], ck["state"]["tokens"]
        old = ck.get("shape")
        if old is not None and old != shape:
            diff = {k: (old.get(k), shape[k]) for k in shape if old.get(k) != shape[k]}
            sys.exit(f"{ckpt}: the run was started with other arguments (checkpoint, now): {diff}")
        print(f"resumed at step {step}", flush=True)
        with open(log) as f:
            lines = f.read().splitlines()
        with open(log, "w") as f:
            f.write("\n".join([lines[0]] + [l for l in lines[1:] if int(l.split(",")[0]) <= step]) + "\n")
    elif a.init:
        ck0 = torch.load(a.init, map_location="cpu")
        model = Model(Config(**ck0["cfg"]))
        model.load_state_dict(ck0["model"])
        cfg = model.cfg
        ck, step, elapsed, tokens = None, 0, 0.0, 0
        with open(log, "w") as f:
            f.write(",".join(LOG_FIELDS) + "\n")
            f.write(f"0,0,,,,{probe(model, probe_items):.4f},0,0,0\n")
    else:
        model, cfg = model_from_gguf(a.gguf)
        if a.grow:
            n_old = cfg.n_layer
            cfg = Config(**dict(cfg.to_dict(), n_layer=n_old + a.grow))
            grown = Model(cfg)
            missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
            assert not unexpected and all(k.startswith("blocks.") for k in missing), (missing, unexpected)
            grow_identity(grown, n_old)
            model = grown
        extend_vocab(model, 2)
        cfg = model.cfg
        ck, step, elapsed, tokens = None, 0, 0.0, 0
        with open(log, "w") as f:
            f.write(",".join(LOG_FIELDS) + "\n")
            f.write(f"0,0,,,,{probe(model, probe_items):.4f},0,0,0\n")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    if ck is not None:
        opt.load_state_dict(ck["opt"])
    print(f"params {sum(p.numel() for p in model.parameters())} cfg {cfg}", flush=True)

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        t = min(1.0, (s - a.warmup) / max(1, a.steps - a.warmup))
        return a.lr_min + 0.5 * (a.lr - a.lr_min) * (1 + math.cos(math.pi * t))

    def save(path=ckpt):
        tmp = path + ".tmp"
        st = dict(step=step, elapsed=time.time() - t0, tokens=tokens, acc=acc, t_log_ago=time.time() - t_log)
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), cfg=cfg.to_dict(), state=st, shape=shape), tmp)
        os.replace(tmp, path)

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # finish the step under way, save, exit
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    t0 = time.time() - elapsed
    last_ck, t_log = time.time(), time.time()
    acc = dict(loss=[], chat=[], lm=[], tok=0)
    if ck is not None and "acc" in ck["state"]:  # the log row under way when the checkpoint was taken
        acc = ck["state"]["acc"]
        t_log = time.time() - ck["state"]["t_log_ago"]
    t_start = time.time()  # --minutes counts this process's time, so that a resumed run gets its own budget
    while step < a.steps and (time.time() - t_start) / 60 < a.minutes:
        if (a.stop_at is not None and step >= a.stop_at) or stop:
            break
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        x, seg, sc, is_chat = make_batch(chat, lm, a.seed, step, a.batch, a.ctx, a.lm_share, step >= a.augment_from)
        model.train()
        lg = forward(model, x[:, :-1], seg[:, :-1])
        ce = F.cross_entropy(lg.reshape(-1, lg.size(-1)), x[:, 1:].reshape(-1), reduction="none").view(x.size(0), -1)
        loss = ce[sc].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += x.numel()
        acc["tok"] += x.numel()
        acc["loss"].append(loss.item())
        cmask = sc & is_chat[:, None]
        # chat loss: assistant tokens of chat samples only (not the Brown tail of a packed row)
        if cmask.any():
            ce_d = ce.detach()
            acc["chat"].append(ce_d[cmask & (seg[:, 1:] < seg.max(1, keepdim=True).values)].mean().item())
        lmask = sc & ~is_chat[:, None]
        if lmask.any():
            acc["lm"].append(ce.detach()[lmask].mean().item())
        if step % a.log_every == 0:
            pr = f"{probe(model, probe_items):.4f}" if step % a.probe_every == 0 else ""
            now = time.time()
            m = lambda v: f"{np.mean(v):.5f}" if v else ""  # noqa: E731
            row = [step, tokens, m(acc["loss"]), m(acc["chat"]), m(acc["lm"]), pr, f"{lr:.3e}",
                   f"{now - t0:.1f}", f"{acc['tok'] / (now - t_log):.0f}"]
            with open(log, "a") as f:
                f.write(",".join(map(str, row)) + "\n")
            print(" ".join(f"{k}={v}" for k, v in zip(LOG_FIELDS, row)), flush=True)
            acc, t_log = dict(loss=[], chat=[], lm=[], tok=0), time.time()
        if a.keep_every and step % a.keep_every == 0:
            save(os.path.join(a.out, f"step{step}.pt"))
        if time.time() - last_ck > a.ckpt_minutes * 60:
            save()
            last_ck = time.time()
    save()
    why = f" (signal {stop[0]})" if stop else ""
    print(f"{'stopped' if step < a.steps else 'done'}: step {step}, {(time.time() - t0) / 60:.1f} min{why}", flush=True)


if __name__ == "__main__":
    main()

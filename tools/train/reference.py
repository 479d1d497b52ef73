#!/usr/bin/env python3
"""Pure-PyTorch reference for models/engram-tiny.gguf, reading the GGUF itself.

The forward pass here is written independently of tools/train/model.py (RoPE via complex
multiplication of interleaved pairs, GQA by index mapping), so it checks the export:
  - weights come from the GGUF (tools/py/gguf_reader.py), dequantised F16 -> float32,
  - computation in float32 (float64 where noted),
  - tokenisation with the SentencePiece model whose pieces must equal tokenizer.ggml.tokens.

Subcommands (all write into tests/fixtures/shipped/ unless --out-dir is given):
  check       compare logits with a training checkpoint (export sanity, RoPE layout)
  greedy      greedy.json: 20 held-out prompts of 64 tokens (BOS included) + 32 greedy tokens
  perplexity  perplexity.json: llama-perplexity protocol + bigram baseline
  passkey     passkey.json: 200 trials IB wording, unseen wording, multi-key
  all         everything above

Usage: /usr/bin/python3 tools/train/reference.py all [--model models/engram-tiny.gguf]
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "py"))
from gguf_reader import GGUFReader  # noqa: E402

BOS = 1


class RefModel:
    def __init__(self, path):
        r = GGUFReader(path)
        m = r.metadata
        assert m["general.architecture"] == "llama"
        self.meta = m
        self.n_vocab = int(m["llama.vocab_size"]) if "llama.vocab_size" in m else len(m["tokenizer.ggml.tokens"])
        self.n_embd = int(m["llama.embedding_length"])
        self.n_layer = int(m["llama.block_count"])
        self.n_head = int(m["llama.attention.head_count"])
        self.n_head_kv = int(m["llama.attention.head_count_kv"])
        self.n_ctx = int(m["llama.context_length"])
        self.eps = float(m["llama.attention.layer_norm_rms_epsilon"])
        self.base = float(m["llama.rope.freq_base"])
        self.hd = self.n_embd // self.n_head
        self.n_rot = int(m.get("llama.rope.dimension_count", self.hd))
        self.t = {n: torch.from_numpy(r.tensor(n).copy()) for n in r.tensor_order}
        self.tokens = m["tokenizer.ggml.tokens"]
        if "output.weight" not in self.t:
            self.t["output.weight"] = self.t["token_embd.weight"]

    def rms(self, x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):
        # x [T, H, hd]; rotate interleaved pairs (x[2i], x[2i+1]) by pos * base^(-2i/n_rot)
        T, H, D = x.shape
        i = torch.arange(0, self.n_rot, 2, dtype=torch.float64)
        theta = pos[:, None].double() * self.base ** (-i / self.n_rot)  # [T, n_rot/2]
        rot = torch.polar(torch.ones_like(theta), theta).to(torch.complex64)  # [T, n_rot/2]
        xr = x[..., : self.n_rot].reshape(T, H, self.n_rot // 2, 2)
        xc = torch.view_as_complex(xr.contiguous()) * rot[:, None, :]
        out = torch.view_as_real(xc).reshape(T, H, self.n_rot)
        return torch.cat([out, x[..., self.n_rot:]], -1)

    @torch.no_grad()
    def forward(self, ids):
        """ids: list of token ids (one sequence) -> float32 logits [T, n_vocab]"""
        return self.forward_batch([ids])[0][: len(ids)]

    @torch.no_grad()
    def forward_batch(self, seqs):
        """seqs: list of token-id lists, right-padded internally (causal attention makes the padding
        invisible to real positions) -> float32 logits [B, Tmax, n_vocab]"""
        B, T = len(seqs), max(len(s) for s in seqs)
        ids = torch.tensor([list(s) + [0] * (T - len(s)) for s in seqs])
        t = self.t
        x = t["token_embd.weight"][ids]  # [B, T, C]
        pos = torch.arange(T)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        group = self.n_head // self.n_head_kv
        kv_of = torch.arange(self.n_head) // group
        for L in range(self.n_layer):
            p = f"blk.{L}."
            h = self.rms(x, t[p + "attn_norm.weight"])
            q = (h @ t[p + "attn_q.weight"].T).view(B * T, self.n_head, self.hd)
            k = (h @ t[p + "attn_k.weight"].T).view(B * T, self.n_head_kv, self.hd)
            v = (h @ t[p + "attn_v.weight"].T).view(B, T, self.n_head_kv, self.hd)
            bpos = pos.repeat(B)
            q = self.rope(q, bpos).view(B, T, self.n_head, self.hd)
            k = self.rope(k, bpos).view(B, T, self.n_head_kv, self.hd)
            k, v = k[:, :, kv_of], v[:, :, kv_of]  # query head h reads kv head h // group
            s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.hd)
            s = s.masked_fill(~causal, float("-inf"))
            a = torch.softmax(s, -1)
            o = torch.einsum("bhqk,bkhd->bqhd", a, v).reshape(B, T, self.n_embd)
            x = x + o @ t[p + "attn_output.weight"].T
            h = self.rms(x, t[p + "ffn_norm.weight"])
            g = h @ t[p + "ffn_gate.weight"].T
            u = h @ t[p + "ffn_up.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ t[p + "ffn_down.weight"].T
        x = self.rms(x, t["output_norm.weight"])
        return x @ t["output.weight"].T


def load_sp(model, path):
    sp = spm.SentencePieceProcessor(model_file=path)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert pieces == list(model.tokens), "tokenizer model and GGUF vocabulary differ"
    return sp


def heldout_text():
    with open(os.path.join(ROOT, "build", "data", "heldout.txt"), encoding="utf-8") as f:
        return f.read()


def heldout_sentences():
    sys.path.insert(0, HERE)
    from tasks import split_sentences
    out = []
    for doc in heldout_text().split("\n\n"):
        out += split_sentences(doc)
    return out


# ---------------------------------------------------------------- check
def cmd_check(model, sp, a):
    sys.path.insert(0, HERE)
    from model import Config, Model
    ck = torch.load(a.ckpt, map_location="cpu")
    m = Model(Config(**ck["cfg"]))
    m.load_state_dict(ck["model"])
    m.eval()
    ids = [BOS] + sp.encode(heldout_text()[:3000])[:255]
    with torch.no_grad():
        l_train = m(torch.tensor([ids]))[0]
    l_ref = model.forward(ids)
    diff = (l_train - l_ref).abs().max().item()
    agree = (l_train.argmax(-1) == l_ref.argmax(-1)).float().mean().item()
    res = dict(checkpoint=os.path.relpath(a.ckpt, ROOT), tokens=len(ids), max_abs_logit_diff=diff,
               argmax_agreement=agree, note="difference is F16 rounding of the exported weights")
    print(json.dumps(res))
    return res


# ---------------------------------------------------------------- greedy
def cmd_greedy(model, sp, a):
    stream = sp.encode(heldout_text())
    n_prompts, plen, gen = 20, 64, 32
    out = []
    for i in range(n_prompts):
        s = i * (len(stream) - plen) // n_prompts
        prompt = [BOS] + stream[s:s + plen - 1]
        ids = list(prompt)
        margins = []
        for _ in range(gen):
            logits = model.forward(ids)[-1]
            top = torch.topk(logits, 2)
            margins.append(round(float(top.values[0] - top.values[1]), 5))
            ids.append(int(top.indices[0]))
        out.append(dict(prompt=prompt, continuation=ids[plen:], min_top2_margin=min(margins),
                        top2_margins=margins, prompt_text=sp.decode(prompt[1:]), continuation_text=sp.decode(ids[plen:])))
        print(f"[{i}] ...{sp.decode(prompt[-12:])!r} -> {sp.decode(ids[plen:])!r}", flush=True)
    res = dict(model="models/engram-tiny.gguf", dtype="float32 compute, F16 weights as stored",
               source="held-out Brown stream: build/data/heldout.txt (tools/train/prepare_data.py) tokenised as one "
                      "string with SentencePiece (dummy prefix, no BOS); prompt i = [BOS] + stream[s:s+63], "
                      "s = i*(len(stream)-64)//20",
               n_prompt_tokens=plen, n_generate=gen, sampling="greedy (argmax), full recompute, full attention",
               top2_margin_note="logit gap between best and second-best token at each generated step; "
                                "steps with tiny gaps may legitimately flip under a different summation order",
               prompts=out)
    return res


# ---------------------------------------------------------------- perplexity
def llama_perplexity(model, tokens, n_ctx):
    """llama-perplexity: tokens (with leading BOS) cut into floor(len/n_ctx) chunks; each chunk's first
    token replaced by BOS; logits at positions first=n_ctx/2 .. n_ctx-2 score the next token."""
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    nll, count, per_chunk, scored = 0.0, 0, [], []
    bs = 4
    for c0 in range(0, n_chunk, bs):
        chunks = []
        for c in range(c0, min(n_chunk, c0 + bs)):
            chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
            chunk[0] = BOS
            chunks.append(chunk)
        all_logits = model.forward_batch(chunks)
        for j, c in enumerate(range(c0, c0 + len(chunks))):
            start = c * n_ctx
            lp = torch.log_softmax(all_logits[j, first:n_ctx - 1].double(), -1)
            tgt = torch.tensor(tokens[start + first + 1:start + n_ctx])
            v = -lp[torch.arange(len(tgt)), tgt]
            nll += v.sum().item()
            count += len(tgt)
            per_chunk.append(round(v.mean().item(), 6))
            scored.append((start + first + 1, start + n_ctx))
    return math.exp(nll / count), nll / count, count, per_chunk, scored


def bigram_fit(train_tokens, V, lam):
    a = np.asarray(train_tokens[:-1], dtype=np.int64)
    b = np.asarray(train_tokens[1:], dtype=np.int64)
    counts = np.bincount(a * V + b, minlength=V * V).reshape(V, V).astype(np.float64)
    uni = (np.bincount(np.asarray(train_tokens), minlength=V) + 1.0)
    uni /= uni.sum()
    row = counts.sum(1, keepdims=True)
    cond = np.divide(counts, np.maximum(row, 1.0))
    # rows never seen as context fall back to the unigram entirely
    lam_row = np.where(row > 0, lam, 0.0)
    return lam_row * cond + (1 - lam_row) * uni[None, :]


def bigram_nll(P, tokens, ranges):
    tot, n = 0.0, 0
    for s, e in ranges:
        for j in range(s, e):
            tot -= math.log(P[tokens[j - 1], tokens[j]])
            n += 1
    return tot / n, n


def cmd_perplexity(model, sp, a):
    res = dict(model="models/engram-tiny.gguf", n_ctx=a.ctx,
               protocol="llama.cpp llama-perplexity: tokens = tokenize(text, add_bos=true); n_chunk = len(tokens) // n_ctx; "
                        "chunk c = tokens[c*n_ctx:(c+1)*n_ctx] with its first token replaced by BOS; full causal attention "
                        "inside the chunk; logits at positions n_ctx/2 .. n_ctx-2 score the following token "
                        "(n_ctx/2 - 1 tokens per chunk); PPL = exp(sum NLL / count); log-softmax in float64",
               bigram="interpolated bigram fit on the training split's token stream (build/data/train.txt tokenised as one "
                      "string): P(b|a) = lam*c(a,b)/c(a) + (1-lam)*Punigram_add1(b); lam tuned on the last 10% of the "
                      "training stream (fit on the first 90%), then refit on all of it; scored on the same tokens, "
                      "context = previous token of the stream",
               sets={})
    with open(os.path.join(ROOT, "build", "data", "train.txt"), encoding="utf-8") as f:
        train_tokens = sp.encode(f.read())
    V = model.n_vocab
    cut = int(len(train_tokens) * 0.9)
    best = None
    for lam in [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]:
        P = bigram_fit(train_tokens[:cut], V, lam)
        dev = train_tokens[cut:]
        d = np.asarray(dev)
        nll = -np.log(P[d[:-1], d[1:]]).mean()
        if best is None or nll < best[1]:
            best = (lam, nll)
    lam = best[0]
    P = bigram_fit(train_tokens, V, lam)
    res["bigram_lambda"] = lam
    sets = [("heldout_sample", os.path.join(ROOT, "data", "heldout_sample.txt"),
             "data/heldout_sample.txt (committed; first held-out documents, joined by a blank line)"),
            ("heldout_full", os.path.join(ROOT, "build", "data", "heldout.txt"),
             "build/data/heldout.txt (all 50 held-out documents joined by a blank line; regenerate with tools/train/prepare_data.py)")]
    for name, path, desc in sets:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        tokens = [BOS] + sp.encode(text)
        t0 = time.time()
        ppl, mnll, count, per_chunk, ranges = llama_perplexity(model, tokens, a.ctx)
        bnll, bn = bigram_nll(P, tokens, ranges)
        assert bn == count
        entry = dict(file=desc, n_tokens=len(tokens), n_chunks=len(per_chunk), scored_tokens=count,
                     ppl=ppl, mean_nll=mnll, per_chunk_mean_nll=per_chunk,
                     bigram_ppl=math.exp(bnll), bigram_mean_nll=bnll, seconds=round(time.time() - t0, 1))
        if name == "heldout_sample":
            entry["tokens"] = tokens
        res["sets"][name] = entry
        print(f"{name}: ppl {ppl:.4f} (bigram {math.exp(bnll):.4f}) over {count} tokens, {len(per_chunk)} chunks", flush=True)
    return res


# ---------------------------------------------------------------- passkey
WORDINGS = {
    "infinitebench": dict(
        intro="There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
              "I will quiz you about the important information there.",
        needle="The pass key is {k}. Remember it. {k} is the pass key.",
        question="What is the pass key? The pass key is"),
    "unseen_magic_number": dict(
        intro="A special magic number is hidden within the following text. Make sure to memorize it. "
              "I will quiz you about the magic number afterwards.",
        needle="One of the special magic numbers is: {k}.",
        question="What is the special magic number mentioned in the provided text? The special magic number is"),
}
MK_LABELS = ["the red door", "the blue box", "the green gate", "the north office", "the old safe", "the front desk",
             "the garden shed", "the main server", "the back room", "the west wing", "the small locker", "the car"]


def answers_correct(model, sp, items, bs=8):
    """batched answer_correct over [(prompt, key)] -> list of (correct, n_tokens, decoded prediction)"""
    out = []
    for i in range(0, len(items), bs):
        batch = items[i:i + bs]
        ps, fulls = [], []
        for prompt, key in batch:
            p = [BOS] + sp.encode(prompt)
            full = [BOS] + sp.encode(prompt + " " + key)
            assert full[:len(p)] == p
            ps.append(p)
            fulls.append(full)
        logits = model.forward_batch([f[:-1] for f in fulls])
        for p, full, lg in zip(ps, fulls, logits):
            pred = lg[len(p) - 1:len(full) - 1].argmax(-1).tolist()
            out.append((pred == full[len(p):], len(full), sp.decode(pred)))
    return out


def answer_correct(model, sp, prompt, key):
    """greedy exact match of the key: with teacher forcing, the argmax at every answer position must be
    the key's token (equivalent to greedy decoding producing the key's tokens first)"""
    p = [BOS] + sp.encode(prompt)
    full = [BOS] + sp.encode(prompt + " " + key)
    assert full[:len(p)] == p
    logits = model.forward(full[:-1])
    pred = logits[len(p) - 1:].argmax(-1).tolist()
    ans = full[len(p):]
    return pred == ans, len(full), sp.decode(pred)


def build_prompt(sents, rng, wording, key, depth, max_tokens, sp, extra_needles=None):
    start = int(rng.integers(0, len(sents)))
    fill = []
    j = start
    while sum(len(s) for s in fill) < 4.4 * max_tokens:
        fill.append(sents[j % len(sents)])
        j += 1
    while True:
        pos = int(round(depth * len(fill)))
        needle = wording["needle"].format(k=key)
        parts = [wording["intro"]] + fill[:pos] + [needle] + fill[pos:] + [wording["question"]]
        prompt = " ".join(parts)
        n = len(sp.encode(prompt + " " + key)) + 1
        if n <= max_tokens:
            return prompt
        fill = fill[:-1] if len(fill) > 1 else fill


def cmd_passkey(model, sp, a):
    sents = heldout_sentences()
    res = dict(model="models/engram-tiny.gguf", attention="full (all tokens within the 512-token context)",
               filler="held-out Brown sentences (build/data/heldout.txt), consecutive from a random start",
               scoring="greedy exact match of all key tokens", tests={})
    N = a.trials
    for wname, w in WORDINGS.items():
        rng = np.random.Generator(np.random.PCG64([2024, len(wname)]))
        trials, ok, items = [], 0, []
        for i in range(N):
            key = str(rng.integers(10000, 100000))
            depth = i / (N - 1)
            items.append((build_prompt(sents, rng, w, key, depth, a.ctx, sp), key))
        for i, ((prompt, key), (c, n, got)) in enumerate(zip(items, answers_correct(model, sp, items))):
            ok += c
            trials.append(dict(depth=round(i / (N - 1), 4), key=key, n_tokens=n, correct=bool(c), got=got))
        by_depth = {}
        for b in range(10):
            sel = [t for t in trials if min(9, int(t["depth"] * 10)) == b]
            by_depth[f"{b * 10}-{b * 10 + 10}%"] = round(sum(t["correct"] for t in sel) / max(1, len(sel)), 4)
        res["tests"][wname] = dict(wording=w, trials=N, accuracy=ok / N, by_depth=by_depth,
                                   n_tokens_min=min(t["n_tokens"] for t in trials),
                                   n_tokens_max=max(t["n_tokens"] for t in trials), details=trials,
                                   seen_in_training=(wname == "infinitebench"))
        print(f"passkey {wname}: {ok}/{N} = {ok / N:.3f}", flush=True)
    # multi-key: 4 labelled keys at random depths, one queried
    rng = np.random.Generator(np.random.PCG64([2024, 99]))
    ok, trials, items, meta = 0, [], [], []
    for i in range(N):
        labs = [str(x) for x in rng.choice(MK_LABELS, 4, replace=False)]
        keys = [str(rng.integers(10000, 100000)) for _ in labs]
        q = int(rng.integers(0, 4))
        start = int(rng.integers(0, len(sents)))
        fill = [sents[(start + j) % len(sents)] for j in range(40)]
        depths = sorted(rng.random(4))
        while True:
            cuts = [int(round(d * len(fill))) for d in depths]
            parts, last = [WORDINGS["infinitebench"]["intro"]], 0
            for c_, lab, k in zip(cuts, labs, keys):
                parts += fill[last:c_] + [f"The pass key for {lab} is {k}."]
                last = c_
            parts += fill[last:] + [f"What is the pass key for {labs[q]}? The pass key for {labs[q]} is"]
            prompt = " ".join(parts)
            if len(sp.encode(prompt + " " + keys[q])) + 1 <= a.ctx:
                break
            fill = fill[:-1]
        items.append((prompt, keys[q]))
        meta.append((keys, q))
    for (keys, q), (c, n, got) in zip(meta, answers_correct(model, sp, items)):
        ok += c
        trials.append(dict(keys=keys, query=q, n_tokens=n, correct=bool(c), got=got,
                           answered_other_key=got.strip() in [k for j, k in enumerate(keys) if j != q]))
    res["tests"]["multikey_4"] = dict(format="The pass key for {label} is {k}. (x4, random depths) ... "
                                             "What is the pass key for {label}? The pass key for {label} is",
                                      trials=N, accuracy=ok / N,
                                      answered_a_distractor=sum(t["answered_other_key"] for t in trials) / N,
                                      details=trials, seen_in_training="format yes (multikey task), these exact prompts no")
    print(f"passkey multikey_4: {ok}/{N} = {ok / N:.3f}", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["check", "greedy", "perplexity", "passkey", "all"])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "engram-tiny.gguf"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "run", "final.pt"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "tests", "fixtures", "shipped"))
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = RefModel(a.model)
    sp = load_sp(model, a.tokenizer)
    os.makedirs(a.out_dir, exist_ok=True)
    todo = ["check", "greedy", "perplexity", "passkey"] if a.cmd == "all" else [a.cmd]
    for c in todo:
        t0 = time.time()
        r = globals()["cmd_" + c](model, sp, a)
        r["command"] = f"/usr/bin/python3 tools/train/reference.py {c}"
        r["seconds"] = round(time.time() - t0, 1)
        with open(os.path.join(a.out_dir, f"{c}.json"), "w") as f:
            json.dump(r, f, indent=1 if c != "perplexity" else None)
        print(f"{c}: wrote {os.path.join(a.out_dir, c + '.json')} in {r['seconds']} s", flush=True)


if __name__ == "__main__":
    main()

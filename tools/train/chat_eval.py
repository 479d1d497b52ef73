#!/usr/bin/env python3
"""Evaluate engram-tiny-chat on issue 19's acceptance tasks: held-out names, values and wordings
(chat_data.py's held-out split) and held-out Brown text; greedy decoding; fixed seeds.

  recall     (acceptance 1) facts stated earlier in the conversation, one question at the end;
             right when the reply names the fact's (last, corrected) value
  memory     (acceptance 2) 5 memories in the system prompt; when one holds the answer: the reply
             names the value / cites the right [i]; when none does: it abstains ("don't know")
  extract    (acceptance 3) JSON of the memories of a numbered conversation; recall = stated facts
             whose value some summary names; precision = summaries that are true to the
             conversation (name a stated fact's current value and, for facts with a slot such as
             "sister", that slot); decoded greedily under the JSON-schema constraint (ExtractionConstraint;
             extract_free: the same conversations decoded without it, a diagnostic)
  addmerge   (acceptance 4) Add() or Merge(i, ...): the decision and the index
  passkey    (acceptance 6) a 5-digit key in 400 tokens of held-out Brown inside a user message

Usage:
  /usr/bin/python3 tools/train/chat_eval.py [--model models/engram-tiny-chat.gguf | --ckpt CKPT]
        [--scale 1.0] [--out tools/train/logs/engram-tiny-chat-eval.json] [--tasks recall,memory,...]
"""
import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from chat_data import CATS, ChatGen  # noqa: E402
from model import Config, Model, apply_rope, rope_tables  # noqa: E402
from tasks import split_sentences  # noqa: E402


def load_model(a):
    if a.ckpt:
        ck = torch.load(a.ckpt, map_location="cpu")
        model = Model(Config(**ck["cfg"]))
        model.load_state_dict(ck["model"])
    else:
        from finetune_text import model_from_gguf
        model, _ = model_from_gguf(a.model)
    model.eval()
    return model


class Generator:
    """greedy decoding with a key/value cache over model.Model's weights"""

    def __init__(self, model, im_end, max_ctx=1024):
        self.m = model
        self.cfg = model.cfg
        self.im_end = im_end
        self.cos, self.sin = rope_tables(self.cfg, max_ctx)

    @torch.no_grad()
    def step(self, ids, cache, pos):
        cfg, m = self.cfg, self.m
        hd = cfg.dim // cfg.n_head
        T = len(ids)
        x = m.tok(torch.tensor([ids]))
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        for i, b in enumerate(m.blocks):
            h = b.attn_norm(x)
            q = apply_rope(b.wq(h).view(1, T, cfg.n_head, hd).transpose(1, 2), cos, sin)
            k = apply_rope(b.wk(h).view(1, T, cfg.n_head_kv, hd).transpose(1, 2), cos, sin)
            v = b.wv(h).view(1, T, cfg.n_head_kv, hd).transpose(1, 2)
            if i in cache:
                k = torch.cat([cache[i][0], k], 2)
                v = torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
            rep = cfg.n_head // cfg.n_head_kv
            kk, vv = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            att = (q @ kk.transpose(-1, -2)) / math.sqrt(hd)
            S = kk.size(2)
            mask = torch.ones(T, S, dtype=torch.bool).triu(S - T + 1)
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            o = (att @ vv).transpose(1, 2).reshape(1, T, cfg.dim)
            x = x + b.wo(o)
            h = b.ffn_norm(x)
            x = x + b.w_down(F.silu(b.w_gate(h)) * b.w_up(h))
        return m.out(m.norm(x))[0, -1]

    def greedy(self, prompt, max_new=48):
        cache = {}
        logits = self.step(prompt, cache, 0)
        out, pos = [], len(prompt)
        for _ in range(max_new):
            t = int(logits.argmax())
            out.append(t)
            if t == self.im_end or pos + 1 >= self.cos.size(0):
                break
            logits = self.step([t], cache, pos)
            pos += 1
        return out


class ExtractionConstraint:
    """The JSON-schema constraint of extraction (tools/train/extract_schema.json, the schema the
    server's response_format or `engram run --json-schema` takes) as a character automaton: whitespace between structural tokens,
    strings with JSON escapes, integers; keys in the schema's order (as a JSON-schema grammar engine
    generates them). Greedy decoding under it takes, at every step, the most likely token whose text
    keeps the reply a prefix of some valid document; <|im_end|> only once the document is complete."""

    WS = " \t\n\r"

    def __init__(self, sp, im_end):
        self.sp, self.im_end = sp, im_end
        self.start = ("lit", "{", "K1", True)

    def resolve(self, name):
        lit = lambda s, n: ("lit", s, n, True)  # noqa: E731
        table = dict(
            K1=lit('"extracted_memories"', "C1"), C1=lit(":", "A1"), A1=lit("[", "ITEMS0"),
            ITEMS0=("choice", {"]": "CLOSE", "{": "I_SUM"}, True), CLOSE=lit("}", "END"),
            I_SUM=lit('"summary"', "I_C1"), I_C1=lit(":", "I_STR"), I_STR=lit('"', "I_STRBODY"),
            I_STRBODY=("str", "I_COMMA", False), I_COMMA=lit(",", "I_REF"), I_REF=lit('"reference"', "I_C2"),
            I_C2=lit(":", "I_RA"), I_RA=lit("[", "R0"), R0=("choice", {"]": "I_END", "#": "R1"}, True),
            R1=("choice", {",": "RN", "]": "I_END"}, True), RN=("int", "R1", "", True), I_END=lit("}", "ITEMS1"),
            ITEMS1=("choice", {",": "ITEM_NEXT", "]": "CLOSE"}, True), ITEM_NEXT=lit("{", "I_SUM"),
            END=("end",))
        return table[name]

    def step(self, st, c):
        k = st[0]
        if k == "end":
            return st if c in self.WS else None
        if k == "lit":
            _, rest, nxt, ws_ok = st
            if ws_ok and c in self.WS:
                return st
            if c != rest[0]:
                return None
            return ("lit", rest[1:], nxt, False) if len(rest) > 1 else self.resolve(nxt)
        if k == "choice":
            _, opts, ws_ok = st
            if c in self.WS:
                return st
            if c in opts:
                return self.resolve(opts[c])
            if "#" in opts and (c.isdigit() or c == "-"):  # an integer begins
                return self.step(("int", opts["#"], "", False), c)
            return None
        if k == "int":
            _, nxt, digits, ws_ok = st
            if not digits:
                if ws_ok and c in self.WS:
                    return st
                if c == "-" or c.isdigit():
                    return ("int", nxt, c, False)
                return None
            if c.isdigit() and digits not in ("0", "-0"):
                return ("int", nxt, digits + c, False)
            if digits == "-":
                return None
            return self.step(self.resolve(nxt), c)  # the integer ended: c belongs to what follows
        if k == "str":
            _, nxt, esc = st
            if esc:
                return ("str", nxt, False) if c in '"\\/bfnrt' else None
            if c == "\\":
                return ("str", nxt, True)
            if c == '"':
                return self.resolve(nxt)
            return None if ord(c) < 0x20 else st
        raise ValueError(k)

    def run(self, text):
        st = self.start
        for c in text:
            st = self.step(st, c)
            if st is None:
                return None
        return st


def greedy_constrained(g, sp, prompt, con, max_new=300):
    """greedy decoding under ExtractionConstraint (see there)"""
    cache = {}
    logits = g.step(prompt, cache, 0)
    out, pos = [], len(prompt)
    n_vocab = sp.get_piece_size()
    for _ in range(max_new):
        order = torch.argsort(logits, descending=True).tolist()
        st = con.run(sp.decode(out)) if out else con.start
        pick = None
        for t in order[:2000]:
            if t == g.im_end:
                if st is not None and st[0] == "end":
                    pick = t
                    break
                continue
            if t >= n_vocab or sp.is_control(t) or sp.is_unknown(t):
                continue
            if con.run(sp.decode(out + [t])) is not None:
                pick = t
                break
        if pick is None:
            break
        out.append(pick)
        if pick == g.im_end or pos + 1 >= g.cos.size(0):
            break
        logits = g.step([pick], cache, pos)
        pos += 1
    return out


def decode(sp, ids, im_end):
    return sp.decode([i for i in ids if i < sp.get_piece_size()])


def mentions(text, value):
    return value.lower() in text.lower()


def eval_recall(g, chat, sp, n, rng, trials=None):
    ok = exact = 0
    for i in range(n):
        msgs, asked = chat.recall(rng, n_facts=int(rng.integers(1, 5)), n_questions=1)
        reply = decode(sp, g.greedy(chat.prompt_ids(msgs)), chat.im_end)
        ok += mentions(reply, asked[0].value)
        exact += reply.strip() == msgs[-1][1]
        if trials is not None:
            f = asked[0]
            trials.append(dict(cat=f.cat, slot=f.slot, value=f.value, ok=mentions(reply, f.value),
                               stated=[c for r, c in msgs[:-2] if r == "user" and mentions(c, f.value)],
                               question=msgs[-2][1], want=msgs[-1][1], reply=reply.strip(),
                               n_facts=sum(r == "user" for r, _ in msgs[:-2])))
    return dict(n=n, value_named=ok / n, exact_reply=exact / n)


def eval_memory(g, chat, sp, n, rng, trials=None):
    r = dict(n_holds=n, answer_right=0, cite_right=0, both_right=0, n_none=n // 2, abstained=0,
             false_abstain=0)
    for i in range(n):
        msgs, target, idx = chat.memory(rng, n_mem=5, holds=True)
        reply = decode(sp, g.greedy(chat.prompt_ids(msgs)), chat.im_end)
        cites = re.findall(r"\[(\d+)\]", reply)
        a, c = mentions(reply, target.value), bool(cites) and cites[0] == str(idx)
        r["answer_right"] += a
        r["cite_right"] += c
        r["both_right"] += a and c
        r["false_abstain"] += "don't know" in reply.lower()
        if trials is not None:
            trials.append(dict(holds=True, cat=target.cat, slot=target.slot, value=target.value, idx=idx,
                               value_ok=a, cite_ok=c, question=msgs[-2][1], memories=msgs[0][1].split("\n")[1:-1],
                               reply=reply.strip()))
    for i in range(n // 2):
        msgs, target, idx = chat.memory(rng, n_mem=5, holds=False)
        reply = decode(sp, g.greedy(chat.prompt_ids(msgs)), chat.im_end)
        r["abstained"] += "don't know" in reply.lower()
        if trials is not None:
            trials.append(dict(holds=False, cat=target.cat, slot=target.slot, ok="don't know" in reply.lower(),
                               question=msgs[-2][1], memories=msgs[0][1].split("\n")[1:-1], reply=reply.strip()))
    for k in ("answer_right", "cite_right", "both_right", "false_abstain"):
        r[k] /= n
    r["abstained"] /= n // 2
    return r


def summary_true(s, facts):
    s = s.lower()
    for f in facts:
        if f.value.lower() in s and (f.slot == "" or f.slot.lower() in s):
            return True
    return False


def eval_extract(g, chat, sp, n, rng, constrained=True, trials=None):
    con = ExtractionConstraint(sp, chat.im_end)
    stated = found = n_sum = true_sum = valid = exact_sum = 0
    for i in range(n):
        while True:
            msgs, facts, mems = chat.extract(rng, n_facts=int(rng.integers(1, 5)))
            ids = chat.encode_messages(msgs)[0]
            if len(ids) <= 512:
                break
        p = chat.prompt_ids(msgs)
        out = greedy_constrained(g, sp, p, con) if constrained else g.greedy(p, max_new=300)
        reply = decode(sp, out, chat.im_end)
        try:
            got = json.loads(reply)["extracted_memories"]
            sums = [str(m["summary"]) for m in got]
            valid += 1
        except (ValueError, KeyError, TypeError):
            sums = re.findall(r'"summary": "([^"]*)"', reply)
        stated += len(facts)
        found += sum(any(mentions(s, f.value) for s in sums) for f in facts)
        n_sum += len(sums)
        true_sum += sum(summary_true(s, facts) for s in sums)
        exact_sum += sum(s in {m["summary"] for m in mems} for s in sums)
        if trials is not None:
            trials.append(dict(conversation=msgs[1][1], want=[m["summary"] for m in mems], got=sums,
                               found=[dict(cat=f.cat, value=f.value, ok=any(mentions(s, f.value) for s in sums))
                                      for f in facts],
                               true=[summary_true(s, facts) for s in sums]))
    return dict(n=n, facts_stated=stated, fact_recall=found / max(1, stated), summaries=n_sum,
                summary_precision=true_sum / max(1, n_sum), summary_exact=exact_sum / max(1, n_sum),
                valid_json=valid / n, constrained=constrained)


def eval_extract_free(g, chat, sp, n, rng, trials=None):
    """extraction decoded without the constraint (a diagnostic)"""
    return eval_extract(g, chat, sp, n, rng, constrained=False, trials=trials)


def eval_addmerge(g, chat, sp, n, rng, trials=None):
    right = exact = 0
    for i in range(n):
        msgs, want = chat.addmerge(rng, n_mem=int(rng.integers(1, 6)), merge=i % 2 == 0)
        reply = decode(sp, g.greedy(chat.prompt_ids(msgs), max_new=40), chat.im_end).strip()
        head = lambda s: s if s.startswith("Add()") else s.split(",")[0]  # noqa: E731
        right += head(reply) == head(want)
        exact += reply == want
        if trials is not None:
            trials.append(dict(ok=head(reply) == head(want), user=msgs[1][1], want=want, reply=reply))
    return dict(n=n, decision_right=right / n, exact_reply=exact / n)


def eval_passkey(g, chat, sp, n, rng, n_tokens=400, trials=None):
    """the InfiniteBench wording (engram-tiny's, also trained here) and the held-out wording"""
    res = dict(n=n, filler_tokens=n_tokens)
    for ib in (True, False):
        ok, lens = 0, []
        for i in range(n):
            key = str(rng.integers(10000, 100000))
            msgs, key = chat.passkey(rng, n_tokens=n_tokens, key=key, depth=i / max(1, n - 1), ib=ib)
            p = chat.prompt_ids(msgs)
            lens.append(len(p))
            reply = decode(sp, g.greedy(p, max_new=16), chat.im_end)
            ok += key in reply
        name = "ib_wording" if ib else "heldout_wording"
        res[name] = dict(key_right=ok / n, mean_prompt_tokens=float(np.mean(lens)))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "engram-tiny-chat.gguf"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "engram-tiny.tokenizer.model"))
    ap.add_argument("--data", default=os.path.join(ROOT, "build-chatmodel", "data"))
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full trial counts")
    ap.add_argument("--tasks", default="recall,memory,extract,addmerge,passkey")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--split", choices=["heldout", "dev", "valid"], default="heldout",
                    help="heldout: the acceptance split, measured once at the end; dev: the dev split "
                         "(chat_data.DEV_* wordings and values, never trained on; held-out protocol, Brown "
                         "training text, its own seeds), for tuning decisions about unseen forms; valid: "
                         "training names, values and wordings, the Brown training text, other seeds than training")
    ap.add_argument("--data-version", type=int, default=4,
                    help="chat_data version of the valid split's conversations (3: the shipped model's)")
    ap.add_argument("--wordings", choices=["heldout", "train", "train-state", "train-ask"], default="heldout",
                    help="train: held-out values in the training wordings of facts and questions (a diagnostic "
                         "that separates copying unseen values from understanding unseen wordings); train-state: "
                         "training statement wordings with the split's questions; train-ask: the split's "
                         "statements with training questions")
    ap.add_argument("--replies", action="store_true", help="keep every trial (prompt parts, reply, right or not)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    with open(os.path.join(a.data, "heldout.txt"), encoding="utf-8") as f:
        sents = [s for doc in f.read().split("\n\n") for s in split_sentences(doc)]
    if a.split in ("valid", "dev"):
        with open(os.path.join(a.data, "train.txt"), encoding="utf-8") as f:
            sents = [s for doc in f.read().split("\n\n") for s in split_sentences(doc)]
    chat = ChatGen(sp, sents, a.split, a.data_version)
    chat.train_wordings = {"heldout": False, "train": True, "train-state": "state", "train-ask": "ask"}[a.wordings]
    model = load_model(a)
    g = Generator(model, chat.im_end)
    full = dict(recall=200, memory=200, extract=100, addmerge=200, passkey=100, extract_free=100)
    fns = dict(recall=eval_recall, memory=eval_memory, extract=eval_extract, addmerge=eval_addmerge,
               passkey=eval_passkey, extract_free=eval_extract_free)
    res = dict(model=os.path.relpath(a.ckpt or a.model, ROOT), split=a.split, decoding="greedy",
               fact_wordings=a.wordings)
    seed = {"heldout": 2026, "valid": 3031, "dev": 4047}[a.split]
    for t in a.tasks.split(","):
        # extract_free decodes the same conversations as extract
        rng = np.random.Generator(np.random.PCG64([seed, list(full).index(t.replace("_free", ""))]))
        t0 = time.time()
        trials = [] if a.replies else None
        res[t] = fns[t](g, chat, sp, max(2, int(full[t] * a.scale)), rng, trials=trials)
        res[t]["seconds"] = round(time.time() - t0, 1)
        print(t, json.dumps(res[t]), flush=True)
        if trials is not None:
            res[t]["trials"] = trials
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixtures for engram's `bert` text encoder (src/model/bert_encoder.cpp) and WordPiece
tokenizer (src/tokenizer/wordpiece.cpp).

Builds small random-weight BERT encoders in plain PyTorch (float64), writes them as GGUF in
the layout llama.cpp's converter gives BERT/MiniLM/bge models (architecture `bert`, tensors
token_embd / token_types / position_embd / token_embd_norm / blk.N.attn_{q,k,v,output}
(+bias) / attn_output_norm / ffn_up / ffn_down (+bias) / layer_output_norm, tokenizer model
`bert` with word-initial pieces prefixed by U+2581 and "##" pieces stored without "##"), and
tokenizes a handful of texts with the WordPiece written below (BERT's basic tokenizer: clean,
split CJK, whitespace split, lowercase + strip accents, punctuation split; then greedy
longest-match-first with "##" continuations, [UNK] for a word that does not split). Writes,
per model NAME under tests/fixtures/golden/:
  NAME.gguf       the model
  NAME.json       texts, token ids, pooled L2-normalised embeddings (float64 reference
                  rounded to float32 in the JSON), pooling, tolerance, self-checks

    /usr/bin/python3 tools/py/bert_reference.py
"""

import argparse
import json
import math
import os
import sys
import unicodedata

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HP = dict(n_embd=32, n_head=4, n_layer=2, n_ff=64, n_ctx=40, n_types=2, eps=1e-12)

# ---------------------------------------------------------------------------------------------
# Vocabulary (Hugging Face vocab.txt order; converted to llama.cpp's phantom-space form on write)
# ---------------------------------------------------------------------------------------------
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "my", "is", "and", "to", "of", "in", "i", "you", "it", "do", "like",
         "sister", "lives", "live", "paris", "cafe", "coffee", "tea", "dog", "cat", "name",
         "un", "want", "play", "tennis", "on", "sunday", "s", "t", "remember", "that", "hello",
         "world", "new", "york", "emb", "memory", "naive", "resume", "uber", "zurich", "price", "today"]
CONTINUATIONS = ["##s", "##ed", "##ing", "##ly", "##able", "##er", "##aff", "##e", "##ff",
                 "##ding", "##ize", "##9", "##0"]
CJK = ["中", "文", "字", "日", "本"]
GREEK = ["αβγ"]


def build_vocab():
    # BERT's own layout: [PAD] 0, [unused0..98] 1-99, [UNK] 100, [CLS] 101, [SEP] 102,
    # [MASK] 103 (llama.cpp assumes 100-102 when a file names no [CLS]/[SEP]).
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # every printable ASCII character, word-initially and as a continuation
    for c in [chr(i) for i in range(33, 127)]:
        if c.isupper():
            continue
        vocab.append(c)
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab.append("##" + c)
    for w in WORDS + CONTINUATIONS + CJK + GREEK:
        if w not in vocab:
            vocab.append(w)
    return vocab


# ---------------------------------------------------------------------------------------------
# WordPiece (BERT's basic + wordpiece tokenizers, written from their description)
# ---------------------------------------------------------------------------------------------
def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        cleaned.append(" " if is_whitespace(ch) else ch)
    spaced = []
    for ch in cleaned:
        if is_cjk(ord(ch)):
            spaced += [" ", ch, " "]
        else:
            spaced.append(ch)
    words = []
    for token in "".join(spaced).split():
        token = "".join(c.lower() for c in token)  # per character, as the Rust tokenizer does
        token = "".join(c for c in unicodedata.normalize("NFD", token)
                        if unicodedata.category(c) != "Mn")
        cur = ""
        for ch in token:
            if is_punctuation(ch):
                if cur:
                    words.append(cur)
                cur = ""
                words.append(ch)
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab_ids, unk_id, max_chars=100):
    if len(word) > max_chars:
        return [unk_id]
    out = []
    start = 0
    while start < len(word):
        end = len(word)
        found = None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab_ids and not (piece.startswith("[") and piece.endswith("]")):
                found = vocab_ids[piece]
                break
            end -= 1
        if found is None:
            return [unk_id]
        out.append(found)
        start = end
    return out


def tokenize(text, vocab_ids, n_ctx):
    ids = [vocab_ids["[CLS]"]]
    for w in basic_tokenize(text):
        ids += wordpiece(w, vocab_ids, vocab_ids["[UNK]"])
    ids.append(vocab_ids["[SEP]"])
    truncated = len(ids) > n_ctx
    if truncated:
        ids = ids[:n_ctx - 1] + [vocab_ids["[SEP]"]]
    return ids, truncated


def phantom(tok):
    """llama.cpp's converter: [..] kept, "##x" -> "x", any other piece -> U+2581 + piece."""
    if tok.startswith("[") and tok.endswith("]"):
        return tok
    if tok.startswith("##"):
        return tok[2:]
    return "\u2581" + tok


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
def make_weights(rng, n_vocab):
    E, F, L, C, T = HP["n_embd"], HP["n_ff"], HP["n_layer"], HP["n_ctx"], HP["n_types"]

    def normal(shape, std):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    W = {
        "token_embd.weight": normal((n_vocab, E), 0.5),
        "token_types.weight": normal((T, E), 0.5),
        "position_embd.weight": normal((C, E), 0.5),
        "token_embd_norm.weight": (1.0 + normal((E,), 0.1)),
        "token_embd_norm.bias": normal((E,), 0.1),
    }
    for l in range(L):
        p = f"blk.{l}."
        for t in ["attn_q", "attn_k", "attn_v", "attn_output"]:
            W[p + t + ".weight"] = normal((E, E), 0.4 / math.sqrt(E) * 3)
            W[p + t + ".bias"] = normal((E,), 0.1)
        W[p + "attn_output_norm.weight"] = 1.0 + normal((E,), 0.1)
        W[p + "attn_output_norm.bias"] = normal((E,), 0.1)
        W[p + "ffn_up.weight"] = normal((F, E), 1.0 / math.sqrt(E))
        W[p + "ffn_up.bias"] = normal((F,), 0.1)
        W[p + "ffn_down.weight"] = normal((E, F), 1.0 / math.sqrt(F))
        W[p + "ffn_down.bias"] = normal((E,), 0.1)
        W[p + "layer_output_norm.weight"] = 1.0 + normal((E,), 0.1)
        W[p + "layer_output_norm.bias"] = normal((E,), 0.1)
    return W


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def forward(T, ids):
    """Last hidden states [n, E] of BERT (token type 0), float64."""
    E, H = HP["n_embd"], HP["n_head"]
    hd = E // H
    n = len(ids)
    idx = torch.tensor(ids)
    x = T["token_embd.weight"][idx] + T["position_embd.weight"][:n] + T["token_types.weight"][0]
    x = layer_norm(x, T["token_embd_norm.weight"], T["token_embd_norm.bias"], HP["eps"])
    for l in range(HP["n_layer"]):
        p = f"blk.{l}."

        def lin(name, v):
            return v @ T[p + name + ".weight"].T + T[p + name + ".bias"]

        q = lin("attn_q", x).view(n, H, hd).transpose(0, 1)
        k = lin("attn_k", x).view(n, H, hd).transpose(0, 1)
        v = lin("attn_v", x).view(n, H, hd).transpose(0, 1)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), dim=-1) @ v  # no mask
        att = att.transpose(0, 1).reshape(n, E)
        x = layer_norm(x + lin("attn_output", att), T[p + "attn_output_norm.weight"],
                       T[p + "attn_output_norm.bias"], HP["eps"])
        h = torch.nn.functional.gelu(lin("ffn_up", x))  # exact (erf) GELU
        x = layer_norm(x + lin("ffn_down", h), T[p + "layer_output_norm.weight"],
                       T[p + "layer_output_norm.bias"], HP["eps"])
    return x


def pool(x, pooling):
    v = x[0] if pooling == "cls" else x.mean(dim=0)
    return v / v.norm()


def stored(W, wtype):
    out = {}
    for k, a in W.items():
        if wtype == gw.GGML_F16 and a.ndim == 2 and k not in ("position_embd.weight",
                                                                "token_types.weight"):
            a = a.astype(np.float16)
        out[k] = torch.from_numpy(a.astype(np.float64))
    return out


def write_gguf(path, name, W, vocab, wtype, pooling):
    w = gw.GGUFWriter()
    w.add_string("general.architecture", "bert")
    w.add_string("general.name", name)
    w.add_u32("general.file_type", 0 if wtype == gw.GGML_F32 else 1)
    w.add_u32("bert.context_length", HP["n_ctx"])
    w.add_u32("bert.embedding_length", HP["n_embd"])
    w.add_u32("bert.feed_forward_length", HP["n_ff"])
    w.add_u32("bert.block_count", HP["n_layer"])
    w.add_u32("bert.attention.head_count", HP["n_head"])
    w.add_f32("bert.attention.layer_norm_epsilon", HP["eps"])
    w.add_bool("bert.attention.causal", False)
    w.add_u32("bert.pooling_type", {"mean": 1, "cls": 2}[pooling])
    w.add_u32("tokenizer.ggml.token_type_count", HP["n_types"])
    w.add_string("tokenizer.ggml.model", "bert")
    w.add_string("tokenizer.ggml.pre", "default")
    w.add_array("tokenizer.ggml.tokens", gw.T_STRING, [phantom(t) for t in vocab])
    # llama.cpp's converter: the special tokens are CONTROL (3), the rest NORMAL (1)
    w.add_array("tokenizer.ggml.token_type", gw.T_INT32,
                [3 if t in SPECIALS else 1 for t in vocab])
    w.add_u32("tokenizer.ggml.unknown_token_id", vocab.index("[UNK]"))
    w.add_u32("tokenizer.ggml.seperator_token_id", vocab.index("[SEP]"))  # llama.cpp's spelling
    w.add_u32("tokenizer.ggml.padding_token_id", vocab.index("[PAD]"))
    w.add_u32("tokenizer.ggml.mask_token_id", vocab.index("[MASK]"))
    # no CLS key: llama.cpp's converter writes none; the reader finds "[CLS]" by its text
    for tname, a in W.items():
        # llama.cpp's converter keeps 1-D tensors, position_embd and token_types in F32
        f32 = a.ndim == 1 or tname in ("position_embd.weight", "token_types.weight")
        w.add_tensor(tname, a, gw.GGML_F32 if f32 else wtype)
    w.write(path)


TEXTS = [
    "Hello world",
    "My sister lives in Paris.",
    "I like coffee, and you like tea!",
    "Café naïve RÉSUMÉ über Zürich",
    "中文字 and 日本",
    "The dog's name: Rex-9",
    "unwantedly embedding",
    "xyzzyq qwv",  # words made of single-character pieces
    "\tTabs\nand   spaces\u00a0and\u3000ideographic space",
    "zero\u200bwidth and control\x07chars",
    "αβγ ΑΒΓ",
    "price 5€ today",  # a word with a character no piece has: [UNK]
    "x" * 101 + " ok",  # a word longer than 100 characters: [UNK]
    "remember that i play tennis on sunday " * 6,  # longer than the context: truncated
    "",
]

MODELS = [
    # name, weight type, pooling, tolerance
    ("bert_mean_f32", gw.GGML_F32, "mean", 1e-4),
    ("bert_cls_f32", gw.GGML_F32, "cls", 1e-4),
    ("bert_mean_f16", gw.GGML_F16, "mean", 1e-3),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "golden"))
    ap.add_argument("--seed", type=int, default=20261205)
    args = ap.parse_args()

    vocab = build_vocab()
    vocab_ids = {t: i for i, t in enumerate(vocab)}
    assert len(vocab_ids) == len(vocab), "duplicate vocabulary entries"
    tokenized = [tokenize(t, vocab_ids, HP["n_ctx"]) for t in TEXTS]

    for mi, (name, wtype, pooling, tol) in enumerate(MODELS):
        rng = np.random.default_rng(args.seed + mi)
        W = make_weights(rng, len(vocab))
        write_gguf(os.path.join(args.out, name + ".gguf"), name, W, vocab, wtype, pooling)
        T = stored(W, wtype)
        cases = []
        checks = {}
        for text, (ids, truncated) in zip(TEXTS, tokenized):
            x = forward(T, ids)
            e = pool(x, pooling)
            cases.append({"text": text, "ids": ids, "truncated": truncated,
                          "embedding": [float(np.float32(v)) for v in e.tolist()]})
        # Self-checks: pooling really matters, and attention really is bidirectional (the
        # first token's state changes when a later token does).
        ids = tokenized[1][0]
        x = forward(T, ids)
        other = list(ids)
        other[-2] = vocab_ids["dog"]
        checks["mean_vs_cls_max_abs"] = float((pool(x, "mean") - pool(x, "cls")).abs().max())
        checks["first_state_change_when_last_word_changes"] = float(
            (forward(T, other)[0] - x[0]).abs().max())
        assert checks["mean_vs_cls_max_abs"] > 0.05 and \
            checks["first_state_change_when_last_word_changes"] > 1e-3, checks
        side = {
            "model": name + ".gguf", "pooling": pooling,
            "weights": "f32" if wtype == gw.GGML_F32 else "f16 (2-D tensors but position_embd/token_types; norms, biases f32)",
            "hparams": HP, "n_vocab": len(vocab), "tolerance_max_abs": tol,
            "seed": args.seed + mi, "generator": "tools/py/bert_reference.py",
            "unicode_version_of_reference": unicodedata.unidata_version,
            "reference_self_checks": checks, "cases": cases,
        }
        with open(os.path.join(args.out, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(side, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{name}: {len(cases)} texts, self-checks {checks}")
    for text, (ids, truncated) in zip(TEXTS, tokenized):
        print(repr(text[:50]), [vocab[i] for i in ids][:20], "truncated" if truncated else "")


if __name__ == "__main__":
    main()

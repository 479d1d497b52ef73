#!/usr/bin/python3
"""Writes the random-weight llama models the benchmarks run on.

Two shapes, both F16 (norms F32) with untied output, context 4096, vocab 32000 and a complete
llama (SentencePiece) tokenizer section (<unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>,
then made-up word pieces with scores) so that llama.cpp loads them too:
  --shape 125m  12 layers, n_embd 768, 12 heads, 4 KV heads, FFN 2048 (~125M parameters;
                fits this machine's 260 MiB L3 cache even at F16, so decode measures the cache)
  --shape 1.1b  16 layers, n_embd 2048, 32 heads, 8 KV heads, FFN 8192 (Llama-3.2-1B's body
                with a 32000 vocab, ~1.1B parameters; no quantization of it fits the cache)
head_dim is 64 in both. The Q8_0 / Q4_0 / Q4_K_M variants are made with `engram quantize`.

Usage:  /usr/bin/python3 tools/py/make_bench_model.py [OUT.gguf] [--shape 125m|1.1b] [--seed S]
        (default OUT: build/bench/bench-<shape>-f16.gguf; 125m ~240 MiB, 1.1b ~2.1 GiB; never
        committed)

Needs only numpy. Deterministic for a given seed.
"""

import argparse
import itertools
import math
import os
import string
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPES = {
    "125m": dict(n_vocab=32000, n_embd=768, n_layer=12, n_head=12, n_head_kv=4, n_ff=2048,
                 n_ctx=4096, eps=1e-5, rope_base=10000.0),
    "1.1b": dict(n_vocab=32000, n_embd=2048, n_layer=16, n_head=32, n_head_kv=8, n_ff=8192,
                 n_ctx=4096, eps=1e-5, rope_base=10000.0),
}


def bench_vocab(n_vocab):
    """<unk>, <s>, </s>, byte tokens <0x00>..<0xFF>, then unique made-up pieces: single
    printable characters, then letter strings of growing length, each also with the U+2581
    word-start marker. Scores decrease with rank as in a SentencePiece unigram/BPE vocab."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]  # UNKNOWN, CONTROL, CONTROL
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(6)  # BYTE
    n_fixed = len(tokens)
    seen = set(tokens)

    def pieces():
        yield "\u2581"
        for c in string.ascii_letters + string.digits + string.punctuation:
            yield c
            yield "\u2581" + c
        letters = string.ascii_lowercase
        for length in itertools.count(2):
            for tup in itertools.product(letters, repeat=length):
                w = "".join(tup)
                yield "\u2581" + w
                yield w

    for p in pieces():
        if len(tokens) >= n_vocab:
            break
        if p in seen:
            continue
        seen.add(p)
        tokens.append(p)
        types.append(1)  # NORMAL
    scores = [0.0] * n_fixed + [-float(i) for i in range(len(tokens) - n_fixed)]
    assert len(tokens) == n_vocab and len(set(tokens)) == n_vocab
    return tokens, scores, types


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="default: build/bench/bench-<shape>-f16.gguf")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="125m")
    ap.add_argument("--seed", type=int, default=125)
    args = ap.parse_args()
    HP = SHAPES[args.shape]
    if args.out is None:
        args.out = os.path.join(REPO, "build", "bench", f"bench-{args.shape}-f16.gguf")
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    V, E, F, L = HP["n_vocab"], HP["n_embd"], HP["n_ff"], HP["n_layer"]
    hd = E // HP["n_head"]
    Ekv = hd * HP["n_head_kv"]

    def normal(shape, std):
        # float32 draws, stored as F16 by the writer
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    def norm_w():
        return (1.0 + 0.05 * rng.standard_normal(E, dtype=np.float32)).astype(np.float32)

    w = gw.GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", f"engram-bench-{args.shape}")
    w.add_u32("general.file_type", 1)  # mostly F16
    w.add_u32("llama.context_length", HP["n_ctx"])
    w.add_u32("llama.embedding_length", E)
    w.add_u32("llama.block_count", L)
    w.add_u32("llama.feed_forward_length", F)
    w.add_u32("llama.attention.head_count", HP["n_head"])
    w.add_u32("llama.attention.head_count_kv", HP["n_head_kv"])
    w.add_f32("llama.rope.freq_base", HP["rope_base"])
    w.add_f32("llama.attention.layer_norm_rms_epsilon", HP["eps"])
    w.add_u32("llama.rope.dimension_count", hd)
    w.add_u32("llama.vocab_size", V)
    tokens, scores, types = bench_vocab(V)
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_array("tokenizer.ggml.tokens", gw.T_STRING, tokens)
    w.add_array("tokenizer.ggml.scores", gw.T_FLOAT32, scores)
    w.add_array("tokenizer.ggml.token_type", gw.T_INT32, types)
    w.add_u32("tokenizer.ggml.unknown_token_id", 0)
    w.add_u32("tokenizer.ggml.bos_token_id", 1)
    w.add_u32("tokenizer.ggml.eos_token_id", 2)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)

    F16, F32 = gw.GGML_F16, gw.GGML_F32
    n_params = 0

    def add(name, a, t):
        nonlocal n_params
        n_params += a.size
        w.add_tensor(name, a, t)

    add("token_embd.weight", normal((V, E), 1.0), F16)
    for i in range(L):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", norm_w(), F32)
        add(p + "attn_q.weight", normal((E, E), 1.0 / math.sqrt(E)), F16)
        add(p + "attn_k.weight", normal((Ekv, E), 1.0 / math.sqrt(E)), F16)
        add(p + "attn_v.weight", normal((Ekv, E), 1.0 / math.sqrt(E)), F16)
        add(p + "attn_output.weight", normal((E, E), 0.5 / math.sqrt(E)), F16)
        add(p + "ffn_norm.weight", norm_w(), F32)
        add(p + "ffn_gate.weight", normal((F, E), 1.0 / math.sqrt(E)), F16)
        add(p + "ffn_up.weight", normal((F, E), 1.0 / math.sqrt(E)), F16)
        add(p + "ffn_down.weight", normal((E, F), 0.5 / math.sqrt(F)), F16)
    add("output_norm.weight", norm_w(), F32)
    add("output.weight", normal((V, E), 0.5 / math.sqrt(E)), F16)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    w.write(args.out)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {n_params / 1e6:.1f}M parameters, {size / 2**20:.1f} MiB, "
          f"{time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()

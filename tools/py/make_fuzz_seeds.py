"""Writes the seed corpus of the GGUF reader's fuzz target (fuzz/gguf_fuzz.cpp).

Usage: /usr/bin/python3 tools/py/make_fuzz_seeds.py fuzz/corpus/gguf

A few small valid files (every metadata type, several tensor types, custom alignment, v2)
and a few invalid ones (truncated, bad magic, bad counts, overlapping tensors), so the fuzzer
starts from inputs that reach deep into the parser.
"""

import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import gguf_writer as g  # noqa: E402

GGML_Q8_0, GGML_Q4_K, GGML_Q5_K = 8, 12, 13


def build(w):
    with tempfile.NamedTemporaryFile(suffix=".gguf", delete=False) as f:
        path = f.name
    try:
        w.write(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def all_types():
    w = g.GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add("u8", g.T_UINT8, 200)
    w.add("i8", g.T_INT8, -5)
    w.add("u16", g.T_UINT16, 60000)
    w.add("i16", g.T_INT16, -300)
    w.add_u32("llama.block_count", 2)
    w.add_i32("i32", -7)
    w.add_f32("llama.rope.freq_base", 10000.0)
    w.add_bool("b", True)
    w.add("u64", g.T_UINT64, 2**40)
    w.add("i64", g.T_INT64, -(2**40))
    w.add("f64", g.T_FLOAT64, 0.125)
    for t, vals in [(g.T_UINT8, [1, 2]), (g.T_INT8, [-1]), (g.T_UINT16, [3]), (g.T_INT16, [-3]),
                    (g.T_UINT32, [4]), (g.T_INT32, [-4, 5]), (g.T_FLOAT32, [0.5]),
                    (g.T_BOOL, [True, False]), (g.T_UINT64, [6]), (g.T_INT64, [-6]),
                    (g.T_FLOAT64, [1.5])]:
        w.add_array(f"a{t}", t, vals)
    w.add_array("tokenizer.ggml.tokens", g.T_STRING, ["<s>", "</s>", "\u2581a"])
    w.add_tensor("f32", np.arange(8, dtype=np.float32))
    w.add_tensor("f16", np.ones((2, 4)), g.GGML_F16)
    w.add_tensor("bf16", np.ones(4), g.GGML_BF16)
    w.add_raw_tensor("q8_0", (2, 32), GGML_Q8_0, bytes(range(68)))
    w.add_raw_tensor("q4_k", (256,), GGML_Q4_K, bytes(144))
    w.add_raw_tensor("q5_k", (256,), GGML_Q5_K, bytes(176))
    return build(w)


def minimal():
    w = g.GGUFWriter()
    w.add_string("general.architecture", "qwen2")
    w.add_tensor("t", np.zeros(8, dtype=np.float32))
    return build(w)


def bert_tiny():
    """A `bert` sentence encoder in llama.cpp's layout, shrunk (width 4, one layer)."""
    w = g.GGUFWriter()
    w.add_string("general.architecture", "bert")
    for key, v in (("context_length", 4), ("embedding_length", 4), ("feed_forward_length", 8),
                   ("block_count", 1), ("attention.head_count", 2), ("pooling_type", 1)):
        w.add_u32(f"bert.{key}", v)
    w.add_f32("bert.attention.layer_norm_epsilon", 1e-12)
    w.add_bool("bert.attention.causal", False)
    w.add_u32("tokenizer.ggml.token_type_count", 2)
    w.add_string("tokenizer.ggml.model", "bert")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u2581the", "\u2581a", "s", "##"]
    w.add_array("tokenizer.ggml.tokens", g.T_STRING, tokens)
    w.add_array("tokenizer.ggml.token_type", g.T_INT32, [3, 3, 3, 3, 1, 1, 1, 1])
    w.add_u32("tokenizer.ggml.unknown_token_id", 1)
    w.add_u32("tokenizer.ggml.seperator_token_id", 3)
    one = np.ones(4, dtype=np.float32)
    w.add_tensor("token_embd.weight", np.ones((len(tokens), 4)), g.GGML_F16)
    w.add_tensor("token_types.weight", np.zeros((2, 4), dtype=np.float32))
    w.add_tensor("position_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.add_tensor("token_embd_norm.weight", one)
    w.add_tensor("token_embd_norm.bias", 0 * one)
    for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
        w.add_tensor(f"blk.0.{t}.weight", np.eye(4), g.GGML_F16)
        w.add_tensor(f"blk.0.{t}.bias", 0 * one)
    for t in ("attn_output_norm", "layer_output_norm"):
        w.add_tensor(f"blk.0.{t}.weight", one)
        w.add_tensor(f"blk.0.{t}.bias", 0 * one)
    w.add_tensor("blk.0.ffn_up.weight", np.ones((8, 4)), g.GGML_F16)
    w.add_tensor("blk.0.ffn_up.bias", np.zeros(8, dtype=np.float32))
    w.add_tensor("blk.0.ffn_down.weight", np.ones((4, 8)), g.GGML_F16)
    w.add_tensor("blk.0.ffn_down.bias", 0 * one)
    return build(w)


def _str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def align64(second_offset):
    head = b"GGUF" + struct.pack("<IQQ", 3, 2, 1)
    head += _str("general.alignment") + struct.pack("<II", g.T_UINT32, 64)
    for name, off in (("a", 0), ("b", second_offset)):
        head += _str(name) + struct.pack("<IQIQ", 1, 16, g.GGML_F32, off)
    head += bytes(-len(head) % 64)
    return head + bytes(range(64)) + bytes(range(64, 128))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/gguf"
    os.makedirs(out, exist_ok=True)
    full = all_types()
    small = minimal()
    seeds = {
        "valid_all_types.gguf": full,
        "valid_minimal.gguf": small,
        "valid_v2.gguf": small[:4] + struct.pack("<I", 2) + small[8:],
        "valid_empty.gguf": b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + bytes(8),
        "valid_bert.gguf": bert_tiny(),
        "bad_truncated.gguf": full[: len(full) // 2],
        "bad_magic.gguf": b"GGML" + small[4:],
        "bad_version1.gguf": small[:4] + struct.pack("<I", 1) + small[8:],
        "bad_kv_count.gguf": small[:16] + struct.pack("<Q", 2**60) + small[24:],
        "bad_tensor_count.gguf": small[:8] + struct.pack("<Q", 7) + small[16:],
    }
    # Custom alignment with two tensors, then the same file with the second overlapping the
    # first. Assembled by hand: gguf_writer.py always lays data out at 32-byte alignment.
    seeds["valid_align64.gguf"] = align64(64)
    seeds["bad_overlap.gguf"] = align64(0)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()

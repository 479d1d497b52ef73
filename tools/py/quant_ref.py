#!/usr/bin/python3
"""Reference dequantization fixtures (issue 2, acceptance item 2).

An independent numpy dequantizer for the GGUF/ggml weight types engram supports, written
from the block layouts, and a generator of seeded random blocks with their dequantized
values. The C++ test tests/test_golden_quant.cpp compares engram::dequantize_row with them.

Usage:  /usr/bin/python3 tools/py/quant_ref.py [--out tests/fixtures/golden] [--blocks 64]

With --llamacpp-probes DIR it instead writes, for the existing fixtures, small GGUF models
that let llama.cpp dequantize the same blocks (see bench/llamacpp/dequant_check.mjs).

Writes quant_TYPE.bin (raw blocks, as they sit in a GGUF tensor) and quant_TYPE.f32
(little-endian float32 dequantized values) for TYPE in f16 bf16 q8_0 q4_0 q4_k q6_k q5_k.

Block layouts (all little-endian; "f16" is an IEEE half):
  F16   one element: u16 half
  BF16  one element: u16, the top 16 bits of an f32
  Q8_0  32 elements, 34 bytes: f16 d; i8 q[32];               x[i] = d * q[i]
  Q4_0  32 elements, 18 bytes: f16 d; u8 qs[16];
        x[i] = d * ((qs[i] & 15) - 8),  x[i + 16] = d * ((qs[i] >> 4) - 8)     (i < 16)
  Q4_K  256 elements, 144 bytes: f16 d; f16 dmin; u8 scales[12]; u8 qs[128]
        8 sub-blocks of 32 with 6-bit scale sc[j] and 6-bit min m[j] packed in scales[12]:
          j < 4:  sc = scales[j] & 63,  m = scales[j + 4] & 63
          j >= 4: sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4)
                  m  = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4)
        qs byte c of 32-byte chunk k (k < 4) holds sub-block 2k in its low nibble and
        sub-block 2k+1 in its high nibble, element c of each:
          x[64k + c]      = d*sc[2k]   * (qs[32k + c] & 15) - dmin*m[2k]
          x[64k + 32 + c] = d*sc[2k+1] * (qs[32k + c] >> 4) - dmin*m[2k+1]
  Q5_K  256 elements, 176 bytes: f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
        as Q4_K, with a fifth bit: element c of sub-block j (j < 8, c < 32) adds 16 * (bit j
        of qh[c]) to its nibble before the scale: x = d*sc[j] * (q + 16*b) - dmin*m[j]
  Q6_K  256 elements, 210 bytes: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
        two halves h of 128 elements use ql[64h..64h+64), qh[32h..32h+32), scales[8h..8h+8);
        for l < 32 (s = l // 16):
          q0 = (ql[l] & 15)      | ((qh[l] >> 0 & 3) << 4)   -> x[128h + l]      scale scales[8h + s]
          q1 = (ql[l + 32] & 15) | ((qh[l] >> 2 & 3) << 4)   -> x[128h + l + 32] scale scales[8h + s + 2]
          q2 = (ql[l] >> 4)      | ((qh[l] >> 4 & 3) << 4)   -> x[128h + l + 64] scale scales[8h + s + 4]
          q3 = (ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4)   -> x[128h + l + 96] scale scales[8h + s + 6]
        x = d * scale * (q - 32)

Arithmetic: every product above is exact in float32 (an 11-bit f16 mantissa times at most
14 bits of integer), so the only rounding is Q4_K's and Q5_K's final subtraction. The reference computes
in float64 (where the subtraction is exact too) and rounds to float32 once, which is the
correctly rounded value any float32 implementation computing d*sc*q - dmin*m gets.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> (elements per block, bytes per block)
LAYOUT = {
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),
    "q4_0": (32, 18),
    "q4_k": (256, 144),
    "q6_k": (256, 210),
    "q5_k": (256, 176),  # last: the fixtures' seeds go by position, so earlier ones stay put
}


def _f16(raw_u16):
    return np.asarray(raw_u16, dtype="<u2").view("<f2").astype(np.float64)


def _k_scales(s):
    """The 8 six-bit scales and mins of Q4_K/Q5_K blocks from their 12 packed bytes [nb, 12]."""
    nb = s.shape[0]
    sc = np.zeros((nb, 8), dtype=np.int64)
    mn = np.zeros((nb, 8), dtype=np.int64)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            mn[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 15) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, mn


def dequantize(type_name, raw):
    """Dequantize raw block bytes to float32 values."""
    bs, bb = LAYOUT[type_name]
    buf = np.frombuffer(bytes(raw), dtype=np.uint8)
    if buf.size % bb:
        raise ValueError(f"{type_name}: {buf.size} bytes is not a whole number of {bb}-byte blocks")
    nb = buf.size // bb
    blk = buf.reshape(nb, bb)

    if type_name == "f16":
        return blk.copy().view("<f2").reshape(-1).astype(np.float32)
    if type_name == "bf16":
        u = blk.copy().view("<u2").reshape(-1).astype(np.uint32) << 16
        return u.astype("<u4").view("<f4")

    if type_name == "q8_0":
        d = _f16(blk[:, 0:2].copy().view("<u2"))  # [nb, 1]
        q = blk[:, 2:34].copy().view(np.int8).astype(np.float64)
        y = d * q
    elif type_name == "q4_0":
        d = _f16(blk[:, 0:2].copy().view("<u2"))
        qs = blk[:, 2:18].astype(np.int64)
        lo = (qs & 15) - 8
        hi = (qs >> 4) - 8
        y = d * np.concatenate([lo, hi], axis=1).astype(np.float64)
    elif type_name == "q4_k":
        d = _f16(blk[:, 0:2].copy().view("<u2"))
        dmin = _f16(blk[:, 2:4].copy().view("<u2"))
        sc, mn = _k_scales(blk[:, 4:16].astype(np.int64))
        qs = blk[:, 16:144].astype(np.int64)
        y = np.zeros((nb, 256), dtype=np.float64)
        for k in range(4):
            chunk = qs[:, 32 * k: 32 * k + 32]
            for half, q in ((0, chunk & 15), (1, chunk >> 4)):
                j = 2 * k + half
                scale = d[:, 0] * sc[:, j]
                minv = dmin[:, 0] * mn[:, j]
                y[:, 64 * k + 32 * half: 64 * k + 32 * half + 32] = scale[:, None] * q - minv[:, None]
    elif type_name == "q5_k":
        d = _f16(blk[:, 0:2].copy().view("<u2"))
        dmin = _f16(blk[:, 2:4].copy().view("<u2"))
        sc, mn = _k_scales(blk[:, 4:16].astype(np.int64))
        qh = blk[:, 16:48].astype(np.int64)
        qs = blk[:, 48:176].astype(np.int64)
        y = np.zeros((nb, 256), dtype=np.float64)
        for k in range(4):
            chunk = qs[:, 32 * k: 32 * k + 32]
            for half, q in ((0, chunk & 15), (1, chunk >> 4)):
                j = 2 * k + half  # sub-block j's fifth bits are bit j of qh[0..31]
                q5 = q + 16 * ((qh >> j) & 1)
                scale = d[:, 0] * sc[:, j]
                minv = dmin[:, 0] * mn[:, j]
                y[:, 32 * j: 32 * j + 32] = scale[:, None] * q5 - minv[:, None]
    elif type_name == "q6_k":
        ql = blk[:, 0:128].astype(np.int64)
        qh = blk[:, 128:192].astype(np.int64)
        sc = blk[:, 192:208].copy().view(np.int8).astype(np.int64)
        d = _f16(blk[:, 208:210].copy().view("<u2"))
        y = np.zeros((nb, 256), dtype=np.float64)
        for h in range(2):
            L = ql[:, 64 * h: 64 * h + 64]
            H = qh[:, 32 * h: 32 * h + 32]
            S = sc[:, 8 * h: 8 * h + 8]
            for l in range(32):
                s = l // 16
                parts = [
                    (L[:, l] & 15) | (((H[:, l] >> 0) & 3) << 4),
                    (L[:, l + 32] & 15) | (((H[:, l] >> 2) & 3) << 4),
                    (L[:, l] >> 4) | (((H[:, l] >> 4) & 3) << 4),
                    (L[:, l + 32] >> 4) | (((H[:, l] >> 6) & 3) << 4),
                ]
                for p, q in enumerate(parts):
                    y[:, 128 * h + l + 32 * p] = d[:, 0] * S[:, s + 2 * p] * (q - 32)
    else:
        raise ValueError(f"unsupported type {type_name}")
    return y.reshape(-1).astype(np.float32)


def _rand_scale_f16(rng, n, signed):
    """Finite normal f16 scales of modest magnitude (1e-4 .. 1e-1), a few exact zeros."""
    mag = 10.0 ** rng.uniform(-4, -1, size=n)
    if signed:
        mag *= rng.choice([-1.0, 1.0], size=n)
    mag[rng.random(n) < 0.03] = 0.0
    return mag.astype("<f2").view("<u2")


def random_blocks(type_name, n_blocks, rng):
    """Random bytes with valid (finite, modest) f16 scales; F16/BF16 cover every class of
    value (normals, subnormals, zeros, infinities) but NaN."""
    bs, bb = LAYOUT[type_name]
    if type_name in ("f16", "bf16"):
        n = n_blocks  # elements
        u = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
        if type_name == "f16":
            special = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF,
                       0x7C00, 0xFC00, 0x3555, 0x0200]
            exp_mask, man_mask = 0x7C00, 0x03FF
        else:
            special = [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x3F80, 0xBF80, 0x7F7F, 0xFF7F,
                       0x7F80, 0xFF80, 0x3EAB, 0x0040]
            exp_mask, man_mask = 0x7F80, 0x007F
        u[: len(special)] = special
        nan = ((u & exp_mask) == exp_mask) & ((u & man_mask) != 0)
        u[nan] &= ~np.uint16(exp_mask & ~(exp_mask >> 1))  # clear the top exponent bit: finite
        assert not (((u & exp_mask) == exp_mask) & ((u & man_mask) != 0)).any()
        return u.astype("<u2").tobytes()

    raw = rng.integers(0, 256, size=(n_blocks, bb), dtype=np.uint16).astype(np.uint8)
    if type_name in ("q8_0", "q4_0"):
        raw[:, 0:2] = _rand_scale_f16(rng, n_blocks, signed=True).view(np.uint8).reshape(n_blocks, 2)
    elif type_name in ("q4_k", "q5_k"):
        raw[:, 0:2] = _rand_scale_f16(rng, n_blocks, signed=False).view(np.uint8).reshape(n_blocks, 2)
        raw[:, 2:4] = _rand_scale_f16(rng, n_blocks, signed=False).view(np.uint8).reshape(n_blocks, 2)
    elif type_name == "q6_k":
        raw[:, 208:210] = _rand_scale_f16(rng, n_blocks, signed=True).view(np.uint8).reshape(n_blocks, 2)
    return raw.tobytes()


def self_test():
    """Hand-made blocks with values worked out on paper."""
    half = lambda v: np.array([v], dtype="<f2").tobytes()  # noqa: E731
    # Q8_0: d = 0.5, q = -128..-97
    b = half(0.5) + np.arange(-128, -96, dtype=np.int8).tobytes()
    assert np.array_equal(dequantize("q8_0", b), 0.5 * np.arange(-128, -96, dtype=np.float32))
    # Q4_0: d = 2, qs[i] = i | (15 - i) << 4  ->  x[i] = 2*(i-8), x[i+16] = 2*(7-i)
    qs = bytes((i | ((15 - i) << 4)) for i in range(16))
    y = dequantize("q4_0", half(2.0) + qs)
    assert np.array_equal(y[:16], 2.0 * (np.arange(16) - 8)) and np.array_equal(y[16:], 2.0 * (7 - np.arange(16)))
    # Q4_K: d = 1, dmin = 0.5, sub-block j has sc = j + 1, m = 2 j (j >= 4 uses the split form)
    sc = [j + 1 for j in range(8)]
    mn = [2 * j for j in range(8)]
    s = [0] * 12
    for j in range(4):
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6)
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6)
        s[j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4)
    qs = bytes(((c % 16) | ((15 - c % 16) << 4)) for k in range(4) for c in range(32))
    y = dequantize("q4_k", half(1.0) + half(0.5) + bytes(s) + qs)
    for k in range(4):
        for c in range(32):
            assert y[64 * k + c] == sc[2 * k] * (c % 16) - 0.5 * mn[2 * k]
            assert y[64 * k + 32 + c] == sc[2 * k + 1] * (15 - c % 16) - 0.5 * mn[2 * k + 1]
    # Q5_K: the Q4_K block above with qh = bit j set for the even elements of sub-block j >= 4
    qh = bytes(sum(1 << j for j in range(4, 8)) if c % 2 == 0 else 0 for c in range(32))
    y5 = dequantize("q5_k", half(1.0) + half(0.5) + bytes(s) + qh + qs)
    for j in range(8):
        for c in range(32):
            base = y[32 * j + c] + 0.5 * mn[j]  # sc * q of the Q4_K block
            extra = 16 * sc[j] if (j >= 4 and c % 2 == 0) else 0
            assert y5[32 * j + c] == base + extra - 0.5 * mn[j]
    # Q6_K: pick q for every element, pack, and check it comes back
    rng = np.random.default_rng(7)
    q = rng.integers(0, 64, size=256)
    scales = rng.integers(-128, 128, size=16).astype(np.int8)
    ql = np.zeros(128, dtype=np.uint8)
    qh = np.zeros(64, dtype=np.uint8)
    for h in range(2):
        for l in range(32):
            v = [q[128 * h + l + 32 * p] for p in range(4)]
            ql[64 * h + l] = (v[0] & 15) | ((v[2] & 15) << 4)
            ql[64 * h + l + 32] = (v[1] & 15) | ((v[3] & 15) << 4)
            qh[32 * h + l] = (v[0] >> 4) | ((v[1] >> 4) << 2) | ((v[2] >> 4) << 4) | ((v[3] >> 4) << 6)
    y = dequantize("q6_k", ql.tobytes() + qh.tobytes() + scales.tobytes() + half(0.25))
    want = [0.25 * scales[(i // 128) * 8 + (i % 32) // 16 + 2 * ((i % 128) // 32)] * (q[i] - 32) for i in range(256)]
    assert np.array_equal(y, np.array(want, dtype=np.float32))
    # F16 / BF16
    assert dequantize("f16", np.array([1.5, -0.25], dtype="<f2").tobytes()).tolist() == [1.5, -0.25]
    assert dequantize("bf16", np.array([0x3FC0, 0xC080], dtype="<u2").tobytes()).tolist() == [1.5, -4.0]


PROBE_EMBD = 512  # two K-quant blocks a row, so per-block scales are compared too
PROBE_EPS = 1e-6
GGML_TYPE_ID = {"q8_0": 8, "q4_0": 2, "q4_k": 12, "q6_k": 14, "q5_k": 13}


def write_llamacpp_probes(fixture_dir, out_dir):
    """Cross-check tool, not a fixture: for each quantized type, a GGUF whose token_embd is
    the fixture's blocks (rows of PROBE_EMBD values, padded with zero rows) inside a 1-layer
    llama whose attention and FFN weights are all zero and whose output matrix is the
    identity. A token's logits are then exactly rmsnorm(dequantized row), which
    bench/llamacpp/dequant_check.mjs compares with quant_TYPE.f32 normalised the same way --
    an independent check of these layouts by llama.cpp's own dequantizer."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gguf_writer as gw

    os.makedirs(out_dir, exist_ok=True)
    E, V, F = PROBE_EMBD, PROBE_EMBD, 256
    for t, tid in GGML_TYPE_ID.items():
        raw = open(os.path.join(fixture_dir, f"quant_{t}.bin"), "rb").read()
        bs, bb = LAYOUT[t]
        row_bytes = E // bs * bb
        assert len(raw) % row_bytes == 0
        rows = len(raw) // row_bytes
        emb = raw + bytes(row_bytes * (V - rows))  # zero blocks: d = 0 -> zero rows
        w = gw.GGUFWriter()
        w.add_string("general.architecture", "llama")
        w.add_string("general.name", f"engram-quant-probe-{t}")
        for k, v in [("context_length", 64), ("embedding_length", E), ("block_count", 1),
                     ("feed_forward_length", F), ("attention.head_count", 8),
                     ("attention.head_count_kv", 8), ("rope.dimension_count", E // 8), ("vocab_size", V)]:
            w.add_u32("llama." + k, v)
        w.add_f32("llama.rope.freq_base", 10000.0)
        w.add_f32("llama.attention.layer_norm_rms_epsilon", PROBE_EPS)
        w.add_string("tokenizer.ggml.model", "llama")
        # llama.cpp wants the byte tokens of a SentencePiece vocabulary (it looks up <0x0A>)
        toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
        types = [2, 3, 3] + [6] * 256
        toks += [f"t{i}" for i in range(len(toks), V)]
        types += [1] * (V - len(types))
        w.add_array("tokenizer.ggml.tokens", gw.T_STRING, toks)
        w.add_array("tokenizer.ggml.scores", gw.T_FLOAT32, [0.0] * V)
        w.add_array("tokenizer.ggml.token_type", gw.T_INT32, types)
        w.add_u32("tokenizer.ggml.bos_token_id", 1)
        w.add_u32("tokenizer.ggml.eos_token_id", 2)
        w.add_raw_tensor("token_embd.weight", (V, E), tid, emb)
        z = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731
        one = np.ones(E, dtype=np.float32)
        for name, a in [("attn_norm.weight", one), ("attn_q.weight", z(E, E)), ("attn_k.weight", z(E, E)),
                        ("attn_v.weight", z(E, E)), ("attn_output.weight", z(E, E)), ("ffn_norm.weight", one),
                        ("ffn_gate.weight", z(F, E)), ("ffn_up.weight", z(F, E)), ("ffn_down.weight", z(E, F))]:
            w.add_tensor("blk.0." + name, a)
        w.add_tensor("output_norm.weight", one)
        w.add_tensor("output.weight", np.eye(V, E, dtype=np.float32))
        path = os.path.join(out_dir, f"probe_{t}.gguf")
        w.write(path)
        with open(os.path.join(out_dir, f"probe_{t}.json"), "w") as f:
            json.dump({"type": t, "model": path, "reference": os.path.join(os.path.abspath(fixture_dir), f"quant_{t}.f32"),
                       "rows": rows, "n_embd": E, "eps": PROBE_EPS}, f, indent=1)
        print(f"probe {path}: {rows} rows of {E}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "golden"))
    ap.add_argument("--blocks", type=int, default=64, help="blocks per quantized type")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--llamacpp-probes", metavar="DIR",
                    help="only write the llama.cpp cross-check models for the existing fixtures to DIR")
    args = ap.parse_args()
    self_test()
    if args.llamacpp_probes:
        write_llamacpp_probes(args.out, args.llamacpp_probes)
        return
    os.makedirs(args.out, exist_ok=True)
    for i, t in enumerate(LAYOUT):
        rng = np.random.default_rng([args.seed, i])
        n = args.blocks if LAYOUT[t][0] > 1 else 2048  # F16/BF16: 2048 elements
        raw = random_blocks(t, n, rng)
        y = dequantize(t, raw)
        assert np.isfinite(y).all() or t in ("f16", "bf16")
        with open(os.path.join(args.out, f"quant_{t}.bin"), "wb") as f:
            f.write(raw)
        y.astype("<f4").tofile(os.path.join(args.out, f"quant_{t}.f32"))
        fin = y[np.isfinite(y)]
        print(f"{t}: {len(raw)} bytes, {y.size} values, max |x| {np.abs(fin).max():.4g}, "
              f"nonzero {np.count_nonzero(y) / y.size:.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Golden-logit fixtures for engram's forward pass (issue 2, acceptance item 1).

Writes small random-weight `llama` / `qwen2` models as GGUF into tests/fixtures/golden/ and,
for each, the logits of an independent reference forward pass over a fixed 64-token prompt.
The reference is written here from the math (RMSNorm, RoPE, grouped-query attention, SwiGLU),
computed in float64 with PyTorch and stored as float32. CI never runs this script: it only
reads the committed fixtures.

Usage:  /usr/bin/python3 tools/py/make_golden.py [--out tests/fixtures/golden] [--check]

Outputs per model NAME:
  NAME.gguf         the model
  NAME.logits.bin   little-endian float32, shape [n_tokens, n_vocab], row t = logits after
                    reading prompt[0..t] (i.e. predicting token t+1)
  NAME.json         sidecar: prompt ids, shape, model file, tolerances, what the model tests
plus index.json listing every model.

Conventions (as llama.cpp reads GGUF):
  * weights are stored as torch [out, in]; GGUF ne = [in, out]; y = W x.
  * `llama` RoPE ("normal" mode): rotate interleaved pairs (x[2i], x[2i+1]) by
    theta_i = p * base^(-2i/d) / freq_factor[i]; p = position * (1/linear_factor).
  * `qwen2` RoPE ("neox" mode): rotate (x[i], x[i + d/2]) by the same angles.
  * attention scale 1/sqrt(head_dim); KV head of query head h is h // (n_head / n_head_kv).
  * tied output: no output.weight tensor, logits = token_embd @ h.
  * F16 models: every 2-D weight is F16 (norms and rope_freqs stay F32); the reference
    uses the f16-rounded values.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402

torch.set_num_threads(1)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_PROMPT = 64

BASE_HPARAMS = dict(
    n_vocab=256, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=128,
    eps=1e-5, rope_base=10000.0, n_ctx=256,
)


# ----------------------------------------------------------------------------------------
# llama3 rope frequency factors (what llama.cpp's converter stores as rope_freqs.weight)
# ----------------------------------------------------------------------------------------
def llama3_freq_factors(head_dim, base, factor, low_freq_factor, high_freq_factor, orig_ctx):
    """Divisors of the per-pair rotation frequency, the llama3 way.

    High-frequency pairs (wavelength shorter than orig_ctx / high_freq_factor) are left
    alone (1), low-frequency pairs (wavelength longer than orig_ctx / low_freq_factor) are
    slowed down by `factor`, and the band in between is interpolated smoothly."""
    low_wavelen = orig_ctx / low_freq_factor
    high_wavelen = orig_ctx / high_freq_factor
    out = []
    for i in range(head_dim // 2):
        freq = base ** (-2.0 * i / head_dim)
        wavelen = 2.0 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(float(factor))
        else:
            smooth = (orig_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# ----------------------------------------------------------------------------------------
# Reference forward pass (float64)
# ----------------------------------------------------------------------------------------
def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def rope_angles(positions, head_dim, base, freq_factors, pos_scale):
    """[T, head_dim/2] angles: (pos * pos_scale) * base^(-2i/d) / freq_factors[i]."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    inv_freq = base ** (-2.0 * i / head_dim)
    if freq_factors is not None:
        inv_freq = inv_freq / torch.as_tensor(freq_factors, dtype=torch.float64)
    p = torch.as_tensor(positions, dtype=torch.float64) * pos_scale
    return p[:, None] * inv_freq[None, :]


def apply_rope(x, ang, mode):
    """x: [T, H, d]; ang: [T, d/2]."""
    cos = torch.cos(ang)[:, None, :]
    sin = torch.sin(ang)[:, None, :]
    d = x.shape[-1]
    if mode == "normal":  # interleaved pairs (2i, 2i+1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out
    if mode == "neox":  # halves (i, i + d/2)
        x0, x1 = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    raise ValueError(mode)


def forward(W, hp, tokens, rope_mode, positions=None):
    """Batched causal forward over all tokens. W: dict name -> float64 tensor [out, in]."""
    T = len(tokens)
    if positions is None:
        positions = list(range(T))
    hd = hp["n_embd"] // hp["n_head"]
    nh, nkv = hp["n_head"], hp["n_head_kv"]
    group = nh // nkv
    ang = rope_angles(positions, hd, hp["rope_base"], W.get("rope_freqs.weight"),
                      hp.get("pos_scale", 1.0))
    x = W["token_embd.weight"][torch.as_tensor(tokens)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(hp["n_layer"]):
        p = f"blk.{l}."
        h = rms_norm(x, W[p + "attn_norm.weight"], hp["eps"])
        q = h @ W[p + "attn_q.weight"].T
        k = h @ W[p + "attn_k.weight"].T
        v = h @ W[p + "attn_v.weight"].T
        if p + "attn_q.bias" in W:
            q = q + W[p + "attn_q.bias"]
            k = k + W[p + "attn_k.bias"]
            v = v + W[p + "attn_v.bias"]
        q = apply_rope(q.view(T, nh, hd), ang, rope_mode)
        k = apply_rope(k.view(T, nkv, hd), ang, rope_mode)
        v = v.view(T, nkv, hd)
        heads = []
        for hh in range(nh):
            kv = hh // group
            s = (q[:, hh, :] @ k[:, kv, :].T) / math.sqrt(hd) + mask
            a = torch.softmax(s, dim=-1)
            heads.append(a @ v[:, kv, :])
        attn = torch.cat(heads, dim=-1)
        x = x + attn @ W[p + "attn_output.weight"].T
        h = rms_norm(x, W[p + "ffn_norm.weight"], hp["eps"])
        g = h @ W[p + "ffn_gate.weight"].T
        u = h @ W[p + "ffn_up.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "ffn_down.weight"].T
    h = rms_norm(x, W["output_norm.weight"], hp["eps"])
    out_w = W["output.weight"] if "output.weight" in W else W["token_embd.weight"]
    return h @ out_w.T


def forward_incremental(W, hp, tokens, rope_mode):
    """Second formulation: one token at a time against a growing KV cache (decode style).
    Must equal the batched pass; checks the causal mask and position handling."""
    hd = hp["n_embd"] // hp["n_head"]
    nh, nkv = hp["n_head"], hp["n_head_kv"]
    group = nh // nkv
    cache = [([], []) for _ in range(hp["n_layer"])]
    rows = []
    for t, tok in enumerate(tokens):
        ang = rope_angles([t], hd, hp["rope_base"], W.get("rope_freqs.weight"),
                          hp.get("pos_scale", 1.0))
        x = W["token_embd.weight"][tok][None, :]
        for l in range(hp["n_layer"]):
            p = f"blk.{l}."
            h = rms_norm(x, W[p + "attn_norm.weight"], hp["eps"])
            q = h @ W[p + "attn_q.weight"].T
            k = h @ W[p + "attn_k.weight"].T
            v = h @ W[p + "attn_v.weight"].T
            if p + "attn_q.bias" in W:
                q, k, v = q + W[p + "attn_q.bias"], k + W[p + "attn_k.bias"], v + W[p + "attn_v.bias"]
            q = apply_rope(q.view(1, nh, hd), ang, rope_mode)[0]
            k = apply_rope(k.view(1, nkv, hd), ang, rope_mode)[0]
            cache[l][0].append(k)
            cache[l][1].append(v.view(nkv, hd))
            K = torch.stack(cache[l][0])  # [t+1, nkv, hd]
            V = torch.stack(cache[l][1])
            outs = []
            for hh in range(nh):
                kv = hh // group
                s = K[:, kv, :] @ q[hh] / math.sqrt(hd)
                outs.append(torch.softmax(s, dim=0) @ V[:, kv, :])
            x = x + torch.cat(outs)[None, :] @ W[p + "attn_output.weight"].T
            h = rms_norm(x, W[p + "ffn_norm.weight"], hp["eps"])
            x = x + (torch.nn.functional.silu(h @ W[p + "ffn_gate.weight"].T)
                     * (h @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
        h = rms_norm(x, W["output_norm.weight"], hp["eps"])
        out_w = W["output.weight"] if "output.weight" in W else W["token_embd.weight"]
        rows.append((h @ out_w.T)[0])
    return torch.stack(rows)


def interleaved_to_halves(w, n_heads, hd):
    """Reorder each head's rows from interleaved pairs (0,1),(2,3).. to halves layout
    (0,2,4..,1,3,5..). Under this permutation, normal-mode RoPE on the original rows equals
    NeoX (rotate-half) RoPE on the permuted rows (the HF-llama layout)."""
    idx = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)])
    shape = w.shape
    w = w.reshape(n_heads, hd, *shape[1:])[:, idx]
    return w.reshape(shape)


# ----------------------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------------------
def make_weights(rng, hp, tied, qkv_bias):
    """float32 numpy weights, torch [out, in] order. Scales chosen so logits are O(1-10)
    and attention is far from uniform (large q/k weights)."""
    V, E, F = hp["n_vocab"], hp["n_embd"], hp["n_ff"]
    hd = E // hp["n_head"]
    Ekv = hd * hp["n_head_kv"]

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    W = {}
    W["token_embd.weight"] = normal((V, E), 0.35 if tied else 1.0)
    for l in range(hp["n_layer"]):
        p = f"blk.{l}."
        W[p + "attn_norm.weight"] = (1.0 + normal((E,), 0.1)).astype(np.float32)
        W[p + "attn_q.weight"] = normal((E, E), 0.25)
        W[p + "attn_k.weight"] = normal((Ekv, E), 0.25)
        W[p + "attn_v.weight"] = normal((Ekv, E), 1.0 / math.sqrt(E))
        if qkv_bias:
            W[p + "attn_q.bias"] = normal((E,), 0.5)
            W[p + "attn_k.bias"] = normal((Ekv,), 0.5)
            W[p + "attn_v.bias"] = normal((Ekv,), 0.2)
        W[p + "attn_output.weight"] = normal((E, E), 0.7 / math.sqrt(E))
        W[p + "ffn_norm.weight"] = (1.0 + normal((E,), 0.1)).astype(np.float32)
        W[p + "ffn_gate.weight"] = normal((F, E), 1.0 / math.sqrt(E))
        W[p + "ffn_up.weight"] = normal((F, E), 1.0 / math.sqrt(E))
        W[p + "ffn_down.weight"] = normal((E, F), 0.7 / math.sqrt(F))
    W["output_norm.weight"] = (1.0 + normal((E,), 0.1)).astype(np.float32)
    if not tied:
        W["output.weight"] = normal((V, E), 0.4)
    return W


def golden_vocab(n_vocab):
    """A small but complete SentencePiece-style vocabulary: <unk>, <s>, </s>, byte-fallback
    tokens <0x00>..<0xF4> (every byte valid UTF-8 can contain: 0xF5-0xFF never occur, so any
    text tokenizes), then a few word pieces with the U+2581 space marker to fill the rest."""
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    for b in range(0xF5):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(6)
    pieces = ["\u2581", "e", "t", "\u2581t", "he", "\u2581a", "\u2581the", "in", "\u2581s", "er", "an", "on"]
    n = 0
    while len(tokens) < n_vocab:
        piece = pieces[n] if n < len(pieces) else "\u2581w" + str(n)
        tokens.append(piece)
        scores.append(-float(n + 1))
        types.append(1)
        n += 1
    assert len(set(tokens)) == len(tokens)
    return tokens[:n_vocab], scores[:n_vocab], types[:n_vocab]


def add_tokenizer(w, tokens, scores, types):
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_array("tokenizer.ggml.tokens", gw.T_STRING, tokens)
    w.add_array("tokenizer.ggml.scores", gw.T_FLOAT32, scores)
    w.add_array("tokenizer.ggml.token_type", gw.T_INT32, types)
    w.add_u32("tokenizer.ggml.unknown_token_id", 0)
    w.add_u32("tokenizer.ggml.bos_token_id", 1)
    w.add_u32("tokenizer.ggml.eos_token_id", 2)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)


def write_gguf(path, name, arch, hp, W, wtype, rope_scaling=None):
    w = gw.GGUFWriter()
    w.add_string("general.architecture", arch)
    w.add_string("general.name", name)
    w.add_u32("general.file_type", 0 if wtype == gw.GGML_F32 else 1)
    hd = hp["n_embd"] // hp["n_head"]
    w.add_u32(f"{arch}.context_length", hp["n_ctx"])
    w.add_u32(f"{arch}.embedding_length", hp["n_embd"])
    w.add_u32(f"{arch}.block_count", hp["n_layer"])
    w.add_u32(f"{arch}.feed_forward_length", hp["n_ff"])
    w.add_u32(f"{arch}.attention.head_count", hp["n_head"])
    w.add_u32(f"{arch}.attention.head_count_kv", hp["n_head_kv"])
    w.add_f32(f"{arch}.rope.freq_base", hp["rope_base"])
    w.add_f32(f"{arch}.attention.layer_norm_rms_epsilon", hp["eps"])
    w.add_u32(f"{arch}.rope.dimension_count", hd)
    if arch == "llama":
        w.add_u32(f"{arch}.vocab_size", hp["n_vocab"])
    if rope_scaling is not None:
        w.add_string(f"{arch}.rope.scaling.type", rope_scaling[0])
        w.add_f32(f"{arch}.rope.scaling.factor", rope_scaling[1])
    add_tokenizer(w, *golden_vocab(hp["n_vocab"]))
    order = ["token_embd.weight", "rope_freqs.weight"]
    for l in range(hp["n_layer"]):
        for t in ["attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
                  "attn_v.weight", "attn_v.bias", "attn_output.weight", "ffn_norm.weight",
                  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"]:
            order.append(f"blk.{l}.{t}")
    order += ["output_norm.weight", "output.weight"]
    assert set(W) <= set(order), set(W) - set(order)
    for tname in order:
        if tname not in W:
            continue
        a = W[tname]
        t = wtype if a.ndim == 2 else gw.GGML_F32
        w.add_tensor(tname, a, t)
    w.write(path)


def stored_values(W, wtype):
    """What a reader of the file sees: 2-D weights rounded to f16 for F16 models."""
    out = {}
    for k, a in W.items():
        if wtype == gw.GGML_F16 and a.ndim == 2:
            a = a.astype(np.float16)
        out[k] = torch.from_numpy(a.astype(np.float64))
    return out


# name, arch, weight type, tied, qkv bias, rope mode, extras, description
MODELS = [
    ("llama_f32", "llama", gw.GGML_F32, False, False, "normal", {},
     "llama, F32, untied output, GQA 4/2, interleaved (normal) RoPE"),
    ("llama_f16", "llama", gw.GGML_F16, False, False, "normal", {},
     "llama_f32 shapes with F16 2-D weights (norms F32); reference uses the f16-rounded weights"),
    ("llama_tied_rope_freqs", "llama", gw.GGML_F32, True, False, "normal", {"llama3": True},
     "llama, F32, tied output (no output.weight), llama3-style rope_freqs.weight frequency divisors"),
    ("llama_rope_linear", "llama", gw.GGML_F32, True, False, "normal", {"linear": 2.0},
     "llama, F32, tied output, linear RoPE scaling factor 2 (positions x 1/2)"),
    ("qwen2_f32", "qwen2", gw.GGML_F32, False, True, "neox", {},
     "qwen2, F32, untied output, Q/K/V biases, NeoX RoPE"),
]

# llama3 scaling parameters scaled down to the tiny model: with head_dim 16 and base 1e4 the
# pair wavelengths are 6.3, 20, 63, 199, 628, ...; orig_ctx 64 gives factors 1, ~1.3, ~7.9, 8, ...
LLAMA3 = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, orig_ctx=64)


def attention_entropy_report(W, hp, tokens, rope_mode):
    """Mean normalised entropy of layer-0 attention rows (1.0 = uniform)."""
    T = len(tokens)
    hd = hp["n_embd"] // hp["n_head"]
    ang = rope_angles(list(range(T)), hd, hp["rope_base"], W.get("rope_freqs.weight"), hp.get("pos_scale", 1.0))
    x = W["token_embd.weight"][torch.as_tensor(tokens)]
    h = rms_norm(x, W["blk.0.attn_norm.weight"], hp["eps"])
    q = h @ W["blk.0.attn_q.weight"].T
    k = h @ W["blk.0.attn_k.weight"].T
    if "blk.0.attn_q.bias" in W:
        q, k = q + W["blk.0.attn_q.bias"], k + W["blk.0.attn_k.bias"]
    q = apply_rope(q.view(T, hp["n_head"], hd), ang, rope_mode)
    k = apply_rope(k.view(T, hp["n_head_kv"], hd), ang, rope_mode)
    s = (q[:, 0, :] @ k[:, 0, :].T) / math.sqrt(hd)
    s = s + torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    a = torch.softmax(s, -1)
    ent = -(a * torch.log(a.clamp_min(1e-300))).sum(-1)[1:]
    norm = torch.log(torch.arange(2, T + 1, dtype=torch.float64))
    return float((ent / norm).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "golden"))
    ap.add_argument("--seed", type=int, default=20261121)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    index = []
    for mi, (name, arch, wtype, tied, bias, rope_mode, extra, desc) in enumerate(MODELS):
        rng = np.random.default_rng([args.seed, mi])
        hp = dict(BASE_HPARAMS)
        hd = hp["n_embd"] // hp["n_head"]
        W = make_weights(rng, hp, tied, bias)
        rope_scaling = None
        if extra.get("llama3"):
            W["rope_freqs.weight"] = llama3_freq_factors(hd, hp["rope_base"], **LLAMA3)
        if "linear" in extra:
            rope_scaling = ("linear", extra["linear"])
            hp["pos_scale"] = 1.0 / extra["linear"]
        # prompt: BOS then random ids from the non-special range
        prompt = [1] + [int(t) for t in rng.integers(3, hp["n_vocab"], size=N_PROMPT - 1)]

        gguf_name = name + ".gguf"
        write_gguf(os.path.join(args.out, gguf_name), name, arch, hp, W, wtype, rope_scaling)

        Wt = stored_values(W, wtype)
        logits = forward(Wt, hp, prompt, rope_mode)

        # --- self-checks of the reference --------------------------------------------
        inc = forward_incremental(Wt, hp, prompt, rope_mode)
        d_inc = float((inc - logits).abs().max())
        assert d_inc < 1e-10, f"{name}: incremental vs batched differ by {d_inc}"
        checks = {"incremental_vs_batched_max_abs": d_inc}
        if rope_mode == "normal":
            # rotate-half RoPE on head-permuted q/k weights must give the same logits
            Wp = dict(Wt)
            for l in range(hp["n_layer"]):
                Wp[f"blk.{l}.attn_q.weight"] = interleaved_to_halves(Wt[f"blk.{l}.attn_q.weight"], hp["n_head"], hd)
                Wp[f"blk.{l}.attn_k.weight"] = interleaved_to_halves(Wt[f"blk.{l}.attn_k.weight"], hp["n_head_kv"], hd)
            alt = forward(Wp, hp, prompt, "neox")
            d_alt = float((alt - logits).abs().max())
            assert d_alt < 1e-10, f"{name}: permuted rotate-half formulation differs by {d_alt}"
            checks["permuted_neox_vs_interleaved_max_abs"] = d_alt
            # and the RoPE convention matters (guards against a degenerate test)
            wrong = forward(Wt, hp, prompt, "neox")
            checks["wrong_rope_mode_max_abs"] = float((wrong - logits).abs().max())
        if extra.get("llama3") or "linear" in extra:
            hp0 = dict(hp)
            hp0.pop("pos_scale", None)
            W0 = {k: v for k, v in Wt.items() if k != "rope_freqs.weight"}
            plain = forward(W0, hp0, prompt, rope_mode)
            checks["unscaled_rope_max_abs"] = float((plain - logits).abs().max())
        if wtype == gw.GGML_F16:
            full = forward(stored_values(W, gw.GGML_F32), hp, prompt, rope_mode)
            checks["f32_weights_vs_f16_weights_max_abs"] = float((full - logits).abs().max())

        lf = logits.to(torch.float32).numpy()
        lf.astype("<f4").tofile(os.path.join(args.out, name + ".logits.bin"))
        ent = attention_entropy_report(Wt, hp, prompt, rope_mode)
        stats = {
            "logit_std": float(logits.std()),
            "logit_max_abs": float(logits.abs().max()),
            "mean_row_range": float((logits.max(1).values - logits.min(1).values).mean()),
            "layer0_head0_attention_entropy_vs_uniform": ent,
        }
        side = {
            "model": gguf_name,
            "logits": name + ".logits.bin",
            "description": desc,
            "architecture": arch,
            "weight_type": "f32" if wtype == gw.GGML_F32 else "f16",
            "rope_mode": rope_mode,
            "logits_dtype": "float32-le",
            "shape": [len(prompt), hp["n_vocab"]],
            "prompt": prompt,
            "tolerance_max_abs": 1e-4 if wtype == gw.GGML_F32 else 2e-2,
            "stats": stats,
            "reference_self_checks": checks,
        }
        if extra.get("llama3"):
            side["rope_freqs"] = [float(v) for v in W["rope_freqs.weight"]]
            side["llama3_params"] = LLAMA3
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(side, f, indent=1)
            f.write("\n")
        index.append(name)
        print(f"{name}: {json.dumps(stats)}\n    checks: {json.dumps(checks)}")

    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"models": index, "generator": "tools/py/make_golden.py", "seed": args.seed}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

"""engram-tiny: a llama-architecture decoder in plain PyTorch (1.13 compatible).

RoPE is applied in the *interleaved* form used by GGUF/llama.cpp's normal rope mode:
pairs (x[2i], x[2i+1]) are rotated by pos * base^(-2i/d). Training in that form means
the exported Q/K weights need no permutation.
GQA: query head h uses key/value head h // (n_head // n_head_kv) (llama.cpp's broadcast rule).
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 4096
    dim: int = 256
    n_layer: int = 4
    n_head: int = 8
    n_head_kv: int = 4
    ffn_dim: int = 768
    ctx: int = 512
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, T, device=None):
    hd = cfg.dim // cfg.n_head
    inv = cfg.rope_base ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    # x: [B, H, T, hd]; interleaved pairs
    x1 = x[..., 0::2]
    x2 = x[..., 1::2]
    y1 = x1 * cos - x2 * sin
    y2 = x1 * sin + x2 * cos
    return torch.stack((y1, y2), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.dim // cfg.n_head
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.wq = nn.Linear(cfg.dim, cfg.n_head * hd, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_head_kv * hd, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_head_kv * hd, bias=False)
        self.wo = nn.Linear(cfg.n_head * hd, cfg.dim, bias=False)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.w_gate = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.w_up = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.w_down = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin, mask):
        cfg = self.cfg
        B, T, _ = x.shape
        hd = cfg.dim // cfg.n_head
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, cfg.n_head, hd).transpose(1, 2)
        k = self.wk(h).view(B, T, cfg.n_head_kv, hd).transpose(1, 2)
        v = self.wv(h).view(B, T, cfg.n_head_kv, hd).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        rep = cfg.n_head // cfg.n_head_kv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, cfg.n_head * hd)
        x = x + self.wo(o)
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Model(nn.Module):
    def __init__(self, cfg, init="small"):
        """init: "small" (GPT-2 style N(0, 0.02) for every matrix), "torch" (PyTorch's defaults:
        N(0, 1) embeddings, uniform +-1/sqrt(fan_in) linears) or "shared" ("small" plus one random
        vector added to every token embedding: a content-independent direction in the residual
        stream from step 0, which a previous-token head (attention by position alone, the first
        half of an induction circuit) needs and otherwise has to discover on its own)"""
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.out = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self._rope = {}
        for n, p in self.named_parameters():
            if p.dim() == 2 and init != "torch":
                std = 0.02
                if n.endswith("wo.weight") or n.endswith("w_down.weight"):
                    std = 0.02 / math.sqrt(2 * cfg.n_layer)
                nn.init.normal_(p, 0.0, std)
        if init == "shared":
            with torch.no_grad():
                self.tok.weight += torch.randn(cfg.dim) * 0.02

    def forward(self, idx, n_active=None):
        """n_active: run only the first n_active blocks (used while the model is grown during training)"""
        B, T = idx.shape
        if T not in self._rope:
            self._rope[T] = rope_tables(self.cfg, T)
        cos, sin = self._rope[T]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        x = self.tok(idx)
        for b in self.blocks[: n_active or len(self.blocks)]:
            x = b(x, cos, sin, mask)
        return self.out(self.norm(x))


def grow_identity(model, first_new):
    """make blocks[first_new:] identity maps (zero attention-output and FFN-down weights)"""
    with torch.no_grad():
        for b in model.blocks[first_new:]:
            b.wo.weight.zero_()
            b.w_down.weight.zero_()


def head_group_maps(model, n_kv):
    """Maps (parameter name -> function on a tensor of that parameter's shape) that re-order the heads
    of every multi-head attention block so that the heads which will share one key/value head under
    GQA are adjacent and alike (greedy pairing by cosine similarity of their key/value projections).
    The same re-ordering is applied to wq, wk, wv and the columns of wo, so the function is unchanged.
    The functions are applied to the weights and to the optimizer's moments alike."""
    cfg = model.cfg
    H, hd = cfg.n_head, cfg.dim // cfg.n_head
    g = H // n_kv
    assert cfg.n_head_kv == H and H % n_kv == 0
    maps = {}
    with torch.no_grad():
        for i, b in enumerate(model.blocks):
            kv = torch.cat([b.wk.weight.view(H, hd, -1), b.wv.weight.view(H, hd, -1)], 1).reshape(H, -1)
            kvn = F.normalize(kv, dim=1)
            sim = kvn @ kvn.T
            left, order = list(range(H)), []
            while left:
                grp = [left.pop(0)]
                for _ in range(g - 1):
                    best = max(left, key=lambda j: float(sum(sim[k, j] for k in grp)))
                    left.remove(best)
                    grp.append(best)
                order += grp
            perm = torch.tensor(order)
            rows = lambda t, perm=perm: t.reshape(H, hd, -1)[perm].reshape(H * hd, -1)
            cols = lambda t, perm=perm: t.reshape(t.size(0), H, hd)[:, perm].reshape(t.size(0), H * hd)
            for w in ("wq", "wk", "wv"):
                maps[f"blocks.{i}.{w}.weight"] = rows
            maps[f"blocks.{i}.wo.weight"] = cols
    return maps


def shrink_kv_groups(model, n_kv, r):
    """Pull the key/value projections of each group of g adjacent heads toward the group mean:
    w <- mean + r * (w - mean). r = 0 makes the multi-head model exactly a GQA model."""
    cfg = model.cfg
    H, hd = cfg.n_head, cfg.dim // cfg.n_head
    with torch.no_grad():
        for b in model.blocks:
            for lin in (b.wk, b.wv):
                w = lin.weight.view(n_kv, H // n_kv, hd, -1)
                m = w.mean(1, keepdim=True)
                w.copy_(m + r * (w - m))


def kv_pool_maps(model, n_kv):
    """Maps that mean-pool the key/value projections of each group of adjacent heads into one
    key/value head (Ainslie et al. 2023); exact when shrink_kv_groups(r=0) was applied first."""
    cfg = model.cfg
    H, hd = cfg.n_head, cfg.dim // cfg.n_head
    pool = lambda t: t.reshape(n_kv, H // n_kv, hd, -1).mean(1).reshape(n_kv * hd, -1)
    maps = {}
    for i in range(len(model.blocks)):
        maps[f"blocks.{i}.wk.weight"] = pool
        maps[f"blocks.{i}.wv.weight"] = pool
    return maps


def apply_maps(model, maps, n_head_kv=None):
    """Replace each named weight w by maps[name](w) (shapes may change); set cfg.n_head_kv if given."""
    with torch.no_grad():
        for name, fn in maps.items():
            mod = model.get_submodule(name.rsplit(".", 1)[0])
            w = fn(mod.weight.data)
            if w.shape == mod.weight.shape:
                mod.weight.data.copy_(w)
            else:
                mod.weight = nn.Parameter(w.contiguous())
                mod.out_features, mod.in_features = w.shape
    if n_head_kv is not None:
        model.cfg.n_head_kv = n_head_kv
        for b in model.blocks:
            b.cfg = model.cfg


def n_params(model):
    return sum(p.numel() for p in model.parameters())

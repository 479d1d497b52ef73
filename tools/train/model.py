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
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.out = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self._rope = {}
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if n.endswith("wo.weight") or n.endswith("w_down.weight"):
                    std = 0.02 / math.sqrt(2 * cfg.n_layer)
                nn.init.normal_(p, 0.0, std)

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


def mha_to_gqa(model, n_kv):
    """Convert multi-head attention to grouped-query attention in place (Ainslie et al. 2023: mean-pool
    the key/value projections of the heads that will share one kv head). Query heads are first
    re-ordered (with the matching columns of wo, which leaves the function unchanged) so that the
    heads sharing a kv head are the ones whose key/value projections are most alike (greedy pairing
    by cosine similarity), which keeps the damage to circuits such as induction heads small."""
    cfg = model.cfg
    H, hd = cfg.n_head, cfg.dim // cfg.n_head
    g = H // n_kv
    assert cfg.n_head_kv == H and H % n_kv == 0
    with torch.no_grad():
        for b in model.blocks:
            kv = torch.cat([b.wk.weight.view(H, hd, -1), b.wv.weight.view(H, hd, -1)], 1).reshape(H, -1)
            kvn = F.normalize(kv, dim=1)
            sim = kvn @ kvn.T
            left, order = list(range(H)), []
            while left:
                h0 = left.pop(0)
                grp = [h0]
                for _ in range(g - 1):
                    best = max(left, key=lambda j: float(sum(sim[i, j] for i in grp)))
                    left.remove(best)
                    grp.append(best)
                order += grp
            perm = torch.tensor(order)
            wq = b.wq.weight.view(H, hd, -1)[perm].reshape(H * hd, -1)
            wo = b.wo.weight.view(-1, H, hd)[:, perm].reshape(-1, H * hd)
            wk = b.wk.weight.view(H, hd, -1)[perm].view(n_kv, g, hd, -1).mean(1).reshape(n_kv * hd, -1)
            wv = b.wv.weight.view(H, hd, -1)[perm].view(n_kv, g, hd, -1).mean(1).reshape(n_kv * hd, -1)
            b.wq.weight.copy_(wq)
            b.wo.weight.copy_(wo)
            b.wk = nn.Linear(cfg.dim, n_kv * hd, bias=False)
            b.wv = nn.Linear(cfg.dim, n_kv * hd, bias=False)
            b.wk.weight.copy_(wk)
            b.wv.weight.copy_(wv)
    cfg.n_head_kv = n_kv
    for b in model.blocks:
        b.cfg = cfg


def n_params(model):
    return sum(p.numel() for p in model.parameters())

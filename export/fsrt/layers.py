"""Building blocks shared by FSRT's encoder and decoder: the sinusoidal positional encoding and pre-norm
transformer blocks (ViT-style, as in SRT: Sajjadi et al., CVPR 2022, and its OSRT improvements).

Module and parameter names follow the released checkpoints' state_dict keys (`layers.<i>.0.norm`,
`layers.<i>.0.fn.to_qkv`, `layers.<i>.1.fn.net.0`, ...), so the files load with strict=True.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PositionalEncoding(nn.Module):
    """[sin(c * 2^o * pi) for every (coordinate d, octave o), d-major, o-minor; then cos in the same order].

    Precision (the reason this module is kept in fp32 in any reduced-precision engine): the pixel octaves reach
    o = 14, so arguments reach ~5.1e4 rad where an fp32 ulp is 2^-8 and an fp16 ulp is 32. Upstream forms the
    argument as fp32(c * fp32(2^o * fp32(pi))) and the trained weights have seen exactly those rounded values;
    the multiplier here is built the same way (2^o is exact in fp32, times fp32(pi)), and the product is one
    fp32 multiply. `sin`/`cos` must do full range reduction (torch's and onnxruntime's do; CUDA __sinf does not).
    """

    def __init__(self, num_octaves: int, start_octave: int):
        super().__init__()
        self.num_octaves, self.start_octave = num_octaves, start_octave

    def multipliers(self, device) -> torch.Tensor:
        # built per call in fp32 rather than held as a buffer, so model.half() cannot round them to fp16.
        # float32 tensor times a python float: torch rounds pi to fp32, and 2^o * fp32(pi) is exact
        o = torch.arange(self.start_octave, self.start_octave + self.num_octaves, dtype=torch.float32, device=device)
        return torch.exp2(o) * math.pi

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """coords [..., D] -> [..., 2 * D * num_octaves], computed in fp32 whatever the input dtype."""
        c = coords.float().unsqueeze(-1)
        scaled = (c * self.multipliers(c.device)).flatten(-2)  # [..., D * octaves], d-major
        return torch.cat([torch.sin(scaled), torch.cos(scaled)], -1).to(coords.dtype)


class PreNorm(nn.Module):
    """x -> fn(LayerNorm(x), ...); the residual is added by the caller (Transformer)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x, *context):
        return self.fn(self.norm(x), *context)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        # indices 0 and 3 are the checkpoint's Linear layers (upstream has Dropout at 2 and 4, identity at eval)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.net(x)


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N, heads*d] -> [B, heads, N, d] (the channel axis is split head-major)."""
    b, n, c = t.shape
    return t.reshape(b, n, heads, c // heads).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head softmax(q k^T / sqrt(d)) v on [B, N, heads*d] tensors; returns [B, Nq, heads*d].

    PyTorch's fused attention computes the same function in blocks, so a chunk of queries never holds the
    whole [heads, Nq, Nk] score matrix (1024 keys x 12 heads x 4 B = 48 KiB per query otherwise)."""
    q, k, v = _heads(q, heads), _heads(k, heads), _heads(v, heads)
    if torch.onnx.is_in_onnx_export():
        # the plain formula for the graph: MatMul, Softmax, MatMul are native in every runtime
        w = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5), -1)
        out = torch.matmul(w, v)
    else:
        out = F.scaled_dot_product_attention(q, k, v)  # default scale 1/sqrt(d) = 1/8, as upstream
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int = 12, dim_head: int = 64):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim))

    def forward(self, x):
        q, k, v = self.to_qkv(x).chunk(3, -1)
        return self.to_out(attend(q, k, v, self.heads))


class CrossAttention(nn.Module):
    """Queries from the (normalised) pixel tokens, keys and values from the raw scene tokens z."""

    def __init__(self, dim: int, kv_dim: int, heads: int = 12, dim_head: int = 64):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(kv_dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim))

    def keys_values(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.to_kv(z).chunk(2, -1)
        return k, v

    def forward(self, x, kv: tuple[torch.Tensor, torch.Tensor]):
        return self.to_out(attend(self.to_q(x), kv[0], kv[1], self.heads))


class Transformer(nn.Module):
    """`depth` pre-norm blocks: x += attn(LN(x)); x += ffn(LN(x)). No final LayerNorm (none upstream)."""

    def __init__(self, dim: int, depth: int, mlp_dim: int, kv_dim: int | None = None, heads: int = 12,
                 dim_head: int = 64):
        super().__init__()
        attn = (lambda: SelfAttention(dim, heads, dim_head)) if kv_dim is None else \
            (lambda: CrossAttention(dim, kv_dim, heads, dim_head))
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(dim, attn()), PreNorm(dim, FeedForward(dim, mlp_dim))]) for _ in range(depth))

    def keys_values(self, z: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-block (k, v) of the scene tokens (cross-attention only): computed once, reused by every chunk."""
        return [attn.fn.keys_values(z) for attn, _ in self.layers]

    def forward(self, x, kvs: list | None = None):
        for i, (attn, ff) in enumerate(self.layers):
            x = (attn(x) if kvs is None else attn(x, kvs[i])) + x
            x = ff(x) + x
        return x

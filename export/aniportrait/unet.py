"""AniPortrait's two UNets on Stable Diffusion 1.5's layout, with the reference attention as explicit tensors.

Both are assembled from diffusers' own blocks (ResnetBlock2D, Downsample2D, Upsample2D, Attention, FeedForward,
Timesteps, TimestepEmbedding), so every state_dict key is the one of the released checkpoints:

* `ReferenceUNet` (reference_unet.pth, 682 keys): SD1.5's UNet2DConditionModel without conv_norm_out/conv_out.
  Its forward RETURNS the bank: the input of every transformer block's self-attention, norm1(x), 16 tensors
  (B, h*w, C), as upstream's ReferenceAttentionControl "write" mode records them.
* `DenoisingUNet` (denoising_unet.pth + motion_module.pth, 1274 keys): upstream's UNet3DConditionModel. Its
  inflated convs and group norms act per frame, so frames are folded into the batch for them; the 21 temporal
  motion modules attend over the frame axis. Its forward TAKES the bank (and which rows may read it) as inputs:
  each self-attention attends over [its own tokens, the bank tokens] ("read" mode). Rows with `reference_rows`
  = 0 (upstream: the unconditional half of a classifier-free-guidance batch) get plain self-attention: the bank
  keys are masked out of their softmax, which is exactly attention over their own tokens.

No module keeps state between calls: the bank goes out of one forward and into the other.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from torch import nn

from .config import UNetConfig


def attend(attn: Attention, x: torch.Tensor, context: torch.Tensor | None = None,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head attention with the weights of a diffusers `Attention` (to_q/to_k/to_v/to_out.0, scale
    dim_head^-0.5), optional boolean key mask (B, 1, 1, Lk) where True = may attend."""
    context = x if context is None else context
    b, lq, _ = x.shape
    h = attn.heads

    def split(t):
        return t.reshape(b, t.shape[1], h, -1).transpose(1, 2)

    q, k, v = split(attn.to_q(x)), split(attn.to_k(context)), split(attn.to_v(context))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attn.to_out[0](y.transpose(1, 2).reshape(b, lq, -1))


class TransformerBlock(nn.Module):
    """SD's BasicTransformerBlock (norm1/attn1, norm2/attn2 cross-attention, norm3/GEGLU ff) with the bank
    tap (`forward` returns norm1(x) as well) and the bank read (`bank` concatenated to the self-attention keys)."""

    def __init__(self, dim: int, heads: int, cross_attention_dim: int):
        super().__init__()
        self.attn1 = Attention(dim, heads=heads, dim_head=dim // heads, bias=False)
        self.norm1 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross_attention_dim=cross_attention_dim, heads=heads, dim_head=dim // heads,
                               bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, context, bank=None, reads=None):
        n = self.norm1(x)
        if bank is None:
            y = attend(self.attn1, n)
        else:
            # upstream casts the bank to float16 when handing it over (ReferenceAttentionControl.update), even in
            # a float32 pipeline; the fixtures keep that rounding, so do we.
            bank = bank.to(torch.float16).to(n.dtype)
            keys = torch.cat([n, bank], dim=1)
            own = torch.ones(n.shape[0], 1, 1, n.shape[1], dtype=torch.bool, device=n.device)
            if reads is None:
                reads = torch.ones(n.shape[0], device=n.device)
            ref = (reads > 0.5).reshape(-1, 1, 1, 1).expand(-1, 1, 1, bank.shape[1])
            y = attend(self.attn1, n, keys, mask=torch.cat([own, ref], dim=-1))
        y = y + x
        y = attend(self.attn2, self.norm2(y), context) + y
        return self.ff(self.norm3(y)) + y, n


class SpatialTransformer(nn.Module):
    """Transformer2DModel / Transformer3DModel of SD1.5 (GroupNorm eps 1e-6, 1x1 conv in/out, one block)."""

    def __init__(self, channels: int, cfg: UNetConfig):
        super().__init__()
        self.norm = nn.GroupNorm(cfg.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(channels, cfg.heads, cfg.cross_attention_dim)])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x, context, bank=None, reads=None):
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        t, tap = self.transformer_blocks[0](t, context, bank, reads)
        t = t.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return self.proj_out(t) + x, tap


class PositionalEncoding(nn.Module):
    """Holds `pe` (1, max_len, C): loaded from the checkpoint, never recomputed (the fixtures fill it by the weight
    rule; real checkpoints hold upstream's sinusoid table)."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.register_buffer("pe", torch.zeros(1, max_len, dim))


class TemporalAttention(Attention):
    """Self-attention over the frame axis with a learned/stored position table (upstream VersatileAttention)."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__(dim, heads=heads, dim_head=dim // heads, bias=False)
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def forward(self, x, frames: int):
        bf, d, c = x.shape
        t = x.reshape(bf // frames, frames, d, c).transpose(1, 2).reshape(-1, frames, c)
        t = attend(self, t + self.pos_encoder.pe[:, :frames])
        return t.reshape(bf // frames, d, frames, c).transpose(1, 2).reshape(bf, d, c)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(dim, heads, max_len) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x, frames: int):
        for attn, norm in zip(self.attention_blocks, self.norms):
            x = attn(norm(x), frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, cfg: UNetConfig):
        super().__init__()
        self.norm = nn.GroupNorm(cfg.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(channels, cfg.motion_heads,
                                                                          cfg.motion_max_len)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x, frames: int):
        bf, c, h, w = x.shape
        t = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(bf, h * w, c))
        t = self.transformer_blocks[0](t, frames)
        return self.proj_out(t).reshape(bf, h, w, c).permute(0, 3, 1, 2) + x


class MotionModule(nn.Module):
    """AnimateDiff's VanillaTemporalModule (key prefix `temporal_transformer.`)."""

    def __init__(self, channels: int, cfg: UNetConfig):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, cfg)

    def forward(self, x, frames: int):
        return self.temporal_transformer(x, frames)


class Level(nn.Module):
    """One down, mid or up block: resnets, optional transformers, optional motion modules, optional resampler.
    Per layer: resnet -> transformer -> motion module (the order of upstream's 3-D blocks)."""

    def __init__(self, cfg: UNetConfig, in_chs: list[int], out_ch: int, attention: bool, motion: bool,
                 down: bool = False, up: bool = False, mid: bool = False):
        super().__init__()
        temb = cfg.block_out_channels[0] * 4
        n_inner = len(in_chs) - 1 if mid else len(in_chs)
        # registration order = upstream's state_dict order (attentions before resnets)
        self.attentions = nn.ModuleList([SpatialTransformer(out_ch, cfg) for _ in range(n_inner)]) if attention \
            else None
        self.resnets = nn.ModuleList([ResnetBlock2D(in_channels=c, out_channels=out_ch, temb_channels=temb,
                                                    groups=cfg.norm_groups, eps=1e-5) for c in in_chs])
        self.motion_modules = nn.ModuleList([MotionModule(out_ch, cfg) for _ in range(n_inner)]) if motion \
            else None
        if down:
            self.downsamplers = nn.ModuleList([Downsample2D(out_ch, use_conv=True, out_channels=out_ch, padding=1,
                                                                  name="op")])
        if up:
            self.upsamplers = nn.ModuleList([Upsample2D(out_ch, use_conv=True, out_channels=out_ch)])
        self.mid = mid

    def inner(self, i, x, context, frames, banks, reads, taps, names):
        if self.attentions is not None:
            x, tap = self.attentions[i](x, context, None if banks is None else banks[names[i]], reads)
            taps[names[i]] = tap
        if self.motion_modules is not None:
            x = self.motion_modules[i](x, frames)
        return x


def _level_names(kind: str, index: int, n: int) -> list[str]:
    return [f"{kind}_{index}_{j}" if kind != "mid" else f"mid_{j}" for j in range(n)]


class UNetBase(nn.Module):
    """Shared layout of both UNets (SD1.5: 3 cross-attention down levels + 1 plain; mid; 1 plain + 3 up)."""

    def __init__(self, cfg: UNetConfig, motion: bool):
        super().__init__()
        ch = cfg.block_out_channels
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.time_proj = Timesteps(ch[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(ch[0], ch[0] * 4)
        n = cfg.layers_per_block
        self.down_blocks = nn.ModuleList()
        prev = ch[0]
        for i, c in enumerate(ch):
            last = i == len(ch) - 1
            self.down_blocks.append(Level(cfg, [prev] + [c] * (n - 1), c, attention=not last, motion=motion,
                                          down=not last))
            prev = c
        self.mid_block = Level(cfg, [ch[-1], ch[-1]], ch[-1], attention=True, motion=motion, mid=True)
        rev = list(reversed(ch))
        self.up_blocks = nn.ModuleList()
        prev = ch[-1]
        for i, c in enumerate(rev):
            skip_chs = [c] * n + [rev[min(i + 1, len(ch) - 1)]]  # channels of the skips it pops, in order
            in_chs = [(prev if j == 0 else c) + skip_chs[j] for j in range(n + 1)]
            self.up_blocks.append(Level(cfg, in_chs, c, attention=i > 0, motion=motion, up=i < len(ch) - 1))
            prev = c

    def bank_names(self) -> list[str]:
        """Transformer blocks in upstream's pairing order: sorted by -channels, stable over (down, up, mid)."""
        ch = self.cfg.block_out_channels
        entries = []
        for i, blk in enumerate(self.down_blocks):
            if blk.attentions is not None:
                entries += [(n, ch[i]) for n in _level_names("down", i, len(blk.attentions))]
        for i, blk in enumerate(self.up_blocks):
            if blk.attentions is not None:
                entries += [(n, ch[-1 - i]) for n in _level_names("up", i, len(blk.attentions))]
        entries += [(n, ch[-1]) for n in _level_names("mid", 0, 1)]
        return [n for n, _ in sorted(entries, key=lambda e: -e[1])]

    def _trunk(self, sample, timestep, context, frames, pose=None, banks=None, reads=None):
        """(B*F, C, h, w) latents -> last up-level output, and the norm1 taps of every transformer block."""
        t = timestep.reshape(-1).to(sample.dtype)
        if t.shape[0] == 1:
            t = t.expand(sample.shape[0] // frames)
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        emb = emb.repeat_interleave(frames, dim=0) if frames > 1 else emb
        taps: dict[str, torch.Tensor] = {}
        x = self.conv_in(sample)
        if pose is not None:
            x = x + pose[0]
        skips = [x]
        for i, blk in enumerate(self.down_blocks):
            names = _level_names("down", i, len(blk.resnets))
            for j, res in enumerate(blk.resnets):
                x = blk.inner(j, res(x, emb), context, frames, banks, reads, taps, names)
                skips.append(x)
            if hasattr(blk, "downsamplers"):
                x = blk.downsamplers[0](x)
                skips.append(x)
            if pose is not None:  # after the level emitted its skips: the skips do not carry fea1..4
                x = x + pose[i + 1]
        mid = self.mid_block
        x = mid.resnets[0](x, emb)
        x = mid.inner(0, x, context, frames, banks, reads, taps, ["mid_0"])
        x = mid.resnets[1](x, emb)
        for i, blk in enumerate(self.up_blocks):
            names = _level_names("up", i, len(blk.resnets))
            for j, res in enumerate(blk.resnets):
                x = res(torch.cat([x, skips.pop()], dim=1), emb)
                x = blk.inner(j, x, context, frames, banks, reads, taps, names)
            if hasattr(blk, "upsamplers"):
                x = blk.upsamplers[0](x)
        return x, taps


class ReferenceUNet(UNetBase):
    """forward(sample B x4xhxw, timestep (B,) or (1,), context Bx1xD) -> (last up-level output B x C0 x h x w,
    bank: tuple of norm1 taps in `bank_names()` order)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__(cfg, motion=False)

    def forward(self, sample, timestep, encoder_hidden_states):
        x, taps = self._trunk(sample, timestep, encoder_hidden_states, frames=1)
        return x, tuple(taps[n] for n in self.bank_names())


class DenoisingUNet(UNetBase):
    """forward(sample Bx4xFxhxw, timestep (B,) or (1,), context Bx1xD, pose features (5 tensors B x C x F x h x w),
    bank (16 tensors B x L x C in `bank_names()` order; None = no reference), reference_rows (B,) 1 = the row reads
    the bank (default all)) -> Bx4xFxhxw."""

    def __init__(self, cfg: UNetConfig):
        super().__init__(cfg, motion=True)
        self.conv_norm_out = nn.GroupNorm(cfg.norm_groups, cfg.block_out_channels[0], eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(cfg.block_out_channels[0], cfg.out_channels, 3, padding=1)

    @staticmethod
    def _fold(x):  # B C F h w -> (B F) C h w: inflated convs and norms act per frame
        b, c, f, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)

    def forward(self, sample, timestep, encoder_hidden_states, pose_features, bank=None, reference_rows=None):
        b, _, frames, h, w = sample.shape
        rep = (lambda t: t.repeat_interleave(frames, dim=0)) if frames > 1 else (lambda t: t)
        banks = None if bank is None else {n: rep(t) for n, t in zip(self.bank_names(), bank, strict=True)}
        reads = None if reference_rows is None else rep(reference_rows)
        x, _ = self._trunk(self._fold(sample), timestep, rep(encoder_hidden_states), frames,
                           pose=[self._fold(p) for p in pose_features], banks=banks, reads=reads)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.reshape(b, frames, -1, h, w).permute(0, 2, 1, 3, 4)

"""AniPortrait's PoseGuider (noise_latent_channels=320, use_ca=True): pose image -> five feature maps that the
denoising UNet adds after conv_in and after each down level.

Keys are upstream's (`conv_layers.*`, `final_proj`, `conv_layers_{1..4}`, `cross_attn{1..4}.*`, `scale`).
Upstream also pushes the reference pose through the same convs and passes it to the transformer blocks as
`encoder_hidden_states`, but those blocks have no cross-attention (attn2 is None), so it never reaches any output
(the fixtures checked this bitwise). We therefore take the pose only.
"""
from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from .config import PoseGuiderConfig
from .unet import attend


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class SelfAttentionBlock(nn.Module):
    """BasicTransformerBlock without cross-attention: norm1/attn1, norm3/GEGLU ff."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads=heads, dim_head=head_dim, bias=False)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(self, x):
        x = attend(self.attn1, self.norm1(x)) + x
        return self.ff(self.norm3(x)) + x


class PoseTransformer(nn.Module):
    """The pose guider's own Transformer2DModel: GroupNorm(eps 1e-6), 1x1 conv to heads*head_dim, one block, back."""

    def __init__(self, channels: int, cfg: PoseGuiderConfig):
        super().__init__()
        inner = cfg.heads * cfg.head_dim
        self.norm = nn.GroupNorm(cfg.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([SelfAttentionBlock(inner, cfg.heads, cfg.head_dim)])
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        t = self.proj_in(self.norm(x))
        inner = t.shape[1]
        t = self.transformer_blocks[0](t.permute(0, 2, 3, 1).reshape(b, h * w, inner))
        return self.proj_out(t.reshape(b, h, w, inner).permute(0, 3, 1, 2)) + x


class PoseGuider(nn.Module):
    """forward(pose B x3xFxHxW) -> (fea0..fea4), each B x C x F x h x w at H/8, H/16, H/32, H/64, H/64."""

    def __init__(self, cfg: PoseGuiderConfig = PoseGuiderConfig()):
        super().__init__()
        c = cfg.noise_latent_channels
        self.conv_layers = nn.Sequential(
            *_conv_bn_relu(3, 3), *_conv_bn_relu(3, 16, 4, 2),
            *_conv_bn_relu(16, 16), *_conv_bn_relu(16, 32, 4, 2),
            *_conv_bn_relu(32, 32), *_conv_bn_relu(32, 64, 4, 2),
            *_conv_bn_relu(64, 64), *_conv_bn_relu(64, 128))
        self.final_proj = nn.Conv2d(128, c, 1)
        self.conv_layers_1 = nn.Sequential(*_conv_bn_relu(c, c), *_conv_bn_relu(c, c, 3, 2))
        self.conv_layers_2 = nn.Sequential(*_conv_bn_relu(c, c), *_conv_bn_relu(c, 2 * c, 3, 2))
        self.conv_layers_3 = nn.Sequential(*_conv_bn_relu(2 * c, 2 * c), *_conv_bn_relu(2 * c, 4 * c, 3, 2))
        self.conv_layers_4 = nn.Sequential(*_conv_bn_relu(4 * c, 4 * c))
        self.cross_attn1 = PoseTransformer(c, cfg)
        self.cross_attn2 = PoseTransformer(2 * c, cfg)
        self.cross_attn3 = PoseTransformer(4 * c, cfg)
        self.cross_attn4 = PoseTransformer(4 * c, cfg)
        self.scale = nn.Parameter(torch.ones(1) * 2)

    def forward(self, pose):
        b, _, f, h, w = pose.shape
        x = pose.permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)

        def unfold(t):
            return t.reshape(b, f, *t.shape[1:]).permute(0, 2, 1, 3, 4)

        x = self.final_proj(self.conv_layers(x)) * self.scale
        fea = [unfold(x)]
        for convs, attn in ((self.conv_layers_1, self.cross_attn1), (self.conv_layers_2, self.cross_attn2),
                            (self.conv_layers_3, self.cross_attn3), (self.conv_layers_4, self.cross_attn4)):
            x = attn(convs(x))
            fea.append(unfold(x))
        return tuple(fea)

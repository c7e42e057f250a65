"""SPADE generator G: the warped 256x64x64 feature -> a 512x512 RGB image in (0, 1).

A 3x3 conv lifts the feature to 512 channels; six SPADE residual blocks at 64x64 and two upsampling ones (128, 256)
follow, each normalisation modulated by the warped feature itself (Park et al. 2019, "SPADE", Eq. 1); a final conv +
pixel shuffle gives 512x512 (LivePortrait paper, Sec. 3.1 "G"). The residual convs carry spectral norm
(Miyato et al. 2018): in eval mode the effective weight is weight_orig / sigma with sigma = u^T W v from the stored
u, v, so the checkpoint's weight_orig/_u/_v keys load as they are; `fold_spectral_norm` bakes W / sigma into a plain
weight for export.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class SpatialModulation(nn.Module):
    """Instance-normalise x, then scale by (1 + gamma) and shift by beta, both predicted from the segmentation map."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 128):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, seg):
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(seg)
        return F.instance_norm(x, eps=1e-5) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SpadeResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, label_channels: int):
        super().__init__()
        mid = min(cin, cout)
        self.has_shortcut_conv = cin != cout
        self.conv_0 = spectral_norm(nn.Conv2d(cin, mid, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(mid, cout, 3, padding=1))
        self.norm_0 = SpatialModulation(cin, label_channels)
        self.norm_1 = SpatialModulation(mid, label_channels)
        if self.has_shortcut_conv:
            self.conv_s = spectral_norm(nn.Conv2d(cin, cout, 1, bias=False))
            self.norm_s = SpatialModulation(cin, label_channels)

    def forward(self, x, seg):
        skip = self.conv_s(self.norm_s(x, seg)) if self.has_shortcut_conv else x
        y = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        y = self.conv_1(F.leaky_relu(self.norm_1(y, seg), 0.2))
        return skip + y


class SpadeGenerator(nn.Module):
    def __init__(self, upscale: int = 2, block_expansion: int = 64, max_features: int = 512,
                 num_down_blocks: int = 2, out_channels: int = 64):
        super().__init__()
        cin = min(max_features, block_expansion * 2 ** num_down_blocks)   # 256
        width = 2 * cin
        self.fc = nn.Conv2d(cin, width, 3, padding=1)
        for i in range(6):
            setattr(self, f"G_middle_{i}", SpadeResidualBlock(width, width, cin))
        self.up_0 = SpadeResidualBlock(width, cin, cin)
        self.up_1 = SpadeResidualBlock(cin, out_channels, cin)
        if upscale is None or upscale <= 1:
            self.conv_img = nn.Conv2d(out_channels, 3, 3, padding=1)
        else:
            self.conv_img = nn.Sequential(nn.Conv2d(out_channels, 3 * upscale * upscale, 3, padding=1),
                                          nn.PixelShuffle(upscale))

    def logits(self, feature):
        """The image before the final sigmoid (what `conv_img` outputs)."""
        seg = feature
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        return self.conv_img(F.leaky_relu(x, 0.2))

    def forward(self, feature):
        return torch.sigmoid(self.logits(feature))


@torch.no_grad()
def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every spectral-norm wrapper by a plain `weight` = weight_orig / sigma (eval-mode sigma, float64)."""
    for sub in module.modules():
        for key, hook in list(sub._forward_pre_hooks.items()):
            if type(hook).__name__ != "SpectralNorm":
                continue
            orig = getattr(sub, hook.name + "_orig").double()
            u = getattr(sub, hook.name + "_u").double()
            v = getattr(sub, hook.name + "_v").double()
            mat = orig.movedim(hook.dim, 0).reshape(orig.shape[hook.dim], -1)
            sigma = torch.dot(u, mat @ v)
            weight = (orig / sigma).float()
            del sub._forward_pre_hooks[key]
            for suffix in ("_orig", "_u", "_v"):
                delattr(sub, hook.name + suffix)
            if hasattr(sub, hook.name):
                delattr(sub, hook.name)
            sub.register_parameter(hook.name, nn.Parameter(weight))
    return module

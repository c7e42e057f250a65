"""Motion extractor M: a ConvNeXt-V2-tiny backbone with seven linear heads.

From a 256x256 source image it predicts the canonical keypoints (21x3), head pitch/yaw/roll as 66-bin logits each,
translation t (3), expression deformation (21x3) and scale (1) (LivePortrait paper, Sec. 3.1, "M"; ConvNeXt V2 by
Woo et al. 2023, with Global Response Normalization, their Eq. 1-3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """GRN on NHWC: scale each channel by its spatial L2 norm relative to the mean over channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x):
        energy = torch.sqrt((x * x).sum(dim=(1, 2), keepdim=True))
        ratio = energy / (energy.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * ratio) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GlobalResponseNorm(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class KeypointDetector(nn.Module):
    """ConvNeXt-V2 (depths 3-3-9-3, widths 96-192-384-768 for "tiny") -> global average pool -> heads."""

    def __init__(self, num_kp: int = 21, num_bins: int = 66, in_chans: int = 3,
                 depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)):
        super().__init__()
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), ChannelsFirstLayerNorm(dims[0]))])
        for a, b in zip(dims[:-1], dims[1:]):
            self.downsample_layers.append(nn.Sequential(ChannelsFirstLayerNorm(a), nn.Conv2d(a, b, 2, stride=2)))
        self.stages = nn.ModuleList(nn.Sequential(*[ConvNeXtV2Block(d) for _ in range(n)]) for d, n in zip(dims, depths))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        width = dims[-1]
        self.fc_kp = nn.Linear(width, 3 * num_kp)
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, num_bins)
        self.fc_yaw = nn.Linear(width, num_bins)
        self.fc_roll = nn.Linear(width, num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * num_kp)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        x = self.norm(x.mean(dim=(-2, -1)))
        return {"pitch": self.fc_pitch(x), "yaw": self.fc_yaw(x), "roll": self.fc_roll(x), "t": self.fc_t(x),
                "exp": self.fc_exp(x), "scale": self.fc_scale(x), "kp": self.fc_kp(x)}


BACKBONES = {"convnextv2_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))}


class MotionExtractor(nn.Module):
    """forward(image Bx3x256x256 in [0,1]) -> dict of raw head outputs (see HEADS); keys `detector.*`."""

    def __init__(self, num_kp: int = 21, backbone: str = "convnextv2_tiny", num_bins: int = 66):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown motion-extractor backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        self.detector = KeypointDetector(num_kp=num_kp, num_bins=num_bins, **BACKBONES[backbone])

    def forward(self, x):
        return self.detector(x)

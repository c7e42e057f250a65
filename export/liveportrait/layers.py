"""Small building blocks shared by LivePortrait's networks (attribute names follow the checkpoints' keys)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBnAct2d(nn.Module):
    """3x3 conv -> BatchNorm -> ReLU (or LeakyReLU 0.01), same resolution. Keys: conv.*, norm.*"""

    def __init__(self, cin: int, cout: int, leaky: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout)
        self.leaky = leaky

    def forward(self, x):
        x = self.norm(self.conv(x))
        return F.leaky_relu(x, 0.01) if self.leaky else F.relu(x)


class ConvBnPool2d(nn.Module):
    """3x3 conv -> BatchNorm -> ReLU -> 2x2 average pool (halves H and W). Keys: conv.*, norm.*"""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class PreActResidual3d(nn.Module):
    """x + conv2(relu(bn2(conv1(relu(bn1(x)))))), 3x3x3 convs, channel count kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        y = self.conv2(F.relu(self.norm2(y)))
        return y + x


class Conv3dBnRelu(nn.Module):
    """3x3x3 conv -> BatchNorm -> ReLU, optionally with a (1,2,2) average pool after it or a nearest (1,2,2)
    upsample before it. Keys: conv.*, norm.*"""

    def __init__(self, cin: int, cout: int, resample: str | None = None):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)
        self.resample = resample

    def forward(self, x):
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        x = F.relu(self.norm(self.conv(x)))
        if self.resample == "down":
            x = F.avg_pool3d(x, (1, 2, 2))
        return x


def normalized_grid_3d(depth: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(D, H, W, 3) grid of (x, y, z) in [-1, 1], x along width, y along height, z along depth (corner-aligned)."""
    def axis(n):
        return torch.arange(n, dtype=like.dtype, device=like.device) / (n - 1) * 2 - 1
    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)

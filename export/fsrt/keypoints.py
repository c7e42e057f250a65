"""FSRT's driving-image networks: the unsupervised keypoint detector (FOMM's, Siarohin et al., NeurIPS 2019,
without the Jacobian head) and the expression encoder that pools per-keypoint features under the heatmaps.

    image Bx3x256x256 RGB [0,1] -> anti-aliased 1/4 image (64x64) -> hourglass (5 down, 5 up) -> feature_map
    Bx35x64x64 -> kp conv 7x7 (pad 0) -> logits Bx10x58x58 -> heatmap = softmax(logits / 0.1) over the 3364
    positions -> kp = expected (x, y) on the 58x58 grid (align-corners, [-1, 1]).
    expression: conv 7x7 on feature_map -> Bx10x32x58x58, weighted by the heatmap, summed -> 320 -> MLP -> 256.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_KP = 10
TEMPERATURE = 0.1


class AntiAliasDown(nn.Module):
    """Depthwise 13x13 filter, zero padding 6, then every 4th pixel from 0 (256 -> 64).

    The filter is the checkpoint's `down.weight` buffer and is always loaded, never recomputed: upstream fills
    it with a Gaussian (sigma 1.5) in __init__, but the state_dict value is what the weights were trained and
    fixed with (and under the synthetic rule it is random)."""

    def __init__(self, channels: int = 3, kernel: int = 13, stride: int = 4):
        super().__init__()
        self.stride = stride
        self.register_buffer("weight", torch.zeros(channels, 1, kernel, kernel))

    def forward(self, x):
        pad = self.weight.shape[-1] // 2
        return F.conv2d(x, self.weight, padding=pad, groups=x.shape[1])[:, :, ::self.stride, ::self.stride]


class ConvNormReLU(nn.Module):
    """conv 3x3 -> BatchNorm (eval: running statistics) -> ReLU, with nearest x2 before (up) or AvgPool 2 after
    (down)."""

    def __init__(self, cin: int, cout: int, mode: str):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x):
        if self.mode == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.relu(self.norm(self.conv(x)))
        return F.avg_pool2d(x, 2) if self.mode == "down" else x


class _Down(nn.Module):
    def __init__(self, chans: list[int]):
        super().__init__()
        self.down_blocks = nn.ModuleList(ConvNormReLU(a, b, "down") for a, b in zip(chans[:-1], chans[1:]))


class _Up(nn.Module):
    def __init__(self, ins: list[int], outs: list[int]):
        super().__init__()
        self.up_blocks = nn.ModuleList(ConvNormReLU(a, b, "up") for a, b in zip(ins, outs))


class Hourglass(nn.Module):
    """U-Net style: each up block's output is concatenated with the skip of the same resolution; the last
    skip is the input image itself, so the output has block_expansion + in_channels channels."""

    def __init__(self, in_channels: int = 3, block_expansion: int = 32, num_blocks: int = 5,
                 max_features: int = 1024):
        super().__init__()
        width = [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]  # 64..1024
        self.encoder = _Down([in_channels] + width)
        outs = [min(max_features, block_expansion * 2 ** i) for i in reversed(range(num_blocks))]  # 512..32
        ins = [width[-1]] + [2 * o for o in outs[:-1]]
        self.decoder = _Up(ins, outs)
        self.out_channels = block_expansion + in_channels

    def forward(self, x):
        skips = [x]
        for block in self.encoder.down_blocks:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.decoder.up_blocks:
            out = torch.cat([block(out), skips.pop()], 1)
        return out


def heatmap_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """[h, w, 2] (x, y) in [-1, 1], align-corners (x_j = 2 j / (w - 1) - 1), as the keypoints are expressed."""
    x = 2 * (torch.arange(w, dtype=like.dtype, device=like.device) / (w - 1)) - 1
    y = 2 * (torch.arange(h, dtype=like.dtype, device=like.device) / (h - 1)) - 1
    return torch.stack([x.view(1, w).expand(h, w), y.view(h, 1).expand(h, w)], -1)


class KeypointDetector(nn.Module):
    """Keys: `predictor.*` (hourglass), `kp.*` (7x7 heatmap conv), `down.weight` (anti-aliasing filter)."""

    def __init__(self, num_kp: int = NUM_KP, temperature: float = TEMPERATURE):
        super().__init__()
        self.predictor = Hourglass()
        self.kp = nn.Conv2d(self.predictor.out_channels, num_kp, 7)
        self.down = AntiAliasDown()
        self.temperature = temperature

    def detect(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """All intermediate maps: down (Bx3x64x64), feature_map (Bx35x64x64), logits and heatmap (Bx10x58x58),
        kp (Bx10x2)."""
        down = self.down(image)
        feature_map = self.predictor(down)
        logits = self.kp(feature_map)
        b, k, h, w = logits.shape
        heatmap = torch.softmax(logits.reshape(b, k, h * w) / self.temperature, -1).reshape(b, k, h, w)
        kp = (heatmap.unsqueeze(-1) * heatmap_grid(h, w, heatmap)).sum((2, 3))
        return {"down": down, "feature_map": feature_map, "logits": logits, "heatmap": heatmap, "kp": kp}

    def forward(self, image):
        """image Bx3x256x256 -> (kp Bx10x2, feature_map Bx35x64x64, heatmap Bx10x58x58)."""
        d = self.detect(image)
        return d["kp"], d["feature_map"], d["heatmap"]


class ExpressionEncoder(nn.Module):
    """Keys: `expression.*` (7x7 conv, 320 = 10 kp x 32), `expression_mlp.{0,2,4,6}.*` (320-640-1280-640-256)."""

    def __init__(self, in_channels: int = 35, num_kp: int = NUM_KP, per_kp: int = 32, size: int = 256):
        super().__init__()
        self.num_kp, self.per_kp = num_kp, per_kp
        self.expression = nn.Conv2d(in_channels, num_kp * per_kp, 7)
        self.expression_mlp = nn.Sequential(
            nn.Linear(num_kp * per_kp, 640), nn.ReLU(), nn.Linear(640, 1280), nn.ReLU(),
            nn.Linear(1280, 640), nn.ReLU(), nn.Linear(640, size))

    def pooled(self, feature_map: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
        """Bx320: each keypoint's 32 features summed under its heatmap (kp-major), the MLP's input."""
        f = self.expression(feature_map)
        b, _, h, w = f.shape
        f = f.reshape(b, self.num_kp, self.per_kp, h, w) * heatmap.reshape(b, self.num_kp, 1, h, w)
        return f.reshape(b, self.num_kp, self.per_kp, h * w).sum(-1).reshape(b, self.num_kp * self.per_kp)

    def forward(self, feature_map, heatmap):
        """feature_map Bx35x64x64, heatmap Bx10x58x58 -> expression Bx256."""
        return self.expression_mlp(self.pooled(feature_map, heatmap))

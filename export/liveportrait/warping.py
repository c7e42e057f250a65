"""Warping module W: dense motion from implicit keypoints, then warp and project the source feature volume.

Given the source volume f_s (Bx32x16x64x64) and the source/driving keypoints x_s, x_d (Bx21x3, normalized
coordinates), the dense-motion network blends 22 candidate flows (identity + one rigid shift per keypoint) with a
predicted soft mask, and predicts an occlusion map. The source volume is sampled along the blended flow, flattened to
512x64x64 and projected to 256 channels (LivePortrait paper, Sec. 3.1 "W"; the flow model follows face-vid2vid,
Wang et al. 2021, Sec. 3.2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Conv3dBnRelu, ConvBnAct2d, normalized_grid_3d
from .sampling import SAMPLERS

KP_VARIANCE = 0.01


class Encoder3d(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        widths = [in_features] + [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        self.down_blocks = nn.ModuleList(Conv3dBnRelu(a, b, "down") for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x):
        skips = [x]
        for block in self.down_blocks:
            skips.append(block(skips[-1]))
        return skips


class Decoder3d(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            cin = min(max_features, block_expansion * 2 ** (i + 1)) * (1 if i == num_blocks - 1 else 2)
            blocks.append(Conv3dBnRelu(cin, min(max_features, block_expansion * 2 ** i), "up"))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_channels, self.out_channels, 3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_channels)

    def forward(self, skips):
        x = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            x = torch.cat([block(x), skip], dim=1)
        return F.relu(self.norm(self.conv(x)))


class Hourglass3d(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = Encoder3d(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder3d(block_expansion, in_features, num_blocks, max_features)
        self.out_channels = self.decoder.out_channels

    def forward(self, x):
        return self.decoder(self.encoder(x))


def keypoint_gaussians(kp: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """exp(-|p - kp|^2 / (2 var)) on the (D, H, W, 3) grid for each keypoint: (B, K, D, H, W)."""
    diff = grid.unsqueeze(0).unsqueeze(0) - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff * diff).sum(-1) / KP_VARIANCE)


class DenseMotionNetwork(nn.Module):
    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int,
                 feature_channel: int, reshape_depth: int, compress: int, estimate_occlusion_map: bool = True):
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass3d(block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_channels, num_kp + 1, 7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, 1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = (nn.Conv2d(self.hourglass.out_channels * reshape_depth, 1, 7, padding=3)
                          if estimate_occlusion_map else None)
        self.sampler = "grid_sample_5d"
        # bf16 regions (the CPU's bf16 artefact, see WarpingNetwork.set_bf16_regions): only the 3-D hourglass and the
        # mask convolution run under bf16 autocast, the rest stays fp32
        self.bf16_regions = False

    def candidate_flows(self, grid, kp_driving, kp_source):
        """(B, K+1, D, H, W, 3): identity, then p - x_d,k + x_s,k for each keypoint k (zeroth-order motion)."""
        b = kp_driving.shape[0]
        shifted = grid.unsqueeze(0).unsqueeze(0) - kp_driving[:, :, None, None, None, :]
        shifted = shifted + kp_source[:, :, None, None, None, :]
        identity = grid.unsqueeze(0).unsqueeze(0).expand(b, 1, *grid.shape)
        return torch.cat([identity, shifted], dim=1)

    def forward(self, feature, kp_driving, kp_source):
        feature = F.relu(self.norm(self.compress(feature)))                     # (B, 4, D, H, W)
        b, c, d, h, w = feature.shape
        k1 = self.num_kp + 1
        grid = normalized_grid_3d(d, h, w, feature)
        flows = self.candidate_flows(grid, kp_driving, kp_source)                # (B, K+1, D, H, W, 3)
        # sample the compressed volume once per candidate flow (the flows stacked along the output depth axis)
        warped = SAMPLERS[self.sampler](feature, flows.reshape(b, k1 * d, h, w, 3))
        warped = warped.reshape(b, c, k1, d, h, w).transpose(1, 2)               # (B, K+1, 4, D, H, W)
        heat = keypoint_gaussians(kp_driving, grid) - keypoint_gaussians(kp_source, grid)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)            # background channel first
        x = torch.cat([heat.unsqueeze(2), warped], dim=2).reshape(b, k1 * (c + 1), d, h, w)
        if self.bf16_regions:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                features = self.hourglass(x)
                logits = self.mask(features)
            features, logits = features.float(), logits.float()
        else:
            features = self.hourglass(x)
            logits = self.mask(features)
        mask = torch.softmax(logits, dim=1)                                       # (B, K+1, D, H, W)
        deformation = (flows * mask.unsqueeze(-1)).sum(dim=1)                     # (B, D, H, W, 3)
        occlusion = None
        if self.occlusion is not None:
            occlusion = torch.sigmoid(self.occlusion(features.reshape(b, -1, h, w)))
        return deformation, occlusion


class WarpingNetwork(nn.Module):
    """forward(feature_3d, kp_driving, kp_source) -> dict occlusion_map, deformation, out (argument order as upstream)."""

    def __init__(self, num_kp: int = 21, block_expansion: int = 64, max_features: int = 512,
                 num_down_blocks: int = 2, reshape_channel: int = 32, estimate_occlusion_map: bool = True,
                 dense_motion_params: dict | None = None):
        super().__init__()
        params = dict(block_expansion=32, max_features=1024, num_blocks=5, reshape_depth=16, compress=4)
        params.update(dense_motion_params or {})
        self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, feature_channel=reshape_channel,
                                                       estimate_occlusion_map=estimate_occlusion_map, **params)
        width = block_expansion * 2 ** num_down_blocks
        self.third = ConvBnAct2d(max_features, width, leaky=True)
        self.fourth = nn.Conv2d(width, width, 1)

    def set_sampler(self, name: str) -> "WarpingNetwork":
        """Choose how the 3-D volume is sampled: see sampling.py (same numbers up to float32 rounding)."""
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
        self.dense_motion_network.sampler = name
        return self

    def set_bf16_regions(self, on: bool = True) -> "WarpingNetwork":
        """Run the 3-D hourglass and the mask convolution (most of W's FLOPs) under bf16 autocast and everything else
        in fp32: the sampling coordinates, softmax, occlusion head, the `third`/`fourth` projection. Traced so, the
        casts are part of the graph (the CPU's model_bf16.pt). With synthetic weights the LivePortrait image stays at
        ~50 dB of fp32 this way; whole-network autocast gave 34.7 dB, and adding `third`/`fourth` to the bf16 regions
        36.8 dB (docs/precision.md)."""
        self.dense_motion_network.bf16_regions = bool(on)
        return self

    def forward(self, feature_3d, kp_driving, kp_source):
        deformation, occlusion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        warped = SAMPLERS[self.dense_motion_network.sampler](feature_3d, deformation)
        b, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.reshape(b, c * d, h, w)))
        if occlusion is not None:
            out = out * occlusion
        return {"occlusion_map": occlusion, "deformation": deformation, "out": out}

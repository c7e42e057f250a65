"""Trilinear sampling of a 3-D feature volume at normalized (x, y, z) points, three equivalent ways.

Semantics of all three = `torch.nn.functional.grid_sample` on a 5-D input with mode="bilinear" (trilinear),
padding_mode="zeros", align_corners=False: a grid value g in [-1, 1] maps to voxel coordinate ((g + 1) * size - 1) / 2,
and corners outside the volume contribute zero.

* `grid_sample_5d`: the PyTorch op itself. In ONNX it is GridSample on a 5-D input (opset 20), which onnxruntime
  runs natively but TensorRT 10 does not (its GridSample is 4-D only).
* `gather_8`: the eight corners fetched with Gather (channels-first, so every op runs over long rows of points)
  and blended with the trilinear weights, computed as PyTorch does ((x1 - x) * (y1 - y) * (z1 - z) etc.). Floor,
  Cast, Gather, Where and elementwise ops only: TensorRT 10 runs it without plugins. The TensorRT graphs use it.
* `planar_4d`: one 4-D GridSample over all D depth slices at once (the slices stacked as channels), then a linear
  blend across depth with tent weights max(0, 1 - |z - k|); slices outside [0, D) simply do not exist, so depth
  zero padding is exact. D/2 times the bilinear samples of the others and a (C*D x points) intermediate.

Both rewrites equal `grid_sample_5d` to ~1e-7 (tests/test_liveportrait_warp.py). On 2 CPU cores, onnxruntime 1.31
(min of 3 runs, W's sizes): 32 channels x 65,536 points: 5-D GridSample 0.19 s, gather_8 0.31 s, planar_4d 0.38 s;
4 channels x 1.44 M points (the dense-motion step): 0.48 s, 1.01 s, 2.13 s. So the CPU graphs keep the native op.

All take volume (N, C, D, H, W) and grid (N, Do, Ho, Wo, 3) and return (N, C, Do, Ho, Wo).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def grid_sample_5d(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _voxel(g: torch.Tensor, size: int) -> torch.Tensor:
    return ((g + 1) * size - 1) / 2


def gather_8(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    n, c, d, h, w = volume.shape
    out_shape = grid.shape[1:4]
    g = grid.reshape(n, -1, 3)
    # per axis: the two integer neighbours as flat-index contributions (clamped into range, for Gather) and their
    # weights, zero where the neighbour lies outside the volume
    per_axis = []
    for t, size, stride in ((_voxel(g[..., 0], w), w, 1), (_voxel(g[..., 1], h), h, w),
                            (_voxel(g[..., 2], d), d, h * w)):
        lo = torch.floor(t)
        hi = lo + 1
        zero = torch.zeros_like(t)
        corners = []
        for pos, wgt in ((lo, hi - t), (hi, t - lo)):
            wgt = torch.where((pos >= 0) & (pos <= size - 1), wgt, zero)
            # an outside neighbour gets any valid index: its weight is 0
            corners.append((pos.clamp(0, size - 1).to(torch.int32) * stride, wgt))
        per_axis.append(corners)
    # channels first, so each Gather, weight product and sum runs over long contiguous rows of points
    flat = volume.reshape(n, c, d * h * w).transpose(0, 1).reshape(c, n * d * h * w)
    base = (torch.arange(n, dtype=torch.int32, device=volume.device) * (d * h * w)).reshape(n, 1)
    xy = [(ix + iy, wx * wy) for ix, wx in per_axis[0] for iy, wy in per_axis[1]]
    out = None
    for iz, wz in per_axis[2]:
        iz = iz + base
        for ixy, wxy in xy:
            term = flat[:, ixy + iz] * (wxy * wz)                              # (c, n, P)
            out = term if out is None else out + term
    return out.transpose(0, 1).reshape(n, c, *out_shape)


def planar_4d(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    n, c, d, h, w = volume.shape
    out_shape = grid.shape[1:4]
    g = grid.reshape(n, 1, -1, 3)
    planes = F.grid_sample(volume.reshape(n, c * d, h, w), g[..., :2], mode="bilinear", padding_mode="zeros",
                           align_corners=False)                                   # (n, c*d, 1, P)
    z = _voxel(g[..., 2], d)                                                         # (n, 1, P)
    k = torch.arange(d, dtype=volume.dtype, device=volume.device).reshape(1, d, 1)
    tent = torch.relu(1 - torch.abs(z - k))                                          # (n, d, P)
    out = (planes.reshape(n, c, d, -1) * tent.unsqueeze(1)).sum(dim=2)
    return out.reshape(n, c, *out_shape)


SAMPLERS = {"grid_sample_5d": grid_sample_5d, "gather_8": gather_8, "planar_4d": planar_4d}

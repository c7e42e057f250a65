"""Stitching and retargeting S: three small MLPs on flattened keypoints (LivePortrait paper, Sec. 3.2).

* stitching (checkpoint sub-dict `retarget_shoulder`): [x_s, x_d] (126) -> 63 keypoint offsets + (tx, ty) shift (65)
* lip       (`retarget_mouth`): [x_s, lip ratios] (63 + 2) -> 63 keypoint offsets
* eye       (`retarget_eye`):   [x_s, eye ratios] (63 + 3) -> 63 keypoint offsets
"""
from __future__ import annotations

import torch
from torch import nn

# our name -> (checkpoint sub-dict, input size, hidden sizes, output size)
MLPS = {
    "stitching": ("retarget_shoulder", 126, (128, 128, 64), 65),
    "lip": ("retarget_mouth", 65, (128, 128, 64), 63),
    "eye": ("retarget_eye", 66, (256, 256, 128, 128, 64), 63),
}


class RetargetingMLP(nn.Module):
    """Linear layers with ReLU between them; keys mlp.0, mlp.2, ... (the ReLUs take the odd indices)."""

    def __init__(self, input_size: int, hidden_sizes, output_size: int):
        super().__init__()
        sizes = [input_size, *hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x):
        return self.mlp(x)


class StitchingRetargeting(nn.Module):
    """The three MLPs together; `forward` runs all three (one ONNX graph, three inputs, three outputs)."""

    def __init__(self):
        super().__init__()
        for name, (_, cin, hidden, cout) in MLPS.items():
            setattr(self, name, RetargetingMLP(cin, hidden, cout))

    def forward(self, stitching_in: torch.Tensor, lip_in: torch.Tensor, eye_in: torch.Tensor):
        return self.stitching(stitching_in), self.lip(lip_in), self.eye(eye_in)

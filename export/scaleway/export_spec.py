"""What the scaleway folder puts in the model repository: one graph, uint8 crop in, uint8 frontal face out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from facefront import artifact

from ..common import onnx_tools
from . import reference

NETWORK = "scaleway_generator"
MAX_BATCH = 8
TOLERANCE_UINT8 = 1   # grey levels: float rounding may flip a pixel by one level at a .5 boundary


class ServingGenerator(nn.Module):
    """uint8 Bx128x128x3 RGB -> uint8 Bx128x128x3: upstream's (u-128)/128 input normalisation, the generator,
    and tanh -> [0, 255] rounding, all in one graph so the server needs no python postprocess stage."""

    def __init__(self, g: nn.Module):
        super().__init__()
        self.g = g

    def forward(self, face):
        x = (face.permute(0, 3, 1, 2).float() - 128.0) / 128.0
        y = self.g(x)
        return ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def export(repository: Path, weights: Path | None = None, log=print) -> list[Path]:
    g = reference.build(weights)
    src = "synthetic" if weights is None else str(weights)
    wsha = None if weights is None else artifact.sha256_file(Path(weights) if Path(weights).is_file()
                                                            else Path(weights) / "generator_v0.pt")
    if weights is None:
        log("scaleway: NO REAL WEIGHTS given (--weights); exporting SYNTHETIC weights: outputs are not faces")
    out = Path(repository) / NETWORK / "1" / "model.onnx"
    example = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8))
    onnx_tools.export(ServingGenerator(g), [example], out, ["face"], ["frontal"])
    diff = onnx_tools.max_abs_diff(out, ServingGenerator(g), {"face": example.numpy()})
    onnx_tools.require_close(out, diff, TOLERANCE_UINT8, "scaleway")
    artifact.write(out, model="scaleway", network=NETWORK, weights=src, weights_sha256=wsha,
                   opset=onnx_tools.DEFAULT_OPSET,
                   extra={"eval_mode_batchnorm": True, "ort_vs_torch_max_abs_uint8": diff[0],
                          "max_batch": MAX_BATCH})
    log(f"scaleway: wrote {out} (onnxruntime vs PyTorch max |diff| {diff[0]:.0f} grey levels)")
    return [out]

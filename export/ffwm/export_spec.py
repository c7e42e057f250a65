"""What the ffwm folder puts in the model repository: one graph, uint8 crop in, uint8 frontal face out."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facefront import artifact

from ..common import onnx_tools, trt_ops
from . import reference
from .onnx_export import servable
from .weights import FILES

NETWORK = "ffwm_generator"
MAX_BATCH = 8
TOLERANCE_UINT8 = 1   # grey levels: float rounding may flip a pixel by one level at a .5 boundary


class ServingFFWM(nn.Module):
    """uint8 Bx128x128x3 RGB -> uint8 Bx128x128x3: upstream's /255 input scaling, flow + generator (spectral and
    batch norm folded), and [0, 1] -> [0, 255] rounding, in one graph (no python postprocess stage)."""

    def __init__(self, frontalizer: nn.Module):
        super().__init__()
        self.net = frontalizer

    def forward(self, face):
        x = face.permute(0, 3, 1, 2).float() / 255.0
        y = self.net(x)
        return (y * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def export(repository: Path, weights: Path | None = None, log=print) -> list[Path]:
    if weights is None:
        log("ffwm: NO REAL WEIGHTS given (--weights); exporting SYNTHETIC weights: outputs are not faces")
        src, wsha = "synthetic", None
    else:
        d = Path(weights) if Path(weights).is_dir() else Path(weights).parent
        src = str(d)
        wsha = ",".join(artifact.sha256_file(d / f) for f in FILES.values())
    module = ServingFFWM(servable(None if weights is None else Path(src)))
    example = torch.from_numpy((reference.recipe_image(0) * 255).round().astype("uint8").transpose(0, 2, 3, 1).copy())
    out = Path(repository) / NETWORK / "1" / "model.onnx"
    onnx_tools.export(module, [example], out, ["face"], ["frontal"])
    trt_ops.assert_supported(out)
    diff = onnx_tools.max_abs_diff(out, module, {"face": example.numpy()})
    onnx_tools.require_close(out, diff, TOLERANCE_UINT8, "ffwm")
    artifact.write(out, model="ffwm", network=NETWORK, weights=src, weights_sha256=wsha,
                   opset=onnx_tools.DEFAULT_OPSET,
                   extra={"ort_vs_torch_max_abs_uint8": diff[0], "max_batch": MAX_BATCH,
                          "spectral_norm": "folded (sigma from stored u, v)", "batch_norm": "folded"})
    log(f"ffwm: wrote {out} (onnxruntime vs PyTorch max |diff| {diff[0]:.0f} grey levels)")
    return [out]

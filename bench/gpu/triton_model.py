"""Triton python-backend model: LivePortrait frontalization with PyTorch on the GPU (bench harness, one per mode).

CROP uint8 [256,256,3] -> FRONTAL uint8 [512,512,3]. Tensors cross the backend boundary through DLPack (the
python backend's numpy conversion is broken under numpy 2, which the GPU image has).
"""
import json
import sys
from pathlib import Path

# the checkout holding bench/ and export/ (this file is copied into a temporary repository under .cache/)
sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents if (p / "bench" / "gpu").is_dir())))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.utils.dlpack as dl  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from bench.gpu.harness import Frontalizer  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        mode = cfg["parameters"]["mode"]["string_value"]
        self.f = Frontalizer(cfg["parameters"]["device"]["string_value"], mode)
        warm = np.zeros((1, 3, 256, 256), np.float32)
        # compile / capture graphs for every batch size the batcher can form, so no request pays for it
        for b in range(1, 9) if mode in ("compile", "graphs16") else (1,):
            self.f(np.repeat(warm, b, 0))

    def execute(self, requests):
        crops = [dl.from_dlpack(pb_utils.get_input_tensor_by_name(r, "CROP").to_dlpack()) for r in requests]
        sizes = [c.shape[0] for c in crops]
        x = torch.cat([c.cpu() for c in crops]).permute(0, 3, 1, 2).float().div(255).numpy()
        y = self.f(x)
        out = torch.from_numpy(y).mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        responses, start = [], 0
        for n in sizes:
            t = pb_utils.Tensor.from_dlpack("FRONTAL", dl.to_dlpack(out[start:start + n].contiguous()))
            responses.append(pb_utils.InferenceResponse(output_tensors=[t]))
            start += n
        return responses

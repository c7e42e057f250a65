"""CPU leaf that runs a TorchScript artefact (`<version>/model.pt`) with PyTorch instead of onnxruntime.

Some networks run faster on CPU in PyTorch (oneDNN) than in onnxruntime (e.g. LivePortrait's warping network,
whose 3-D convolutions onnxruntime runs ~2x slower), so a leaf's `configs/cpu.pbtxt` picks its backend per
measurement with the parameter `backend` ("onnxruntime", the default, or "torch"). The TorchScript file is a
trace of the same eval-mode module the ONNX graph was exported from (same weights), recorded in the version dir's
manifest beside model.onnx and verified before loading, like every artefact.

`LeafStage` is what a leaf's model.py uses: an OnnxStage whose backend the config chooses.
"""
from __future__ import annotations

import numpy as np

from facefront import artifact
from facefront.serving.onnx_stage import OnnxStage
from facefront.serving.stage import Stage


def load_torchscript(stage: Stage, name: str = "model.pt"):
    """Verify and load `<version>/name` for `stage`; sets INPUTS/OUTPUTS from the manifest. Returns the module."""
    import torch
    try:
        stage.manifest = artifact.verify(stage.version_dir, name)
    except artifact.ArtifactError as e:
        raise RuntimeError(str(e)) from None
    threads = int(stage.params.get("intra_op_threads", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    # the profiling executor re-specialises the graph over the first calls; on CPU it was slower (M: 0.16 s vs 0.13 s)
    torch._C._jit_set_profiling_executor(False)
    module = torch.jit.load(str(stage.version_dir / name), map_location="cpu").eval()
    stage.INPUTS = tuple(stage.manifest["inputs"])
    stage.OUTPUTS = tuple(stage.manifest["outputs"])
    if stage.manifest.get("synthetic_weights"):
        print(f"[{stage.name}] serving SYNTHETIC weights (no real checkpoint was given at export)", flush=True)
    return module


def run_torchscript(module, inputs: tuple[str, ...], outputs: tuple[str, ...], batch) -> dict[str, np.ndarray]:
    import torch
    with torch.inference_mode():
        out = module(*[torch.from_numpy(np.ascontiguousarray(batch[k])) for k in inputs])
    out = [out] if isinstance(out, torch.Tensor) else list(out)
    return {name: o.numpy() for name, o in zip(outputs, out)}


class TorchStage(Stage):
    ARTIFACT = "model.pt"

    def setup(self):
        self.module = load_torchscript(self, self.ARTIFACT)

    check = OnnxStage.check

    def run(self, batch):
        return run_torchscript(self.module, self.INPUTS, self.OUTPUTS, batch)


class LeafStage(OnnxStage):
    """OnnxStage (parameter `backend: onnxruntime`; parameter `artifact` names the graph, default model.onnx) or
    PyTorch (`backend: torch`; parameter `artifact`, default model.pt), chosen per model config."""

    def setup(self):
        self.backend = self.params.get("backend", "onnxruntime")
        if self.backend == "torch":
            self.module = load_torchscript(self, self.params.get("artifact", TorchStage.ARTIFACT))
            return
        if self.backend != "onnxruntime":
            raise RuntimeError(f"{self.name}: parameter backend must be 'onnxruntime' or 'torch', got {self.backend!r}")
        self.ARTIFACT = self.params.get("artifact", OnnxStage.ARTIFACT)
        # `allow_spinning: "0"` in the config (G on CPU): onnxruntime's idle threads would otherwise spin after each
        # run and steal the 2 shared cores from the next stage (PyTorch W after G, the next request's F/M)
        super().setup()

    def run(self, batch):
        if self.backend == "torch":
            return run_torchscript(self.module, self.INPUTS, self.OUTPUTS, batch)
        return super().run(batch)

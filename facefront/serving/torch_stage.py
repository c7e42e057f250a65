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
from facefront.precision import decide
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


def to_channels_last(module) -> None:
    """Store 4-D (Conv2d) weights channels-last and 5-D (Conv3d) channels-last-3d, in place: oneDNN's bf16
    convolutions ran faster so (eager LivePortrait under autocast, one run on this shared 2-core avx512_bf16 CPU:
    G 30.4 -> 20.8 s, W 8.6 -> 6.6 s, F 2.0 -> 1.9 s). Works on eager and TorchScript modules; values unchanged."""
    import torch
    for t in list(module.parameters()) + list(module.buffers()):
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
        elif t.dim() == 5:
            t.data = t.data.contiguous(memory_format=torch.channels_last_3d)


def run_torchscript(module, inputs: tuple[str, ...], outputs: tuple[str, ...], batch,
                    precision: str = "fp32") -> dict[str, np.ndarray]:
    import torch
    args = [torch.from_numpy(np.ascontiguousarray(batch[k])) for k in inputs]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = module(*args)
    out = [out] if isinstance(out, torch.Tensor) else list(out)
    # the ensemble's tensors are float32 whatever ran inside
    return {name: o.float().numpy() for name, o in zip(outputs, out)}


class TorchStage(Stage):
    ARTIFACT = "model.pt"

    def setup(self):
        try:
            self.decision = decide(self.params.get("precision"))
        except ValueError as e:
            raise RuntimeError(f"{self.name}: {e}") from None
        self.module = load_torchscript(self, self.ARTIFACT)
        if self.decision.precision == "bf16":
            to_channels_last(self.module)
        print(f"[{self.name}] PyTorch, {self.decision}", flush=True)

    check = OnnxStage.check

    def run(self, batch):
        return run_torchscript(self.module, self.INPUTS, self.OUTPUTS, batch, self.decision.precision)


class LeafStage(OnnxStage):
    """OnnxStage (parameter `backend: onnxruntime`; parameter `artifact` names the graph, default model.onnx) or
    PyTorch (`backend: torch`; parameter `artifact`, default model.pt), chosen per model config."""

    def setup(self):
        self.backend = self.params.get("backend", "onnxruntime")
        if self.backend not in ("onnxruntime", "torch"):
            raise RuntimeError(f"{self.name}: parameter backend must be 'onnxruntime' or 'torch', got {self.backend!r}")
        try:
            self.decision = decide(self.params.get("precision"))
        except ValueError as e:
            raise RuntimeError(f"{self.name}: {e}") from None
        note = ""
        if self.decision.precision == "bf16" and self.backend == "onnxruntime":
            # onnxruntime has no bf16 CPU convolutions: bf16 means the same network's TorchScript in PyTorch
            self.backend, note = "torch", " (instead of onnxruntime, which has no bf16 CPU kernels)"
        if self.backend == "torch":
            artifact_name = self.params.get("artifact", TorchStage.ARTIFACT)
            if not artifact_name.endswith(".pt"):     # an onnxruntime config naming its graph, switched to bf16
                artifact_name = TorchStage.ARTIFACT
            self.module = load_torchscript(self, artifact_name)
            if self.decision.precision == "bf16":
                to_channels_last(self.module)
            print(f"[{self.name}] PyTorch{note}, {self.decision}", flush=True)
            return
        self.ARTIFACT = self.params.get("artifact", OnnxStage.ARTIFACT)
        # `allow_spinning: "0"` in the config (G on CPU): onnxruntime's idle threads would otherwise spin after each
        # run and steal the 2 shared cores from the next stage (PyTorch W after G, the next request's F/M)
        super().setup()

    def run(self, batch):
        if self.backend == "torch":
            return run_torchscript(self.module, self.INPUTS, self.OUTPUTS, batch, self.decision.precision)
        return super().run(batch)

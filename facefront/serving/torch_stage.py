"""CPU leaf that runs a TorchScript artefact (`<version>/model.pt`) with PyTorch instead of onnxruntime.

Some networks run faster on CPU in PyTorch (oneDNN) than in onnxruntime (e.g. LivePortrait's warping network,
whose 3-D convolutions onnxruntime runs ~2x slower), so a leaf's `configs/cpu.pbtxt` picks its backend per
measurement with the parameter `backend` ("onnxruntime", the default, "torch", or "openvino": OpenVINO's CPU
plugin on the ONNX graph, the runtime with native bf16 convolutions, see LeafStage). The TorchScript file is a
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


BACKENDS = ("onnxruntime", "torch", "openvino")


class LeafStage(OnnxStage):
    """The CPU leaf whose runtime its config chooses (parameter `backend`):
    * `onnxruntime` (default): OnnxStage on `artifact` (default model.onnx); fp32 only, so precision bf16 runs the
      same network's TorchScript in PyTorch instead;
    * `torch`: PyTorch on `artifact` (default model.pt); bf16 = autocast + channels-last weights, or, where the
      config names `bf16_artifact` (W: model_bf16.pt), that trace, whose bf16 regions and fp32 islands are in the graph;
    * `openvino`: OpenVINO's CPU plugin on model.onnx (`artifact`), bf16 by its inference precision hint
      (facefront.sessions.openvino_session). Where OpenVINO does not import: as `onnxruntime`.
    What runs is said in the server log at load, e.g. `[liveportrait_appearance] OpenVINO, precision bf16 (auto from
    config: CPU has avx512_bf16)`, and by `--list` (facefront.precision.describe)."""

    def setup(self):
        self.backend = self.params.get("backend", "onnxruntime")
        if self.backend not in BACKENDS:
            raise RuntimeError(f"{self.name}: parameter backend must be one of {', '.join(BACKENDS)}, "
                               f"got {self.backend!r}")
        try:
            self.decision = decide(self.params.get("precision"))
        except ValueError as e:
            raise RuntimeError(f"{self.name}: {e}") from None
        note = ""
        if self.backend == "openvino":
            from facefront.sessions import openvino_import_error
            why = openvino_import_error()
            if why is None:
                return self._setup_openvino()
            # as `backend: onnxruntime`: fp32 on the same graph, bf16 on the TorchScript artefact
            note = f" (instead of OpenVINO, which does not import: {why})"
            self.backend = "onnxruntime"
        if self.decision.precision == "bf16" and self.backend == "onnxruntime":
            # onnxruntime has no bf16 CPU convolutions: bf16 means the same network's TorchScript in PyTorch
            self.backend = "torch"
            note = note or " (instead of onnxruntime, which has no bf16 CPU kernels)"
        if self.backend == "torch":
            artifact_name = self.params.get("artifact", TorchStage.ARTIFACT)
            if not artifact_name.endswith(".pt"):     # an onnxruntime config naming its graph, switched to bf16
                artifact_name = TorchStage.ARTIFACT
            # `bf16_artifact`: a trace with its bf16 regions in the graph; it runs as is, without autocast
            self.autocast = self.decision.precision
            if self.decision.precision == "bf16" and self.params.get("bf16_artifact"):
                artifact_name, self.autocast = self.params["bf16_artifact"], "fp32"
                note += f" with fp32 islands ({artifact_name})"
            self.module = load_torchscript(self, artifact_name)
            if self.decision.precision == "bf16":
                to_channels_last(self.module)
            print(f"[{self.name}] PyTorch{note}, {self.decision}", flush=True)
            return
        self.ARTIFACT = self.params.get("artifact", OnnxStage.ARTIFACT)
        # `allow_spinning: "0"` in the config (G on CPU): onnxruntime's idle threads would otherwise spin after each
        # run and steal the 2 shared cores from the next stage (PyTorch W after G, the next request's F/M)
        if note:
            print(f"[{self.name}] onnxruntime{note}, {self.decision}", flush=True)
        super().setup()

    def _setup_openvino(self):
        from facefront.sessions import openvino_session
        self.ARTIFACT = self.params.get("artifact", OnnxStage.ARTIFACT)
        try:
            self.manifest = artifact.verify(self.version_dir, self.ARTIFACT)
        except artifact.ArtifactError as e:
            raise RuntimeError(str(e)) from None
        # `fp32_head` (a tensor name of the graph): in bf16 the graph up to it runs in fp32 (G's first blocks)
        head = self.params.get("fp32_head") or None
        try:
            self.session = openvino_session(self.version_dir / self.ARTIFACT,
                                            int(self.params.get("intra_op_threads", "0")), self.decision.precision,
                                            fp32_head=head)
        except ValueError as e:
            raise RuntimeError(f"{self.name}: {e}") from None
        # the manifest's names where it records them (they are the graph's), else the ports'
        self.INPUTS = tuple(self.manifest.get("inputs") or (i.name for i in self.session.get_inputs()))
        self.OUTPUTS = tuple(self.manifest.get("outputs") or (o.name for o in self.session.get_outputs()))
        if self.manifest.get("synthetic_weights"):
            print(f"[{self.name}] serving SYNTHETIC weights (no real checkpoint was given at export)", flush=True)
        island = f" with an fp32 head (up to {head})" if self.session.fp32_head else ""
        print(f"[{self.name}] OpenVINO{island}, {self.decision}", flush=True)

    def run(self, batch):
        if self.backend == "torch":
            return run_torchscript(self.module, self.INPUTS, self.OUTPUTS, batch, self.autocast)
        return super().run(batch)

"""CPU leaf of the model repository: a python-backend stage that runs `<version>/model.onnx` with onnxruntime.

The GPU flavour of the same model folder is a TensorRT plan (config.pbtxt); this stage is what
`configs/cpu.pbtxt` selects. The artefact is checked against its manifest before it is loaded, so a stale or
corrupt export fails the model load with a clear message instead of serving wrong numbers.

onnxruntime runs fp32 here: it has no bf16 CPU kernels for convolutions on x86, so a config's `precision: bf16` is
refused (use facefront.serving.torch_stage:LeafStage, which runs bf16 in PyTorch) and `auto` stays fp32.
"""
from __future__ import annotations

import numpy as np

from facefront import artifact
from facefront.precision import decide
from facefront.serving.stage import InputError, Stage
from facefront.sessions import session_from_parameters


class OnnxStage(Stage):
    ARTIFACT = "model.onnx"

    def setup(self):
        try:
            requested = decide(self.params.get("precision"))
        except ValueError as e:
            raise RuntimeError(f"{self.name}: {e}") from None
        if requested.precision == "bf16" and requested.requested == "bf16":
            raise RuntimeError(f"{self.name}: precision bf16 needs stage facefront.serving.torch_stage:LeafStage and "
                               f"model.pt (onnxruntime has no bf16 CPU kernels)")
        if "precision" in self.params:
            print(f"[{self.name}] onnxruntime, precision fp32 ({requested.reason}; onnxruntime has no bf16 CPU "
                  f"kernels)", flush=True)
        try:
            self.manifest = artifact.verify(self.version_dir, self.ARTIFACT)
        except artifact.ArtifactError as e:
            raise RuntimeError(str(e)) from None
        self.session = session_from_parameters(self.version_dir / self.ARTIFACT, self.params)
        self.INPUTS = tuple(i.name for i in self.session.get_inputs())
        self.OUTPUTS = tuple(o.name for o in self.session.get_outputs())
        if self.manifest.get("synthetic_weights"):
            print(f"[{self.name}] serving SYNTHETIC weights (no real checkpoint was given at export)", flush=True)

    def check(self, name, value):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise InputError(f"input {name} contains NaN or Inf")
        return value

    def run(self, batch):
        feeds = {k: np.ascontiguousarray(batch[k]) for k in self.INPUTS}
        return dict(zip(self.OUTPUTS, self.session.run(list(self.OUTPUTS), feeds)))

"""CPU flavour of the `face_detector` / `face_landmarks` leaves: MediaPipe's TFLite file on LiteRT, or the ONNX
translation on onnxruntime.

The config parameter `face_runtime` chooses (`$FACEFRONT_FACE_RUNTIME` overrides it, as for in-process analysis):
`litert` (the CPU configs' setting) runs `<version>/model.tflite` (written by `python -m export onnx face` beside
model.onnx, checked against the manifest) on LiteRT's interpreter with XNNPACK, as MediaPipe does; it falls back
to onnxruntime on model.onnx, saying why in the server log, when `ai-edge-litert` does not import or the export
predates model.tflite. `onnxruntime` is the `OnnxStage` the other leaves use. Threads: `intra_op_threads` for both.
The GPU flavour's configs are TensorRT plans built from model.onnx and never reach this stage.
"""
from __future__ import annotations

import os

from facefront import artifact
from facefront.serving.onnx_stage import OnnxStage

TFLITE = "model.tflite"


class FaceLeafStage(OnnxStage):
    def setup(self):
        from facefront.face.analysis import RUNTIME_ENV, requested_runtime
        from facefront.face.models import MODELS
        from facefront.sessions import litert_import_error, litert_session
        try:
            self.runtime = requested_runtime(os.environ.get(RUNTIME_ENV) or self.params.get("face_runtime"))
        except ValueError as e:
            raise RuntimeError(f"{self.name}: {e}") from None
        threads = int(self.params.get("intra_op_threads", "1"))
        why = None
        if self.runtime == "litert":
            why = litert_import_error()
            if why is None:
                try:
                    entry = artifact.verify(self.version_dir, TFLITE)
                except artifact.ArtifactError as e:
                    why = str(e)
            if why is None:
                network = entry.get("network", self.name)
                if network not in MODELS:
                    raise RuntimeError(f"{self.name}: {TFLITE} is recorded as network {network!r}, not a face model")
                self.session = litert_session(self.version_dir / TFLITE, threads, MODELS[network].outputs)
                self.manifest = entry
                self.INPUTS = tuple(i.name for i in self.session.get_inputs())
                self.OUTPUTS = tuple(o.name for o in self.session.get_outputs())
                print(f"[{self.name}] LiteRT (XNNPACK, {threads} thread(s)) on {TFLITE}", flush=True)
                return
            self.runtime = "onnxruntime"
        super().setup()
        note = f": LiteRT unavailable ({why})" if why else ""
        print(f"[{self.name}] onnxruntime on {self.ARTIFACT}{note}", flush=True)

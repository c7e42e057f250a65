"""What the face folder puts in the model repository: the detector and landmark graphs, copied from the
translator's cache (`facefront.face.models.onnx_path`, the same files the in-process analyser runs), so served
and in-process analysis run byte-identical graphs.

The weights are MediaPipe's own (Apache-2.0, inside the mediapipe wheel): never synthetic. Both graphs are
plain Conv/PRelu/MaxPool/Pad/Add stacks, TensorRT-10-native as translated (checked here before writing).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from facefront import artifact
from facefront.face import models

from ..common import trt_ops

NETWORKS = ("face_detector", "face_landmarks")
MAX_BATCH = 8   # the engines' profile (python -m export trt, --max-batch 8) and both configs' max_batch_size
OPSET = 17


def export(repository: Path, weights: Path | None = None, log=print) -> list[Path]:
    if weights is not None:
        log(f"face: --weights ignored; the face models come from {models.MEDIAPIPE_SPEC}")
    written = []
    for name in NETWORKS:
        spec = models.MODELS[name]
        src = models.onnx_path(name)
        trt_ops.assert_supported(src)
        out = Path(repository) / name / "1" / "model.onnx"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"model.onnx.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(out)
        tflite_sha = hashlib.sha256(models._tflite_bytes(spec)).hexdigest()
        artifact.write(out, model="face", network=name, weights=f"{models.MEDIAPIPE_SPEC}:{spec.tflite}",
                       weights_sha256=tflite_sha, opset=OPSET,
                       extra={"translator": "facefront.face.tflite_onnx", "max_batch": MAX_BATCH,
                              "input_size": spec.input_size})
        # the TFLite file itself, for the CPU leaf's LiteRT runtime (written after the ONNX entry, which keeps it)
        lite = out.with_name("model.tflite")
        tmp = lite.with_name(f"model.tflite.{os.getpid()}.tmp")
        shutil.copyfile(models.tflite_path(name), tmp)
        tmp.replace(lite)
        artifact.write(lite, model="face", network=name, weights=f"{models.MEDIAPIPE_SPEC}:{spec.tflite}",
                       weights_sha256=tflite_sha, extra={"runtime": "litert", "input_size": spec.input_size})
        log(f"face: wrote {out} and {lite.name} (from {spec.tflite}, sha256 {tflite_sha[:12]})")
        written.extend([out, lite])
    return written

"""Triton python model `face_analyze`: image bytes -> boxes, scores, 468 3-D landmarks and head pose per face.

The pre/post-processing is `facefront.face.analysis.FaceAnalyzer` (the same code as in-process `analyze()`). The
config parameter `face_networks` says where its two networks run: `leaves` (the GPU flavour, and the default)
swaps them for `TritonNetworks`, which sends them as BLS requests to the `face_detector` and `face_landmarks`
leaves (TensorRT plans on GPU); `in_process` (the CPU flavour's configs/cpu.pbtxt) runs them inside this stage
(`facefront.face.analysis.make_networks`: LiteRT/XNNPACK on MediaPipe's TFLite files, `face_runtime` or
$FACEFRONT_FACE_RUNTIME choosing as for the leaves), which saves two python-stage round trips per request
(measured: `python -m bench frontend --conditions served`). The leaves stay served either way.

The model is not batched (`max_batch_size: 0`: the face count varies per image), so each request is answered on
its own: IMAGE uint8 [nbytes] (the encoded file), optional ALL_FACES bool [1]. Largest face first; only the
largest unless ALL_FACES. A request whose image holds no face gets the error "no face was found in the WxH image".
"""
from __future__ import annotations

import sys
import traceback

import numpy as np

from facefront.serving.stage import InputError, Stage, bls_infer, pb_utils


class TritonNetworks:
    """`OrtNetworks`' two methods, answered by BLS requests to leaf models, at most `max_batch` items each."""

    def __init__(self, detector: str = "face_detector", landmarks: str = "face_landmarks", max_batch: int = 8):
        self.detector_model, self.landmarks_model, self.max_batch = detector, landmarks, max_batch

    def _infer(self, model: str, outputs: list[str], x: np.ndarray) -> list[np.ndarray]:
        parts = [bls_infer(model, {"input": np.ascontiguousarray(x[a:a + self.max_batch], np.float32)}, outputs)
                 for a in range(0, len(x), self.max_batch)]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(outputs))]

    def detector(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reg, sc = self._infer(self.detector_model, ["regressors", "scores"], x)
        return reg, sc

    def landmarks(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw, presence = self._infer(self.landmarks_model, ["landmarks", "presence"], x)
        return raw, presence


def faces_to_outputs(faces) -> dict[str, np.ndarray]:
    """The served outputs for a list of `Face` (largest first): BOXES, SCORES, LANDMARKS, POSE."""
    from facefront.face.pose import head_pose
    return {
        "BOXES": np.array([f.box for f in faces], np.float32).reshape(-1, 4),
        "SCORES": np.array([f.score for f in faces], np.float32),
        "LANDMARKS": np.stack([f.landmarks for f in faces]).astype(np.float32).reshape(-1, 468, 3),
        "POSE": np.array([head_pose(f.landmarks) for f in faces], np.float32).reshape(-1, 3),
    }


class FaceAnalyzeStage(Stage):
    INPUTS = ("IMAGE",)
    OPTIONAL = ("ALL_FACES",)
    OUTPUTS = ("BOXES", "SCORES", "LANDMARKS", "POSE")

    FACE_NETWORKS = ("leaves", "in_process")

    def setup(self):
        """Settings: `face_networks` (leaves | in_process), `bls_models` and `leaf_max_batch` (leaves), `face_runtime`
        (in_process: litert | onnxruntime; $FACEFRONT_FACE_RUNTIME overrides, as for the CPU leaves)."""
        import os

        from facefront.face.analysis import RUNTIME_ENV, FaceAnalyzer, make_networks
        self.face_networks = self.params.get("face_networks", "leaves").strip() or "leaves"
        if self.face_networks not in self.FACE_NETWORKS:
            raise RuntimeError(f"{self.name}: parameter face_networks must be one of {', '.join(self.FACE_NETWORKS)}, "
                               f"got {self.face_networks!r}")
        if self.face_networks == "in_process":
            try:
                networks = make_networks(os.environ.get(RUNTIME_ENV) or self.params.get("face_runtime") or None)
            except ValueError as e:
                raise RuntimeError(f"{self.name}: {e}") from None
            print(f"[{self.name}] face networks in-process on {networks.runtime}", flush=True)
        else:
            members = [m.strip() for m in self.params.get("bls_models", "face_detector,face_landmarks").split(",")]
            networks = TritonNetworks(*members, max_batch=int(self.params.get("leaf_max_batch", "8")))
        self.analyzer = FaceAnalyzer(networks=networks)

    def check(self, name, value):
        if name == "IMAGE" and (value.dtype != np.uint8 or value.ndim != 1):
            raise InputError("IMAGE must be the encoded image file as uint8, shape [nbytes]")
        if name == "ALL_FACES" and value.size != 1:
            raise InputError("ALL_FACES must be one boolean")
        return value

    def analyze_one(self, data: bytes, all_faces: bool) -> dict[str, np.ndarray]:
        from facefront import imaging
        from facefront.face.analysis import NoFaceError
        try:
            rgb = imaging.decode(data)
        except imaging.ImageError as e:
            raise InputError(str(e)) from None
        try:
            faces = self.analyzer.analyze(rgb, max_faces=None if all_faces else 1)
        except (NoFaceError, ValueError) as e:
            raise InputError(str(e)) from None
        return faces_to_outputs(faces)

    def execute(self, requests):
        # Not batched (max_batch_size 0): each request is analysed and answered alone; errors stay per request.
        responses = []
        for request in requests:
            try:
                values = self._read(request)
                all_faces = bool(values["ALL_FACES"].reshape(-1)[0]) if "ALL_FACES" in values else False
                outs = self.analyze_one(values["IMAGE"].tobytes(), all_faces)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(n, outs[n]) for n in self.OUTPUTS]))
            except InputError as e:
                responses.append(self._error(str(e)))
            except Exception as e:  # noqa: BLE001 - answer every request, never crash the model
                traceback.print_exc(file=sys.stderr)
                responses.append(self._error(f"{self.name} failed: {type(e).__name__}: {e}"))
        return responses

"""Locate and build the face models: the one place that knows where their files live.

The weights are MediaPipe 0.10.21's BlazeFace short-range detector and 468-point FaceMesh landmark model
(Apache-2.0), shipped as TFLite inside the ``mediapipe`` wheel. They are translated to ONNX by
``tflite_onnx`` (no TensorFlow) on first use and cached, the TFLite files themselves too (LiteRT runs them on
CPU, ``facefront.sessions.litert_session``); mediapipe itself is never imported. When the
wheel is not installed it is fetched with ``pip download --no-deps`` and only the two files are read.

    python -m facefront.face.models [--out DIR]     # build both ONNX files (and copy the TFLite files) now

Cache: $FACEFRONT_FACE_MODELS, else ``<repo>/.cache/face_models``.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MEDIAPIPE_SPEC = "mediapipe==0.10.21"


@dataclass(frozen=True)
class FaceModel:
    name: str
    tflite: str                   # path inside the mediapipe package
    outputs: dict[str, str]       # TFLite output tensor -> ONNX output name
    input_size: int


DETECTOR = FaceModel("face_detector", "modules/face_detection/face_detection_short_range.tflite",
                     {"regressors": "regressors", "classificators": "scores"}, 128)
LANDMARKS = FaceModel("face_landmarks", "modules/face_landmark/face_landmark.tflite",
                      {"conv2d_21": "landmarks", "conv2d_31": "presence"}, 192)
MODELS = {m.name: m for m in (DETECTOR, LANDMARKS)}


def cache_dir() -> Path:
    env = os.environ.get("FACEFRONT_FACE_MODELS")
    return Path(env) if env else REPO_ROOT / ".cache" / "face_models"


def _tflite_bytes(model: FaceModel) -> bytes:
    # find_spec locates the installed package without importing it
    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / model.tflite
        if p.exists():
            return p.read_bytes()
    wheels = cache_dir() / "wheels"
    found = sorted(wheels.glob("mediapipe-0.10.21-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(wheels), MEDIAPIPE_SPEC]
        r = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(wheels.glob("mediapipe-0.10.21-*.whl"))
        if r.returncode or not found:
            raise RuntimeError(f"cannot get {MEDIAPIPE_SPEC} for its face models: {r.stderr.strip()[-300:]}")
    with zipfile.ZipFile(found[0]) as zf:
        return zf.read("mediapipe/" + model.tflite)


def onnx_path(name: str, out: str | os.PathLike | None = None) -> Path:
    """Path of the ONNX file for ``name`` ("face_detector" | "face_landmarks"), built if missing."""
    import onnx

    from facefront.face.tflite_onnx import convert

    model = MODELS[name]
    dst = Path(out) if out else cache_dir() / f"{name}.onnx"
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        m = convert(_tflite_bytes(model), output_names=model.outputs)
        tmp = dst.with_name(dst.name + f".{os.getpid()}.tmp")
        onnx.save(m, str(tmp))
        tmp.replace(dst)
    return dst


def tflite_path(name: str, out: str | os.PathLike | None = None) -> Path:
    """Path of MediaPipe's own TFLite file for ``name``, copied out of the wheel into the cache if missing."""
    model = MODELS[name]
    dst = Path(out) if out else cache_dir() / f"{name}.tflite"
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(_tflite_bytes(model))
        tmp.replace(dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="build the face detector and landmark ONNX files, copy their TFLite files")
    ap.add_argument("--out", default=None, help="folder for <name>.onnx (default: the cache)")
    a = ap.parse_args(argv)
    for name in MODELS:
        print(onnx_path(name, Path(a.out) / f"{name}.onnx" if a.out else None))
        print(tflite_path(name, Path(a.out) / f"{name}.tflite" if a.out else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())

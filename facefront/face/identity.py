"""Identity embedding for evaluation: dlib's 128-D face-recognition ResNet (``face_recognition_models``).

Used to check that frontalization keeps the person (same person: Euclidean distance < 0.6, dlib's own
threshold). The model files are located without importing ``face_recognition_models`` (its import needs
pkg_resources). The face box comes from our detector; dlib's 5-point predictor (trained on dlib's own
CC0 data) aligns the 150-px chip the ResNet expects.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

SAME_PERSON = 0.6


@functools.lru_cache(maxsize=1)
def _models():
    import dlib
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed (pip install face_recognition_models==0.3.0)")
    root = Path(list(spec.submodule_search_locations)[0]) / "models"
    sp = dlib.shape_predictor(str(root / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(root / "dlib_face_recognition_resnet_model_v1.dat"))
    return sp, rec


def embedding(image_rgb: np.ndarray, face=None) -> np.ndarray:
    """128-D embedding of ``face`` (default: the largest face) in an RGB uint8 image."""
    import dlib

    from facefront.face.analysis import analyze
    if face is None:
        face = analyze(image_rgb, max_faces=1)[0]
    sp, rec = _models()
    x0, y0, x1, y1 = face.box
    rect = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
    img = np.ascontiguousarray(image_rgb)
    shape = sp(img, rect)
    chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
    return np.array(rec.compute_face_descriptor(chip), np.float64)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))

"""Identity embeddings for the comparison: dlib's ResNet (offline, always) and ArcFace (when the user gives an ONNX file).

dlib: ``facefront.face.identity`` (128-D; Euclidean distance, same person < 0.6).
ArcFace: any insightface-style recognition ONNX (input 1x3x112x112, RGB, (x - 127.5) / 127.5; output 1xD)
on the standard 5-point aligned 112x112 crop (Deng et al., "ArcFace", CVPR 2019, the insightface template).
ID-SIM is the cosine similarity of the two embeddings. No ArcFace weights install offline: pass
``--arcface FILE.onnx`` to the quality command.
"""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

# insightface's arcface_dst: left eye, right eye (image left/right), nose tip, mouth left, mouth right
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
NOSE_TIP, MOUTH_CORNERS = 1, (61, 291)  # FaceMesh indices (image-left corner first)


def five_points(landmarks468: np.ndarray) -> np.ndarray:
    """The 5 ArcFace points (image-left eye first) from 468 FaceMesh landmarks."""
    from facefront.face.mesh import eye_centres
    lm = np.asarray(landmarks468, np.float64)
    a, b = (np.asarray(e)[:2] for e in eye_centres(lm))
    left, right = (a, b) if a[0] < b[0] else (b, a)
    m0, m1 = lm[MOUTH_CORNERS[0], :2], lm[MOUTH_CORNERS[1], :2]
    ml, mr = (m0, m1) if m0[0] < m1[0] else (m1, m0)
    return np.stack([left, right, lm[NOSE_TIP, :2], ml, mr]).astype(np.float32)


def arcface_crop(image_rgb: np.ndarray, landmarks468: np.ndarray) -> np.ndarray:
    M, _ = cv2.estimateAffinePartial2D(five_points(landmarks468), ARCFACE_TEMPLATE, method=cv2.LMEDS)
    return cv2.warpAffine(image_rgb, M, (112, 112), borderValue=0)


class ArcFace:
    """An ArcFace-style recognition ONNX run with onnxruntime on CPU."""

    def __init__(self, onnx_path: str | Path):
        from facefront.sessions import onnx_session
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ArcFace ONNX file {self.path}")
        self.sess = onnx_session(self.path)
        self.input = self.sess.get_inputs()[0].name

    def embedding(self, image_rgb: np.ndarray, landmarks468: np.ndarray) -> np.ndarray:
        chip = arcface_crop(image_rgb, landmarks468).astype(np.float32)
        x = ((chip - 127.5) / 127.5).transpose(2, 0, 1)[None]
        return np.asarray(self.sess.run(None, {self.input: x})[0], np.float64).ravel()


@functools.lru_cache(maxsize=2)
def arcface(path: str) -> ArcFace:
    return ArcFace(path)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def dlib_embedding(image_rgb: np.ndarray, face) -> np.ndarray:
    from facefront.face.identity import embedding
    return embedding(image_rgb, face)

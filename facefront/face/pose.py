"""Head pose (yaw, pitch, roll in degrees) from 468 FaceMesh landmarks.

Method: a similarity Procrustes fit (Umeyama 1991, "Least-squares estimation of transformation parameters
between two point patterns", eq. 40-42) of the canonical face model onto the landmarks' (x, y, z), which
FaceMesh gives in a weak-perspective frame (z in the same scale as x). Only rigid points are used (the
jaw and lips move with expression). The canonical model is frontal by construction, so a frontal face
reads about 0 without a learnt offset.

Frame: x right, y down (image), z away from the camera. Signs (the subject is the person in the photo):
  yaw   > 0  the face turns toward image right (the subject's own left); the nose points right.
  pitch > 0  the face tilts up (chin up, nose points up in the image).
  roll  > 0  the face rotates counter-clockwise as seen in the image (the subject's left eye, on image
             right, rises).
``rotation(yaw, pitch, roll)`` is the matrix a frontal head is turned by: R = Rz(-roll) Ry(-yaw) Rx(-pitch)
(pitch first, then yaw, then roll about the camera axis), and ``angles(R)`` is its exact inverse.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefront.face.mesh import canonical


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """3x3 rotation turning a frontal head to (yaw, pitch, roll) degrees, in the image frame."""
    y, p, r = np.radians([yaw, pitch, roll])
    return _rz(-r) @ _ry(-y) @ _rx(-p)


def angles(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a rotation built as ``rotation`` builds it."""
    beta = -np.arcsin(np.clip(R[2, 0], -1, 1))     # R = Rz(g) Ry(b) Rx(a) with a=-pitch, b=-yaw, g=-roll
    alpha = np.arctan2(R[2, 1], R[2, 2])
    gamma = np.arctan2(R[1, 0], R[0, 0])
    return float(-np.degrees(beta)), float(-np.degrees(alpha)), float(-np.degrees(gamma))


@dataclass(frozen=True)
class Similarity3D:
    """landmarks ~= scale * R @ reference + t (reference = canonical model in the image frame)."""
    R: np.ndarray
    scale: float
    t: np.ndarray

    def inverse_apply(self, pts: np.ndarray) -> np.ndarray:
        """Landmarks (Nx3) taken back to the reference frame and units: the de-rotated own shape."""
        return (pts - self.t) @ self.R / self.scale


def _rigid_indices() -> np.ndarray:
    """Vertices above the mouth region (forehead, brows, eyes, nose, upper cheeks): they move little with
    expression. Chosen geometrically on the canonical model: y above the nose base."""
    v = canonical().vertices
    return np.nonzero(v[:, 1] < 1.8)[0]   # y down: smaller = higher; the nose base sits near y = 1.7


def fit(landmarks: np.ndarray, rigid_only: bool = True) -> Similarity3D:
    """Umeyama similarity from the canonical model to the landmarks (468x3)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (468, 3) or not np.isfinite(lm).all():
        raise ValueError(f"expected 468x3 finite landmarks, got shape {lm.shape}")
    ref = canonical().vertices
    idx = _rigid_indices() if rigid_only else np.arange(468)
    X, Y = ref[idx], lm[idx]
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    cov = Yc.T @ Xc / len(idx)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / (Xc ** 2).sum(1).mean())
    t = my - scale * R @ mx
    return Similarity3D(R, scale, t)


def head_pose(landmarks468: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees; signs in the module docstring."""
    return angles(fit(landmarks468).R)

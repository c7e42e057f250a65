"""Alignment crops by named geometric rule, and the inverse (paste-back). Every preprocess stage uses ``crop``
with the rule and size its config names (parameters ``crop`` and ``crop_size``, optional ``crop_scale`` /
``crop_shift``); every postprocess that returns a full photo uses ``paste_back``. Rules are named for their
geometry, not for a model, so a new model picks one in its config and no code here changes.

All crops are similarity transforms: ``M`` (2x3) maps image pixels to crop pixels, so a landmark p lands at
``M[:, :2] @ p + M[:, 2]`` and ``cv2.invertAffineTransform(M)`` goes back.

Rules (default size; who uses it):
  landmark_box  128  eyes levelled; square of ``scale`` (1.2) x the landmarks' extent, centred on it (scaleway:
                     the upstream project documents no crop rule beyond "128x128 face", so this is our choice).
  nose_centred  128  centre between the nose wings (alae, landmarks 98/327); radius = distance to the farthest
                     landmark; eyes levelled only for near-frontal faces (|yaw| < 30 deg); cubic resize (FFWM: an
                     approximation of its crop from commercial (Face++) dense landmarks).
  portrait      256  axis from the eye-centre midpoint to the lip centre cancels roll; square of the long side of
                     the landmark box in that frame x ``scale`` (2.5), moved by ``shift`` (-0.125) x side (LivePortrait's
                     source crop with its defaults, made at 512 and resized to 256 upstream; here made at 256
                     directly). Its boxes come from 106-point landmarks (no forehead), so the FaceMesh points above
                     the brows are left out.
  eye_mouth     256  the frame mesh3d renders into: same roll-cancelling axis; eye midpoint at 40 % and mouth
                     centre at 65 % of the height (side = 4x the eye-to-mouth distance). Also the common
                     evaluation crop of the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facefront.face.mesh import NOSE_ALAE, canonical, eye_centres, mouth_centre


@dataclass(frozen=True)
class Convention:
    size: int
    interpolation: int
    scale: float = 1.0
    shift: float = 0.0


CONVENTIONS = {
    "landmark_box": Convention(128, cv2.INTER_AREA, scale=1.2),
    "nose_centred": Convention(128, cv2.INTER_CUBIC),
    "portrait": Convention(256, cv2.INTER_LINEAR, scale=2.5, shift=-0.125),
    "eye_mouth": Convention(256, cv2.INTER_LINEAR),
}
MESH3D_EYE_Y, MESH3D_MOUTH_Y = 0.40, 0.65


def similarity(centre, side: float, axis_y, size: int) -> np.ndarray:
    """2x3 image->crop: the square of ``side`` pixels around ``centre`` whose downward axis is
    ``axis_y`` (unit vector in the image) becomes an upright ``size``-pixel crop."""
    uy = np.asarray(axis_y, np.float64)
    uy = uy / max(np.linalg.norm(uy), 1e-9)
    ux = np.array([uy[1], -uy[0]])   # uy turned 90 deg: for uy = (0, 1) this is (1, 0)
    k = size / side
    a = k * np.stack([ux, uy])
    t = np.array([size / 2, size / 2]) - a @ np.asarray(centre, np.float64)
    return np.hstack([a, t[:, None]])


def _landmarks(face) -> np.ndarray:
    lm = getattr(face, "landmarks", face)
    lm = np.asarray(lm, np.float64)
    if lm.ndim != 2 or lm.shape[0] != 468 or lm.shape[1] < 2:
        raise ValueError(f"expected a Face or 468 landmarks, got an array of shape {lm.shape}")
    return lm[:, :2]


def _eye_mouth_axis(lm: np.ndarray):
    re, le = eye_centres(lm)
    eye_mid = (re + le) / 2
    mouth = mouth_centre(lm)
    return eye_mid, mouth, mouth - eye_mid


def _levelled_axis(lm: np.ndarray) -> np.ndarray:
    re, le = eye_centres(lm)
    d = le - re                      # subject's right eye -> left eye: image left -> right
    return np.array([-d[1], d[0]])   # perpendicular pointing down the face


def _below_brows() -> np.ndarray:
    v = canonical().vertices
    return np.nonzero(v[:, 1] > -5.5)[0]    # image frame, y down: the brows sit near y = -4.5


def transform(face, convention: str, size: int | None = None, scale: float | None = None,
              shift: float | None = None) -> np.ndarray:
    """The 2x3 image->crop matrix of rule ``convention`` for ``face`` (a Face or 468 landmarks); ``scale`` and
    ``shift`` override the rule's defaults where the rule has them (landmark_box, portrait)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown crop convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    rule = CONVENTIONS[convention]
    size = size or rule.size
    scale = rule.scale if scale is None else scale
    shift = rule.shift if shift is None else shift
    lm = _landmarks(face)
    if convention == "landmark_box":
        uy = _levelled_axis(lm)
        return _box_crop(lm, uy, scale, shift, size)
    if convention == "portrait":
        _, _, uy = _eye_mouth_axis(lm)
        return _box_crop(lm[_below_brows()], uy, scale, shift, size)
    if convention == "nose_centred":
        centre = lm[list(NOSE_ALAE)].mean(0)
        radius = np.linalg.norm(lm - centre, axis=1).max()
        uy = np.array([0.0, 1.0])
        lm3 = np.asarray(getattr(face, "landmarks", face), np.float64)
        if lm3.shape[1] == 3:   # 2-D landmarks alone cannot tell a frontal face: no levelling
            from facefront.face.pose import head_pose
            if abs(head_pose(lm3)[0]) < 30:
                uy = _levelled_axis(lm)
        return similarity(centre, 2 * radius, uy, size)
    # eye_mouth
    eye_mid, _, axis = _eye_mouth_axis(lm)
    d = np.linalg.norm(axis)
    side = d / (MESH3D_MOUTH_Y - MESH3D_EYE_Y)
    centre = eye_mid + axis / d * (0.5 - MESH3D_EYE_Y) * side
    return similarity(centre, side, axis, size)


def _box_crop(pts: np.ndarray, uy: np.ndarray, scale: float, vy: float, size: int) -> np.ndarray:
    uy = uy / max(np.linalg.norm(uy), 1e-9)
    ux = np.array([uy[1], -uy[0]])
    rot = np.stack([ux, uy])
    c0 = pts.mean(0)
    r = (pts - c0) @ rot.T
    lo, hi = r.min(0), r.max(0)
    side = float((hi - lo).max()) * scale
    mid = (lo + hi) / 2
    centre = c0 + ux * mid[0] + uy * mid[1] + uy * vy * side
    return similarity(centre, side, uy, size)


def crop(image: np.ndarray, face, convention: str, size: int | None = None, scale: float | None = None,
         shift: float | None = None):
    """(crop uint8 size x size x C, M 2x3 image->crop) for ``face`` in ``image``."""
    M = transform(face, convention, size, scale, shift)
    size = size or CONVENTIONS[convention].size
    out = cv2.warpAffine(image, M, (size, size), flags=CONVENTIONS[convention].interpolation,
                         borderMode=cv2.BORDER_REPLICATE)
    return out, M


def soft_mask(size: int | tuple[int, int], feather: float = 0.1) -> np.ndarray:
    """float32 HxW mask: 1 inside, falling smoothly to 0 over ``feather`` x size at the border."""
    h, w = (size, size) if isinstance(size, int) else size
    f = max(feather * min(h, w), 1.0)
    ramp = lambda n: np.clip((np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5) / f, 0, 1)
    m = np.outer(ramp(h), ramp(w))
    return (m * m * (3 - 2 * m)).astype(np.float32)   # smoothstep


def paste_back(image: np.ndarray, crop_out: np.ndarray, M: np.ndarray, mask: np.ndarray | None = None,
               feather: float = 0.1, crop_size: int | None = None) -> np.ndarray:
    """Put ``crop_out`` back into a copy of ``image`` through the inverse of ``M``, blended by ``mask``
    (crop-sized, 0..1 or 0..255; default a square with ``feather`` soft edges). When the network's output
    is not the size ``M`` was made for, pass that size as ``crop_size`` and M is rescaled."""
    h, w = crop_out.shape[:2]
    M = np.asarray(M, np.float64)
    if crop_size and crop_size != w:
        M = M * (w / crop_size)
    if mask is None:
        mask = soft_mask((h, w), feather)
    mask = np.asarray(mask, np.float32)
    if mask.max() > 1.0:
        mask = mask / 255.0
    if mask.ndim == 3:
        mask = mask[..., 0]
    inv = cv2.invertAffineTransform(M)
    H, W = image.shape[:2]
    # work only in the bounding box of the pasted region
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    shifted = inv.copy()
    shifted[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(crop_out, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    wm = cv2.warpAffine(mask, shifted, size, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(wm * warped + (1 - wm) * region, 0, 255).round().astype(np.uint8)
    return out

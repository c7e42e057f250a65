"""The pose image AniPortrait is conditioned on, drawn from 468 FaceMesh landmarks, and re-posed for
frontalization.

Upstream (src/utils/draw_util.py, FaceMeshVisualizer(forehead_edge=False)) draws selected FaceMesh edges with
2-pixel lines (cv2.line, 8-connected) on a black 512x512 canvas from landmarks normalised to [0, 1], then resizes
the canvas to the frame size (cv2.resize, bilinear). The colours are BGR triples drawn into that canvas, and
pose2vid feeds the frames to the pipeline in BGR order, so the array returned here is exactly what the pose
guider receives (see reference.pose_condition).

The edges: the lower face oval (no forehead), eyes and eyebrows (FaceMesh topology), and the lips split in eight
coloured quarter-contours. Stored as polylines of FaceMesh landmark indices.

Frontalization poses the problem as pose-to-image: the photo's own 3-D landmarks are rotated about their centroid
from the head pose measured on them (facefront.face.pose) to the requested pose, projected orthographically
(FaceMesh's weak-perspective frame), and drawn.
"""
from __future__ import annotations

import numpy as np

CANVAS = 512
THICKNESS = 2

# (colour as drawn (B, G, R), polylines of landmark indices), in upstream's drawing order
EDGE_GROUPS: list[tuple[tuple[int, int, int], list[list[int]]]] = [
    ((10, 200, 10), [[21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365,
                      397, 288, 361, 323, 454, 356, 389, 251]]),                                  # face oval
    ((180, 200, 10), [[263, 249, 390, 373, 374, 380, 381, 382, 362],
                      [263, 466, 388, 387, 386, 385, 384, 398, 362]]),                           # left eye
    ((180, 220, 10), [[276, 283, 282, 295, 285], [300, 293, 334, 296, 336]]),                    # left eyebrow
    ((10, 200, 180), [[33, 7, 163, 144, 145, 153, 154, 155, 133],
                      [33, 246, 161, 160, 159, 158, 157, 173, 133]]),                            # right eye
    ((10, 220, 180), [[46, 53, 52, 65, 55], [70, 63, 105, 66, 107]]),                            # right eyebrow
    ((10, 180, 20), [[61, 146, 91, 181, 84, 17]]),       # lips: outer bottom left
    ((20, 10, 180), [[17, 314, 405, 321, 375, 291]]),    # outer bottom right
    ((100, 100, 30), [[78, 95, 88, 178, 87, 14]]),       # inner bottom left
    ((100, 150, 50), [[14, 317, 402, 318, 324, 308]]),   # inner bottom right
    ((20, 80, 100), [[61, 185, 40, 39, 37, 0]]),         # outer top left
    ((80, 100, 20), [[0, 267, 269, 270, 409, 291]]),     # outer top right
    ((120, 100, 200), [[78, 191, 80, 81, 82, 13]]),      # inner top left
    ((150, 120, 100), [[13, 312, 311, 310, 415, 308]]),  # inner top right
]


def edges() -> list[tuple[int, int]]:
    return [(a, b) for _, lines in EDGE_GROUPS for line in lines for a, b in zip(line[:-1], line[1:])]


def draw(points_xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Landmarks (N>=468 x 2, pixels of a `size` = (width, height) image) -> uint8 HxWx3 pose image."""
    import cv2
    pts = np.asarray(points_xy, np.float64)
    if pts.ndim != 2 or pts.shape[0] < 468 or pts.shape[1] < 2 or not np.isfinite(pts[:, :2]).all():
        raise ValueError(f"expected finite 468x2 (or x3) landmarks, got shape {pts.shape}")
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    norm = pts[:, :2] / np.array([w, h], np.float64)
    # pixel of a normalised point on the canvas, as mediapipe's drawing utils: floor(v * side), clipped to the
    # last pixel; points outside [0, 1] are not drawn (nor are their edges)
    inside = ((norm >= 0) | np.isclose(norm, 0)) & ((norm <= 1) | np.isclose(norm, 1))
    inside = inside.all(1)
    px = np.minimum(np.floor(norm * CANVAS), CANVAS - 1).astype(int)
    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    for colour, lines in EDGE_GROUPS:
        for line in lines:
            for a, b in zip(line[:-1], line[1:]):
                if inside[a] and inside[b]:
                    cv2.line(canvas, tuple(map(int, px[a])), tuple(map(int, px[b])), colour, THICKNESS)
    return cv2.resize(canvas, (w, h))


def repose(landmarks: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """468x3 landmarks (x, y pixels, z same scale) turned about their centroid from the head pose measured on
    them to (yaw, pitch, roll) degrees (facefront.face.pose conventions). Expression and face shape are kept."""
    from facefront.face import pose
    lm = np.asarray(landmarks, np.float64)
    for name, v in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
        if not np.isfinite(v) or abs(v) > 90:
            raise ValueError(f"{name} must be a finite angle in [-90, 90] degrees, got {v!r}")
    current = pose.fit(lm).R
    target = pose.rotation(yaw, pitch, roll)
    centre = lm.mean(0)
    return (lm - centre) @ (target @ current.T).T + centre


def pose_image(landmarks: np.ndarray, size: tuple[int, int], yaw: float = 0.0, pitch: float = 0.0,
               roll: float = 0.0) -> np.ndarray:
    """The pose image of these landmarks re-posed to (yaw, pitch, roll): frontal by default."""
    return draw(repose(landmarks, yaw, pitch, roll)[:, :2], size)


def to_crop(landmarks: np.ndarray, M: np.ndarray) -> np.ndarray:
    """468x3 image landmarks -> the same in the pixels of the crop made by the 2x3 similarity `M`
    (facefront.face.align): x, y mapped by M, z scaled by M's scale so the 3-D shape keeps its proportions."""
    lm = np.asarray(landmarks, np.float64)
    M = np.asarray(M, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    return np.column_stack([lm[:, :2] @ M[:, :2].T + M[:, 2], lm[:, 2] * scale])

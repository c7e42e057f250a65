"""FSRT's coordinate math in numpy (no torch): the served path and the PyTorch reference use the same code.

Pixel grid: FSRT's decoder is queried per output pixel at its centre in (-1, 1), x from the column, y from the
row: ((2j + 1 - S) / S, (2i + 1 - S) / S), computed in float64 and rounded once to float32 (for S = 256 this is
upstream's (j + 0.5 - 128) / 128, exact). Any S gives the same picture sampled more or less densely, which is
what makes the output resolution a free choice (the decoder's cost is linear in S^2).

Keypoints (10x2, on the kp detector's 58x58 heatmap grid in [-1, 1]) reach the decoder after `normalize_kp`:
absolute: the driver's own; relative: kp_source + (kp_driving - kp_driving_initial) * s, with the movement scale
s = sqrt(area hull(kp_source)) / sqrt(area hull(kp_driving_initial)) under adapt_scale (upstream demo.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SIZE = 256                 # FSRT's input resolution (vox256): crops, driver renders
OUTPUT_SIZES = (128, 256)  # decoder query grids offered to users: 128 costs a quarter of the decoder's time
DEFAULT_CHUNK = 8192       # query pixels per decoder call: attention scratch 12 heads x P x 1024 keys x 4 B ~ 0.4 GB


def pixel_grid(size: int = SIZE) -> np.ndarray:
    """[size, size, 2] float32 pixel centres, (x, y) = ((2j + 1 - size) / size, (2i + 1 - size) / size)."""
    c = ((2 * np.arange(size, dtype=np.float64) + 1 - size) / size).astype(np.float32)
    return np.ascontiguousarray(np.stack(np.broadcast_arrays(c[None, :], c[:, None]), -1))


def hull_area(points: np.ndarray) -> float:
    """Area of the 2-D convex hull of `points` (Nx2) in float64 (Andrew's monotone chain + the shoelace formula;
    equals scipy's ConvexHull(points).volume, which upstream uses). 0 for fewer than 3 distinct points."""
    p = np.unique(np.asarray(points, np.float64).reshape(-1, 2), axis=0)   # sorted by x, then y
    if len(p) < 3:
        return 0.0

    def half(seq):
        out: list[np.ndarray] = []
        for q in seq:
            while len(out) >= 2 and np.cross(out[-1] - out[-2], q - out[-2]) <= 0:
                out.pop()
            out.append(q)
        return out[:-1]

    h = np.array(half(p) + half(p[::-1]))
    x, y = h[:, 0], h[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def normalize_kp(kp_source: np.ndarray | None, kp_driving: np.ndarray, kp_driving_initial: np.ndarray | None = None,
                 relative: bool = False, adapt_scale: bool = False) -> tuple[np.ndarray, float]:
    """(query keypoints Bx10x2 float32, movement scale) for the decoder, upstream's normalize_kp.

    absolute (the served mode): the driver's own keypoints; right when the driver is the same person (our
    mesh3d render of the source crop), whose keypoints already carry this face's shape.
    relative: only the driver's motion since its first frame moves the source's keypoints, keeping a different
    person's geometry; adapt_scale corrects for the two faces' sizes (hull areas of batch entry 0, as upstream)."""
    kp_driving = np.asarray(kp_driving, np.float32)
    if not relative:
        return kp_driving, 1.0
    if kp_source is None or kp_driving_initial is None:
        raise ValueError("relative mode needs kp_source and kp_driving_initial (the driver's first frame)")
    kp_source = np.asarray(kp_source, np.float32)
    kp_driving_initial = np.asarray(kp_driving_initial, np.float32)
    s = 1.0
    if adapt_scale:
        initial = hull_area(kp_driving_initial[0])
        if initial <= 0:
            raise ValueError("adapt_scale needs driving_initial keypoints that span an area")
        s = float(np.sqrt(hull_area(kp_source[0])) / np.sqrt(initial))
    # upstream multiplies a float32 tensor by the Python float: the scale is rounded to float32 first
    return ((kp_driving - kp_driving_initial) * np.float32(s) + kp_source).astype(np.float32), s


def check_output_size(size: int) -> int:
    if int(size) != size or int(size) not in OUTPUT_SIZES:
        raise ValueError(f"output size must be one of {', '.join(map(str, OUTPUT_SIZES))} pixels, got {size:g}")
    return int(size)


def render(decode: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray], z: np.ndarray,
           keypoints: np.ndarray, expression: np.ndarray, size: int = SIZE, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """One frame, size x size x 3 raw float32 (HWC, not clamped), decoding at most `chunk` query pixels per call.

    `decode(z [1,1024,768], pixels [1,P,2], keypoints [1,10,2], expression [1,256]) -> rgb [1,P,3]` runs the
    decoder (onnxruntime in-process, or a BLS request to the fsrt_decoder leaf). Query pixels are independent,
    so chunking changes nothing but the peak memory, which is bounded by `chunk` (attention over z's 1024 tokens:
    12 heads x chunk x 1024 x 4 bytes per layer) whatever the output size."""
    size = check_output_size(size)
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of pixels, got {chunk}")
    grid = pixel_grid(size).reshape(1, size * size, 2)
    z, keypoints, expression = (np.ascontiguousarray(a, np.float32).reshape(1, *a.shape[-n:])
                                for a, n in ((z, 2), (keypoints, 2), (expression, 1)))
    out = np.empty((size * size, 3), np.float32)
    for a in range(0, size * size, chunk):
        b = min(a + chunk, size * size)
        rgb = np.asarray(decode(z, np.ascontiguousarray(grid[:, a:b]), keypoints, expression))
        if rgb.shape != (1, b - a, 3):
            raise RuntimeError(f"the decoder returned shape {rgb.shape} for {b - a} query pixels")
        out[a:b] = rgb[0]
    return out.reshape(size, size, 3)

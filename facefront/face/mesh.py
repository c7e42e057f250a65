"""The 468-point face mesh topology and reference shape, read from MediaPipe's canonical face model.

``canonical_face_model.obj`` (Apache-2.0) sits in ``../shared/data`` next to the repository (override with
$FACEFRONT_CANONICAL_OBJ). Its vertices are in FaceMesh landmark order. Everything here is converted to
the image frame the landmarks use: x right, y down, z away from the camera (the OBJ has y up, z toward
the viewer: a 180-degree turn about x, so handedness is kept).

Derived, not copied: the mirror partner of each vertex (nearest vertex to its reflection x -> -x) and the
outer boundary of the triangulation (the face oval).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]

# a few landmark indices (FaceMesh order); "right" = the subject's right (image left in a photo)
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
MOUTH_CORNERS = (61, 291)
LIP_MIDDLE = (13, 14)
NOSE_TIP = 1
NOSE_ALAE = (98, 327)
CHIN = 152
FOREHEAD = 10


@dataclass(frozen=True)
class FaceMesh:
    vertices: np.ndarray      # 468x3 float64, image frame (x right, y down, z away), centimetre-like units
    triangles: np.ndarray     # Tx3 int32, wound so the normal points toward the camera (-z) when frontal
    mirror: np.ndarray        # 468 int, index of the mirror-symmetric vertex
    oval: np.ndarray          # indices of the outer boundary loop, in order


def obj_path() -> Path:
    env = os.environ.get("FACEFRONT_CANONICAL_OBJ")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "canonical_face_model.obj"


def _boundary_loop(tris: np.ndarray) -> np.ndarray:
    edges: dict[tuple[int, int], int] = {}
    for t in tris:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            key = (min(a, b), max(a, b))
            edges[key] = edges.get(key, 0) + 1
    nbr: dict[int, list[int]] = {}
    for (a, b), c in edges.items():
        if c == 1:
            nbr.setdefault(a, []).append(b)
            nbr.setdefault(b, []).append(a)
    start = min(nbr)
    loop, prev, cur = [start], -1, start
    while True:
        nxt = nbr[cur][0] if nbr[cur][0] != prev else nbr[cur][1]
        if nxt == start:
            break
        loop.append(nxt)
        prev, cur = cur, nxt
    return np.array(loop)


@functools.lru_cache(maxsize=1)
def canonical() -> FaceMesh:
    p = obj_path()
    if not p.exists():
        raise FileNotFoundError(f"canonical face model not found at {p} (set FACEFRONT_CANONICAL_OBJ)")
    verts, tris = [], []
    for line in p.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            tris.append([int(x.split("/")[0]) - 1 for x in line.split()[1:4]])
    v = np.array(verts, np.float64) * np.array([1.0, -1.0, -1.0])
    t = np.array(tris, np.int32)
    n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    if np.mean(n[:, 2] < 0) < 0.5:          # make the frontal normals point at the camera (-z)
        t = t[:, [0, 2, 1]]
    reflected = v * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(v[None, :, :] - reflected[:, None, :], axis=2)
    mirror = d.argmin(1)
    return FaceMesh(v, t, mirror, _boundary_loop(t))


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye, left eye) centres from 468 landmarks (any number of columns)."""
    return lm[list(RIGHT_EYE_CORNERS)].mean(0), lm[list(LEFT_EYE_CORNERS)].mean(0)


def mouth_centre(lm: np.ndarray) -> np.ndarray:
    return lm[list(MOUTH_CORNERS) + list(LIP_MIDDLE)].mean(0)

"""mesh3d: weight-free geometric frontalization from the person's own 468 3-D landmarks.

In the spirit of Hassner, Harel, Paz and Enbar, "Effective Face Frontalization in Unconstrained Images"
(CVPR 2015): the query photo's pixels are carried onto a 3-D face surface, the surface is rendered in the
target pose, and parts the photo never saw are filled from their mirror-symmetric counterparts with soft
visibility weights (their Sec. 3.3 "soft symmetry"). Differences: the surface is the person's own FaceMesh
landmarks (not a generic reference head), the pose comes from a Procrustes fit (``pose.fit``) instead of
a camera calibration, and the render is a per-triangle barycentric warp with z-buffer visibility.

Pipeline for one face:
  1. own shape Q = landmarks taken back to the canonical frame by the fitted similarity (pose removed);
  2. target vertices = rotation(yaw, pitch, roll) @ Q, framed in the ``mesh3d`` crop convention;
  3. rasterise the target triangles (painter's order, back faces culled) into a triangle-id map and
     barycentric weights; each output pixel then has a source position (its point on the photo) and a
     mirror source position (the same barycentrics on the mirror-partner vertices);
  4. source visibility: the photo's own triangles are rasterised with their depths; a source sample is
     visible when it is not behind that depth and its surface faces the camera (soft in the angle);
  5. colour = visibility-weighted blend of the direct and mirrored samples, weights blurred so seams are
     soft; outside the face, the photo under a fitted 2-D similarity, blended over a feathered mask;
  6. optionally pasted back into the photo (``align.paste_back``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from facefront.face import align
from facefront.face.mesh import canonical, eye_centres, mouth_centre
from facefront.face.pose import fit, rotation

SHIFT = 4                       # fixed-point bits for sub-pixel triangle filling
FACING_SOFT = (0.05, 0.35)      # cos(normal, view) below 0.05: unseen; above 0.35: fully trusted
DEPTH_TOL_CM = 0.6              # a source sample this far behind the visible surface is occluded
# rings added around the face oval so the head's sides (cheeks, ears, hair) turn with the face:
# (radial growth of the oval about its centre, depth added per unit of radius)
SKIRT = ((1.25, 0.45), (1.6, 1.1))


@functools.lru_cache(maxsize=1)
def _skirt_topology():
    """Triangles and mirror map of the face mesh extended by the SKIRT rings around its oval."""
    mesh = canonical()
    oval, n = mesh.oval, len(mesh.oval)
    pos = {int(v): i for i, v in enumerate(oval)}
    rings = [oval] + [468 + k * n + np.arange(n) for k in range(len(SKIRT))]
    tris = [mesh.triangles]
    for inner, outer in zip(rings[:-1], rings[1:]):
        j = np.roll(np.arange(n), -1)
        tris.append(np.stack([inner, inner[j], outer[j]], 1))
        tris.append(np.stack([inner, outer[j], outer], 1))
    tris = np.concatenate(tris).astype(np.int32)
    oval_mirror = np.array([pos[int(mesh.mirror[v])] for v in oval])
    mirror = np.concatenate([mesh.mirror] + [468 + k * n + oval_mirror for k in range(len(SKIRT))])
    # orient the new triangles like the face's: normals toward the camera on the frontal model
    v = _extend(mesh.vertices)
    nz = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])[:, 2]
    flip = nz > 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris, mirror


def _extend(Q: np.ndarray) -> np.ndarray:
    """Q (468x3) plus the skirt rings' vertices, built from its own oval."""
    oval = canonical().oval
    ring = Q[oval]
    c = ring[:, :2].mean(0)
    rad = ring[:, :2] - c
    r = np.linalg.norm(rad, axis=1, keepdims=True)
    out = [Q]
    for grow, depth in SKIRT:
        out.append(np.hstack([c + rad * grow, ring[:, 2:] + depth * (grow - 1) * r]))
    return np.concatenate(out)


@dataclass
class Render:
    """Intermediate maps, kept for tests and for callers that want the mask."""
    image: np.ndarray          # size x size x 3 uint8
    face_mask: np.ndarray      # size x size float32 in [0, 1]: where the rendered face is used
    mirrored: np.ndarray       # size x size float32 in [0, 1]: share of the colour taken from the mirror
    M: np.ndarray              # 2x3 image -> output similarity used for background and paste-back
    target_vertices: np.ndarray  # 468x3 output-frame landmarks (x, y pixels; z same scale, away)


def _raster_ids(pts2: np.ndarray, depth: np.ndarray, tris: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """int32 map of (triangle index + 1), 0 = empty; nearest triangle wins (painter's order)."""
    ids = np.zeros(shape, np.int32)
    order = np.argsort(-depth[tris].mean(1))          # far first
    fixed = np.round(pts2 * (1 << SHIFT)).astype(np.int32)
    for t in order:
        cv2.fillConvexPoly(ids, fixed[tris[t]], int(t) + 1, lineType=cv2.LINE_8, shift=SHIFT)
    return ids


def _barycentric(pts2: np.ndarray, tris: np.ndarray, tri_idx: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Barycentric weights (Nx3) of points ``xy`` (Nx2) in triangles ``tri_idx`` (N)."""
    a, b, c = (pts2[tris[tri_idx, k]] for k in range(3))
    v0, v1, v2 = b - a, c - a, xy - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    return np.stack([1 - l1 - l2, l1, l2], 1)


def _facing(pts3: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Per-vertex cos between the surface normal and the direction to the camera (-z)."""
    n = np.cross(pts3[tris[:, 1]] - pts3[tris[:, 0]], pts3[tris[:, 2]] - pts3[tris[:, 0]])
    vn = np.zeros_like(pts3)
    for k in range(3):
        np.add.at(vn, tris[:, k], n)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    return -vn[:, 2]


def _smoothstep(x, lo, hi):
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def _similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2-D similarity src -> dst (Umeyama), as a 2x3 matrix."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    U, S, Vt = np.linalg.svd(d.T @ s / len(src))
    D = np.diag([1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt))])
    R = U @ D @ Vt
    k = np.trace(np.diag(S) @ D) / (s ** 2).sum(1).mean()
    A = k * R
    return np.hstack([A, (md - A @ ms)[:, None]])


class _SourceDepth:
    """The photo's visible surface depth, rasterised at a reduced resolution over the face's box."""

    def __init__(self, src: np.ndarray, tris: np.ndarray, facing: np.ndarray, max_side: int = 160):
        lo = src[:, :2].min(0) - 2
        hi = src[:, :2].max(0) + 2
        self.scale = min(1.0, max_side / max(float((hi - lo).max()), 1.0))
        self.origin = lo
        pts = (src[:, :2] - lo) * self.scale
        w, h = np.ceil((hi - lo) * self.scale).astype(int) + 1
        front = facing[tris].mean(1) > 0              # back faces never occlude what the camera sees
        keep = tris[front]
        ids = _raster_ids(pts, src[:, 2], keep, (h, w))
        yy, xx = np.nonzero(ids)
        t = ids[yy, xx] - 1
        lam = _barycentric(pts, keep, t, np.stack([xx, yy], 1).astype(np.float64))
        self.depth = np.full((h, w), np.inf, np.float64)
        self.depth[yy, xx] = (lam * src[keep[t], 2]).sum(1)
        # grow the surface by a pixel so samples on the silhouette find it
        self.depth = np.minimum(self.depth, cv2.erode(np.where(np.isinf(self.depth), 1e9, self.depth)
                                                      .astype(np.float32), np.ones((3, 3))).astype(np.float64))
        self.depth[self.depth >= 1e8] = np.inf

    def visible(self, xy: np.ndarray, z: np.ndarray, tol: float) -> np.ndarray:
        p = np.round((xy - self.origin) * self.scale).astype(int)
        h, w = self.depth.shape
        inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
        d = np.full(len(z), np.inf)
        d[inside] = self.depth[p[inside, 1], p[inside, 0]]
        return z <= d + tol


def render(image: np.ndarray, landmarks: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
           size: int = 256) -> Render:
    """Render the face with ``landmarks`` (468x3, image pixels) in ``image`` at the target pose."""
    tris, mirror = _skirt_topology()
    P = np.asarray(landmarks, np.float64)
    sim = fit(P)
    Q = sim.inverse_apply(P)                                  # own shape, frontal, canonical units
    Q = _extend(Q)
    # the skirt's place in the photo: the extended own shape under the fitted pose
    P = np.concatenate([P, sim.scale * Q[468:] @ sim.R.T + sim.t])

    # framing (the mesh3d crop convention applied to the frontal own shape)
    re, le = eye_centres(Q)
    eye_mid, mouth = (re + le) / 2, mouth_centre(Q)
    axis = mouth[:2] - eye_mid[:2]
    d = np.linalg.norm(axis)
    side = d / (align.MESH3D_MOUTH_Y - align.MESH3D_EYE_Y)
    centre3 = eye_mid + np.append(axis / d * (0.5 - align.MESH3D_EYE_Y) * side, 0.0)
    k = size / side
    R_t = rotation(yaw, pitch, roll)
    V = (Q - centre3) @ R_t.T
    out3 = np.hstack([V[:, :2] * k + size / 2, V[:, 2:] * k])

    # target raster: triangle ids and barycentrics
    target_facing = _facing(out3, tris)
    front_t = target_facing[tris].mean(1) > 0
    tris_t = tris[front_t]
    ids = _raster_ids(out3[:, :2], out3[:, 2], tris_t, (size, size))
    yy, xx = np.nonzero(ids)
    t = ids[yy, xx] - 1
    lam = _barycentric(out3[:, :2], tris_t, t, np.stack([xx, yy], 1).astype(np.float64) + 0.0)
    verts = tris_t[t]                                         # N x 3 vertex indices
    mverts = mirror[verts]

    src_facing = _facing(P, tris)
    tol = DEPTH_TOL_CM * sim.scale
    depth = _SourceDepth(P, tris, src_facing)

    def sample(vs):
        xy = np.einsum("nk,nkc->nc", lam, P[vs, :2])
        z = np.einsum("nk,nk->n", lam, P[vs, 2])
        cos = np.einsum("nk,nk->n", lam, src_facing[vs])
        vis = depth.visible(xy, z, tol) * _smoothstep(cos, *FACING_SOFT)
        return xy, vis

    xy_d, vis_d = sample(verts)
    xy_m, vis_m = sample(mverts)

    # weights: direct where seen, mirror where only the mirror was seen; blurred for soft seams
    a = vis_d
    b = (1 - vis_d) * vis_m
    none = a + b < 1e-3
    a = np.where(none, 1.0, a)
    cover = np.zeros((size, size), np.float32)
    cover[yy, xx] = 1
    sigma = max(size / 128, 1.0)
    A = np.zeros((size, size), np.float32); A[yy, xx] = a
    B = np.zeros((size, size), np.float32); B[yy, xx] = b
    A = cv2.GaussianBlur(A, (0, 0), sigma); B = cv2.GaussianBlur(B, (0, 0), sigma)
    mirrored = np.where(cover > 0, B / np.maximum(A + B, 1e-6), 0).astype(np.float32)

    def remap(xy):
        mx = np.full((size, size), -1, np.float32); my = np.full((size, size), -1, np.float32)
        mx[yy, xx] = xy[:, 0]; my[yy, xx] = xy[:, 1]
        return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)

    m3 = mirrored[..., None]
    face_rgb = (1 - m3) * remap(xy_d) + m3 * remap(xy_m)

    # background: the photo under the 2-D similarity that best maps the visible face onto the render
    seen = src_facing[:468] > 0.2
    M = _similarity_2d(P[:468][seen, :2], out3[:468][seen, :2])
    bg = cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    er = max(int(round(size / 100)), 1)
    mask = cv2.erode(cover, np.ones((2 * er + 1, 2 * er + 1), np.uint8))
    mask = cv2.GaussianBlur(mask, (0, 0), max(size / 64, 1.0))
    out = mask[..., None] * face_rgb + (1 - mask[..., None]) * bg.astype(np.float32)
    return Render(np.clip(out, 0, 255).round().astype(np.uint8), mask, mirrored, M, out3[:468])


def frontalize(image_rgb_uint8: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
               size: int = 256, paste_back: bool = False, face=None) -> np.ndarray:
    """The face (largest, or ``face``) re-rendered at (yaw, pitch, roll) degrees (frontal by default) as a
    ``size`` x ``size`` RGB uint8 image, or, with ``paste_back``, the whole photo with it pasted in.

    Raises ``NoFaceError`` when the photo has no face, ``ValueError`` for bad arguments."""
    from facefront.face.analysis import _check_image, analyze
    image = _check_image(image_rgb_uint8)
    for name, v in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
        if not np.isfinite(v) or abs(v) > 90:
            raise ValueError(f"{name} must be a finite angle within +-90 degrees, got {v}")
    if not (32 <= int(size) <= 2048):
        raise ValueError(f"size must be between 32 and 2048 pixels, got {size}")
    if face is None:
        face = analyze(image, max_faces=1)[0]
    r = render(image, face.landmarks if hasattr(face, "landmarks") else face, yaw, pitch, roll, int(size))
    if not paste_back:
        return r.image
    return align.paste_back(image, r.image, r.M, mask=r.face_mask)

"""Face detection (BlazeFace short-range) and 468 dense 3-D landmarks (FaceMesh), numpy + LiteRT or onnxruntime.

The two networks run on LiteRT's interpreter (XNNPACK, MediaPipe's own TFLite files) when ``ai-edge-litert``
imports, else on onnxruntime (the ONNX translation, which is also what TensorRT builds on the GPU flavour):
``FaceAnalyzer(runtime=...)``, or ``FACEFRONT_FACE_RUNTIME=litert|onnxruntime`` for the default analyser.

The pre/post-processing follows the facts of MediaPipe's face-mesh graph (letterboxed 128x128 detector
input in [-1, 1]; 896 SSD anchors; score = sigmoid; weighted non-maximum suppression; a square region of
1.5x the detection box, rotated so the eyes are level, resized to 192x192 in [0, 1] for the landmark
network) so that landmarks match mediapipe's own within the tolerance stated in ``docs/face.md``.

The short-range detector only sees faces that fill a good part of its 128-pixel input, so group photos
are also searched on overlapping tiles (coarse to fine); a face found at a coarser level wins.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from facefront.face.models import DETECTOR, LANDMARKS, onnx_path, tflite_path

log = logging.getLogger(__name__)

DET_SIZE = DETECTOR.input_size      # 128
LMK_SIZE = LANDMARKS.input_size     # 192
MIN_SCORE = 0.5
NMS_IOU = 0.3
ROI_SCALE = 1.5
MIN_PRESENCE = 0.5
# The short-range detector finds faces down to about this fraction of its window's side; the tile levels stop at
# the smallest face searched for, MIN_FACE of the photo's long side by default (FACEFRONT_MIN_FACE or the analyser's
# min_face to change it). 0.07: two levels (the whole photo, tiles of half its side), faces down to ~7.5 % of the long
# side (144 px in a 1920-px photo) -- every face of the offline group photos; 0.035 adds tiles of a quarter (crowds,
# ~3x the detector calls: `python -m bench frontend --conditions group`).
DET_MIN_FACE = 0.15
MIN_FACE = 0.07
MIN_FACE_ENV = "FACEFRONT_MIN_FACE"


class NoFaceError(ValueError):
    """Raised when an image holds no detectable face."""


@dataclass
class Face:
    """One face: ``box`` (x0, y0, x1, y1) and ``landmarks`` (468x3; x, y image pixels; z same scale,
    larger = farther from the camera, as FaceMesh gives it) in the coordinates of the analysed image."""
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    presence: float = 1.0
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((6, 2), np.float32))

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)


def _anchors() -> np.ndarray:
    """Anchor centres (896x2, normalised) of the short-range SSD: 16x16 cells x 2, then 8x8 cells x 6."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        c = (np.arange(grid, dtype=np.float32) + 0.5) / grid
        yy, xx = np.meshgrid(c, c, indexing="ij")
        cells = np.stack([xx.ravel(), yy.ravel()], 1)
        out.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(out)


ANCHORS = _anchors()


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0]); y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2]); y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """Cluster overlapping detections; each cluster becomes the score-weighted mean of its members."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    keep_b, keep_k, keep_s = [], [], []
    alive = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & (_iou(boxes[i], boxes) > iou)
        members[i] = True
        w = scores[members][:, None]
        keep_b.append((boxes[members] * w).sum(0) / w.sum())
        keep_k.append((kps[members] * w[:, :, None]).sum(0) / w.sum())
        keep_s.append(scores[i])
        alive &= ~members
    if not keep_s:
        return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
    return np.array(keep_b, np.float32), np.array(keep_k, np.float32), np.array(keep_s, np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100, 100)))


class OrtNetworks:
    """The two networks run in-process by onnxruntime from the cached ONNX files (``models.onnx_path``).

    Any object with the same two methods can stand in (the served ``face_analyze`` model sends them to the
    ``face_detector`` / ``face_landmarks`` Triton leaves), so the pre/post-processing exists once."""

    # One thread, no spinning: the networks are small (~9 ms on one core) and run inside servers where stages and
    # clients share the cores. With onnxruntime's defaults (a thread per core, spinning) a busy 2-core machine took
    # 50 ms per analysis, with 1 thread 14 ms (`python -m bench frontend`, bench/results/frontend_cpu.json).
    THREADS, SPINNING = 1, False

    def __init__(self, providers: list[str] | None = None, threads: int | None = None, spinning: bool | None = None):
        from facefront.sessions import onnx_session
        threads = self.THREADS if threads is None else threads
        spinning = self.SPINNING if spinning is None else spinning
        self.det = onnx_session(onnx_path("face_detector"), threads, spinning, providers=providers)
        self.lmk = onnx_session(onnx_path("face_landmarks"), threads, spinning, providers=providers)

    def detector(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nx128x128x3 float32 in [-1, 1] -> (regressors Nx896x16, scores Nx896x1) raw logits."""
        reg, sc = self.det.run(["regressors", "scores"], {"input": x})
        return reg, sc

    runtime = "onnxruntime"

    def landmarks(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nx192x192x3 float32 in [0, 1] -> (landmarks Nx1x1x1404, presence Nx1x1x1 logit)."""
        raw, presence = self.lmk.run(["landmarks", "presence"], {"input": x})
        return raw, presence


class LiteRTNetworks(OrtNetworks):
    """The same two networks from MediaPipe's own TFLite files (``models.tflite_path``) on LiteRT's interpreter
    (XNNPACK, 1 thread): what MediaPipe itself runs. Same inputs and outputs as ``OrtNetworks``; measured 3x faster
    than onnxruntime for the landmark network, and it keeps its speed when the cores are busy (`python -m bench
    frontend`). Raises ImportError when ``ai-edge-litert`` is not installed (``make_networks`` falls back)."""

    THREADS = 1
    runtime = "litert"

    def __init__(self, threads: int | None = None):
        from facefront.sessions import litert_session
        threads = self.THREADS if threads is None else threads
        self.det = litert_session(tflite_path("face_detector"), threads, DETECTOR.outputs)
        self.lmk = litert_session(tflite_path("face_landmarks"), threads, LANDMARKS.outputs)


RUNTIMES = ("litert", "onnxruntime")
RUNTIME_ENV = "FACEFRONT_FACE_RUNTIME"


def requested_runtime(runtime: str | None = None) -> str:
    """``runtime``, else $FACEFRONT_FACE_RUNTIME, else "litert"; "auto" means "litert" (with its fallback)."""
    r = (runtime or os.environ.get(RUNTIME_ENV) or "litert").strip().lower()
    r = "litert" if r == "auto" else r
    if r not in RUNTIMES:
        raise ValueError(f"face runtime must be one of {', '.join(RUNTIMES)} (or auto), got {r!r}")
    return r


def make_networks(runtime: str | None = None, providers: list[str] | None = None, threads: int | None = None):
    """The two networks on ``runtime`` (see ``requested_runtime``). "litert" falls back to onnxruntime, with a
    logged warning, when LiteRT does not import; onnxruntime ``providers`` (e.g. CUDA) mean onnxruntime."""
    runtime = requested_runtime(runtime)
    if runtime == "litert" and providers is None:
        from facefront.sessions import litert_import_error
        why = litert_import_error()
        if why is None:
            return LiteRTNetworks(threads)
        log.warning("face analysis: LiteRT is not available (%s); running the networks on onnxruntime", why)
    return OrtNetworks(providers, threads)


class FaceAnalyzer:
    """The whole pipeline (``analyze``) around two networks: ``make_networks(runtime)`` by default (LiteRT when it
    imports, else onnxruntime). The pieces are public static methods so they can be tested and reused one by one."""

    def __init__(self, providers: list[str] | None = None, threads: int | None = None, networks=None,
                 runtime: str | None = None, min_face: float | None = None):
        self.networks = networks if networks is not None else make_networks(runtime, providers, threads)
        if min_face is None:
            min_face = float(os.environ.get(MIN_FACE_ENV) or MIN_FACE)
        if not 0.0 < min_face <= 1.0:
            raise ValueError(f"min_face is a fraction of the photo's long side in (0, 1], got {min_face}")
        self.min_face = min_face

    # ---- detection -------------------------------------------------------------------------------
    @staticmethod
    def detector_inputs(image: np.ndarray, windows: list[tuple[float, float, float]]):
        """Letterbox each square window (x0, y0, side) of ``image`` to 128x128 in [-1, 1]; returns the
        batch (Nx128x128x3 float32) and the 2x3 affines window->tensor."""
        batch, mats = [], []
        for x0, y0, side in windows:
            s = DET_SIZE / side
            m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float64)
            t = cv2.warpAffine(image, m, (DET_SIZE, DET_SIZE), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            batch.append(t)
            mats.append(m)
        x = np.stack(batch).astype(np.float32) / 127.5 - 1.0
        return x, mats

    @staticmethod
    def decode(regressors: np.ndarray, scores: np.ndarray, mat: np.ndarray, min_score: float = MIN_SCORE):
        """Boxes (x0,y0,x1,y1) and 6 keypoints in image pixels for one tensor's raw outputs."""
        s = _sigmoid(scores.reshape(-1))
        keep = s >= min_score
        r = regressors.reshape(-1, 16)[keep] / DET_SIZE
        a = ANCHORS[keep]
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        w, h = r[:, 2], r[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * DET_SIZE
        kps = (r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]) * DET_SIZE
        inv = cv2.invertAffineTransform(mat)
        boxes = boxes.reshape(-1, 2, 2) @ inv[:, :2].T + inv[:, 2]
        kps = kps @ inv[:, :2].T + inv[:, 2]
        return boxes.reshape(-1, 4).astype(np.float32), kps.astype(np.float32), s[keep].astype(np.float32)

    @staticmethod
    def windows(h: int, w: int, min_face: float = MIN_FACE) -> list[list[tuple[float, float, float]]]:
        """Search levels: the whole (letterboxed) image, then overlapping tiles of 1/2 (and 1/4, ...) its long
        side for photos large enough that a face may be too small for the 128-pixel input, down to the level whose
        smallest findable face (DET_MIN_FACE of its tile) is still at least `min_face` of the long side."""
        long_side = max(h, w)
        levels = [[((w - long_side) / 2, (h - long_side) / 2, float(long_side))]]
        for div in (2, 4, 8):
            side = long_side / div
            if side < 2 * DET_SIZE or DET_MIN_FACE / div < min_face * 0.999:
                break
            step = side / 2
            xs = np.arange(0, max(w - side, 0) + step / 2, step)
            ys = np.arange(0, max(h - side, 0) + step / 2, step)
            levels.append([(float(x), float(y), float(side)) for y in ys for x in xs])
        return levels

    def detect(self, image: np.ndarray, max_faces: int | None = None):
        """Detections as (boxes Nx4, keypoints Nx6x2, scores N), largest box first."""
        h, w = image.shape[:2]
        acc_b = np.zeros((0, 4), np.float32); acc_k = np.zeros((0, 6, 2), np.float32)
        acc_s = np.zeros(0, np.float32)
        for level_i, wins in enumerate(self.windows(h, w, self.min_face)):
            x, mats = self.detector_inputs(image, wins)
            reg, sc = self.networks.detector(x)
            lb, lk, ls = [], [], []
            for j, (win, m) in enumerate(zip(wins, mats)):
                b, k, s = self.decode(reg[j], sc[j], m)
                if level_i > 0 and len(b):
                    # a face cut by a tile edge (not the image edge) is left to a coarser level
                    x0, y0, side = win
                    margin = 0.02 * side
                    inner = ((b[:, 0] > x0 + margin) | (x0 <= 0)) & ((b[:, 1] > y0 + margin) | (y0 <= 0)) & \
                            ((b[:, 2] < x0 + side - margin) | (x0 + side >= w)) & \
                            ((b[:, 3] < y0 + side - margin) | (y0 + side >= h))
                    b, k, s = b[inner], k[inner], s[inner]
                lb.append(b); lk.append(k); ls.append(s)
            b, k, s = weighted_nms(np.concatenate(lb), np.concatenate(lk), np.concatenate(ls))
            if len(acc_s) and len(s):
                # faces already found at a coarser level win over their finer re-detections
                new = np.array([(_iou(bb, acc_b) < 0.1).all() and not _inside(bb, acc_b) for bb in b], bool)
                b, k, s = b[new], k[new], s[new]
            acc_b = np.concatenate([acc_b, b]); acc_k = np.concatenate([acc_k, k])
            acc_s = np.concatenate([acc_s, s])
            if max_faces == 1 and len(acc_s):
                break
        area = (acc_b[:, 2] - acc_b[:, 0]) * (acc_b[:, 3] - acc_b[:, 1])
        order = np.argsort(-area)
        return acc_b[order], acc_k[order], acc_s[order]

    # ---- landmarks -------------------------------------------------------------------------------
    @staticmethod
    def roi_affine(box: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """2x3 affine image->192x192 landmark input: a square of 1.5x the box's long side, centred on
        the box, rotated so the line from keypoint 0 (right eye) to 1 (left eye) is horizontal."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * ROI_SCALE
        dx, dy = kps[1] - kps[0]
        theta = np.arctan2(dy, dx)
        c, s = np.cos(theta), np.sin(theta)
        k = LMK_SIZE / side
        # crop = k * R(-theta) (p - centre) + size/2
        a = k * np.array([[c, s], [-s, c]])
        t = np.array([LMK_SIZE / 2, LMK_SIZE / 2]) - a @ np.array([cx, cy])
        return np.hstack([a, t[:, None]])

    @staticmethod
    def landmark_input(image: np.ndarray, mat: np.ndarray) -> np.ndarray:
        crop = cv2.warpAffine(image, mat, (LMK_SIZE, LMK_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        return crop.astype(np.float32) / 255.0

    @staticmethod
    def landmarks_to_image(raw: np.ndarray, mat: np.ndarray) -> np.ndarray:
        """468x3 landmarks in image pixels from the network's 1404 values (192-pixel crop units)."""
        p = raw.reshape(468, 3).astype(np.float64)
        inv = cv2.invertAffineTransform(mat)
        xy = p[:, :2] @ inv[:, :2].T + inv[:, 2]
        scale = np.sqrt(abs(np.linalg.det(inv[:, :2])))
        return np.hstack([xy, p[:, 2:3] * scale]).astype(np.float32)

    def analyze(self, image: np.ndarray, max_faces: int | None = None) -> list[Face]:
        image = _check_image(image)
        boxes, kps, scores = self.detect(image, max_faces)
        faces = []
        if len(scores):
            mats = [self.roi_affine(b, k) for b, k in zip(boxes, kps)]
            x = np.stack([self.landmark_input(image, m) for m in mats])
            raw, presence = self.networks.landmarks(x)
            for b, k, s, m, r, p in zip(boxes, kps, scores, mats, raw, presence):
                pr = float(_sigmoid(p.reshape(())))
                if pr < MIN_PRESENCE:
                    continue
                faces.append(Face(tuple(float(v) for v in b), float(s), self.landmarks_to_image(r, m), pr, k))
        if not faces:
            raise NoFaceError(f"no face was found in the {image.shape[1]}x{image.shape[0]} image")
        return faces[:max_faces] if max_faces else faces


def _inside(box: np.ndarray, boxes: np.ndarray, frac: float = 0.5) -> bool:
    """Whether more than ``frac`` of ``box`` lies inside one of ``boxes``."""
    x0 = np.maximum(box[0], boxes[:, 0]); y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2]); y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    return bool((inter / area > frac).any())


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {desc}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} pixels is too small to hold a face")
    return np.ascontiguousarray(image)


_default: FaceAnalyzer | None = None
_lock = threading.Lock()


def default_analyzer() -> FaceAnalyzer:
    global _default
    with _lock:
        if _default is None:
            _default = FaceAnalyzer()
        return _default


def analyze(image_rgb_uint8: np.ndarray, max_faces: int | None = None) -> list[Face]:
    """Faces in an RGB uint8 image, largest first (all of them unless ``max_faces``).

    Raises ``NoFaceError`` when there is none, ``ValueError`` when the input is not an RGB image."""
    return default_analyzer().analyze(image_rgb_uint8, max_faces)

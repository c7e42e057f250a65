"""Keypoint math between LivePortrait's networks, numpy in / numpy out (float64 inside, float32 out).

The same functions serve the PyTorch reference pipeline and the Triton stages, so both re-pose a face identically.

Conventions (LivePortrait paper, Eq. 2, and its released inference code):
* M predicts pitch, yaw and roll each as 66 bin logits; the angle is the softmax expectation of the bin index,
  times 3 degrees, minus 97.5 degrees (so the bins span about -97.5 .. +97.5).
* Keypoints are row vectors; `R = (Rz(roll) @ Ry(yaw) @ Rx(pitch))^T`, so `kp @ R` rotates them.
* Driving keypoints: x = s * (x_c @ R + exp) + t, with only t_x, t_y applied (t_z is ignored).
* Stitching adds the MLP's 63 offsets to x_d and its last two outputs to every keypoint's (x, y).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

NUM_KP = 21
NUM_BINS = 66
BIN_DEGREES = 3.0
BIN_OFFSET_DEGREES = 97.5
# The bins cover -97.5 .. 97.5 degrees; we accept targets within +-90 (beyond that the face is seen edge-on).
POSE_LIMIT_DEGREES = 90.0
RATIO_RANGE = (0.0, 1.0)


def _array(name: str, value, ndim: int | None = None, last: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim}-D array, got shape {a.shape}")
    if last is not None and tuple(a.shape[a.ndim - len(last):]) != last:
        raise ValueError(f"{name}: expected trailing shape {last}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return a


def _batch_angles(name: str, value) -> np.ndarray:
    a = _array(name, value)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected angles of shape (B,) or (B, 1), got {a.shape}")
    return a


def bins_to_degrees(logits) -> np.ndarray:
    """(B, 66) head-pose bin logits -> (B,) degrees: softmax expectation of the bin index * 3 - 97.5."""
    z = _array("pose logits", logits, ndim=2, last=(NUM_BINS,))
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return (p @ np.arange(NUM_BINS) * BIN_DEGREES - BIN_OFFSET_DEGREES).astype(np.float32)


def rotation_matrix(pitch, yaw, roll) -> np.ndarray:
    """Angles in degrees, each (B,) or (B, 1) -> (B, 3, 3) R with `kp @ R` = rotated row-vector keypoints."""
    x, y, z = (np.deg2rad(_batch_angles(n, v)) for n, v in (("pitch", pitch), ("yaw", yaw), ("roll", roll)))
    if not x.shape == y.shape == z.shape:
        raise ValueError(f"pitch/yaw/roll batch sizes differ: {x.shape}, {y.shape}, {z.shape}")
    b = x.shape[0]
    one, zero = np.ones(b), np.zeros(b)
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).reshape(b, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).reshape(b, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).reshape(b, 3, 3)
    return (rz @ ry @ rx).transpose(0, 2, 1).astype(np.float32)


def _keypoints(name: str, value) -> np.ndarray:
    a = _array(name, value)
    if a.ndim == 2 and a.shape[1] == 3 * NUM_KP:
        a = a.reshape(a.shape[0], NUM_KP, 3)
    if a.ndim != 3 or a.shape[1:] != (NUM_KP, 3):
        raise ValueError(f"{name}: expected shape (B, {NUM_KP}, 3) or (B, {3 * NUM_KP}), got {a.shape}")
    return a


def transform_keypoints(kp, rotation, exp, scale, t) -> np.ndarray:
    """x = s * (kp @ R + exp) + (t_x, t_y, 0) -> (B, 21, 3). kp/exp (B,21,3) or (B,63), R (B,3,3), s (B,1), t (B,3)."""
    kp, exp = _keypoints("kp", kp), _keypoints("exp", exp)
    r = _array("rotation", rotation, ndim=3, last=(3, 3))
    s = _array("scale", scale).reshape(-1, 1, 1)
    t = _array("t", t, ndim=2, last=(3,))
    x = (kp @ r + exp) * s
    x[..., :2] += t[:, None, :2]
    return x.astype(np.float32)


@dataclass(frozen=True)
class KeypointInfo:
    """M's outputs after `decode_motion`: angles in degrees (B,), keypoints/expression (B,21,3), scale (B,1), t (B,3)."""
    pitch: np.ndarray
    yaw: np.ndarray
    roll: np.ndarray
    kp: np.ndarray
    exp: np.ndarray
    scale: np.ndarray
    t: np.ndarray

    @property
    def degrees(self) -> np.ndarray:
        return np.stack([self.pitch, self.yaw, self.roll], axis=1)


def decode_motion(raw: Mapping[str, np.ndarray]) -> KeypointInfo:
    """M's raw head outputs (pitch/yaw/roll logits, kp, exp, scale, t) -> KeypointInfo."""
    return KeypointInfo(pitch=bins_to_degrees(raw["pitch"]), yaw=bins_to_degrees(raw["yaw"]),
                        roll=bins_to_degrees(raw["roll"]), kp=_keypoints("kp", raw["kp"]).astype(np.float32),
                        exp=_keypoints("exp", raw["exp"]).astype(np.float32),
                        scale=_array("scale", raw["scale"]).reshape(-1, 1).astype(np.float32),
                        t=_array("t", raw["t"], ndim=2, last=(3,)).astype(np.float32))


def source_keypoints(info: KeypointInfo) -> np.ndarray:
    """x_s: the source's keypoints at its own pose and expression."""
    return transform_keypoints(info.kp, rotation_matrix(info.pitch, info.yaw, info.roll), info.exp, info.scale, info.t)


def target_pose(source_degrees, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0,
                mode: str = "absolute") -> np.ndarray:
    """(B, 3) target (pitch, yaw, roll) in degrees. `absolute`: the given angles (frontalize = 0, 0, 0);
    `relative`: the source's angles plus the given deltas. Raises ValueError outside +-POSE_LIMIT_DEGREES."""
    src = _array("source pose", source_degrees, ndim=2, last=(3,))
    req = _array("pose", [pitch, yaw, roll], ndim=1)
    if mode == "absolute":
        out = np.broadcast_to(req, src.shape).copy()
    elif mode == "relative":
        out = src + req
    else:
        raise ValueError(f"pose mode must be 'absolute' or 'relative', got {mode!r}")
    bad = np.abs(out) > POSE_LIMIT_DEGREES
    if bad.any():
        names = np.array(["pitch", "yaw", "roll"])[bad.any(axis=0)]
        raise ValueError(f"target {'/'.join(names)} outside +-{POSE_LIMIT_DEGREES:g} degrees: "
                         f"{np.round(out[bad], 2).tolist()} ({mode} mode)")
    return out.astype(np.float32)


def driving_keypoints(info: KeypointInfo, target_degrees, exp_offsets=None) -> np.ndarray:
    """x_d: the source's canonical keypoints at the target pose, with its expression plus `exp_offsets`."""
    deg = _array("target pose", target_degrees, ndim=2, last=(3,))
    exp = info.exp if exp_offsets is None else info.exp + _keypoints("expression offsets", exp_offsets)
    return transform_keypoints(info.kp, rotation_matrix(deg[:, 0], deg[:, 1], deg[:, 2]), exp, info.scale, info.t)


# ---- stitching and retargeting (the S MLPs' inputs and how their outputs are applied) ----

def stitching_input(x_s, x_d) -> np.ndarray:
    """(B, 126) = [x_s, x_d] flattened."""
    a, b = _keypoints("x_s", x_s), _keypoints("x_d", x_d)
    return np.concatenate([a.reshape(len(a), -1), b.reshape(len(b), -1)], axis=1).astype(np.float32)


def apply_stitching(x_d, delta) -> np.ndarray:
    """x_d + delta[:, :63] per keypoint, then + delta[:, 63:65] on every keypoint's (x, y)."""
    x = _keypoints("x_d", x_d)
    d = _array("stitching delta", delta, ndim=2, last=(3 * NUM_KP + 2,))
    out = x + d[:, :3 * NUM_KP].reshape(-1, NUM_KP, 3)
    out[..., :2] += d[:, None, 3 * NUM_KP:]
    return out.astype(np.float32)


def _ratios(name: str, value, n: int) -> np.ndarray:
    r = _array(name, value, ndim=2, last=(n,))
    lo, hi = RATIO_RANGE
    if ((r < lo) | (r > hi)).any():
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], got {np.round(r, 4).tolist()}")
    return r


def lip_input(x_s, lip_ratio) -> np.ndarray:
    """(B, 65) = [x_s, (source lip-open ratio, target lip-open ratio)]."""
    x = _keypoints("x_s", x_s)
    return np.concatenate([x.reshape(len(x), -1), _ratios("lip ratio", lip_ratio, 2)], axis=1).astype(np.float32)


def eye_input(x_s, eye_ratio) -> np.ndarray:
    """(B, 66) = [x_s, (source left/right eye-open ratios, target eye-open ratio)]."""
    x = _keypoints("x_s", x_s)
    return np.concatenate([x.reshape(len(x), -1), _ratios("eye ratio", eye_ratio, 3)], axis=1).astype(np.float32)


def retarget_offsets(delta) -> np.ndarray:
    """Lip or eye MLP output (B, 63) -> per-keypoint offsets (B, 21, 3), added to x_d."""
    return _keypoints("retargeting delta", delta).astype(np.float32)


# ---- expression controls (FacePoke's sliders, which adapt ComfyUI-AdvancedLivePortrait's) ----
# control -> ((min, max), [(keypoint, axis, factor for value > 0, factor for value <= 0), ...]); axis 0=x, 1=y, 2=z.
# The offset added is value * factor. FacePoke's `pupil_y` also moves keypoints 11 and 15 a second time by the same
# amount; the table holds the summed factor. FacePoke adds these to the canonical keypoints; like the ComfyUI node
# they come from, we add them to the expression deformation (same size, not rotated with the head).
EXPRESSION_CONTROLS: dict[str, tuple[tuple[float, float], list[tuple[int, int, float, float]]]] = {
    "smile": ((-0.3, 1.3), [(20, 1, -0.01, -0.01), (14, 1, -0.02, -0.02), (17, 1, 0.0065, 0.0065),
                            (17, 2, 0.003, 0.003), (13, 1, -0.00275, -0.00275), (16, 1, -0.00275, -0.00275),
                            (3, 1, -0.0035, -0.0035), (7, 1, -0.0035, -0.0035)]),
    "aaa": ((-30.0, 120.0), [(19, 1, 0.001, 0.001), (19, 2, 0.0001, 0.0001), (17, 1, -0.0001, -0.0001)]),
    "eee": ((-20.0, 15.0), [(20, 2, -0.001, -0.001), (20, 1, -0.001, -0.001), (14, 1, -0.001, -0.001)]),
    "woo": ((-20.0, 15.0), [(14, 1, 0.001, 0.001), (3, 1, -0.0005, -0.0005), (7, 1, -0.0005, -0.0005),
                            (17, 2, -0.0005, -0.0005)]),
    "wink": ((0.0, 25.0), [(11, 1, 0.001, 0.001), (13, 1, -0.0003, -0.0003), (17, 0, 0.0003, 0.0003),
                           (17, 1, 0.0003, 0.0003), (3, 1, -0.0003, -0.0003)]),
    "pupil_x": ((-15.0, 15.0), [(11, 0, 0.0007, 0.001), (15, 0, 0.001, 0.0007)]),
    "pupil_y": ((-15.0, 15.0), [(11, 1, -0.002, -0.002), (15, 1, -0.002, -0.002)]),
    "eyes": ((-20.0, 5.0), [(11, 1, -0.001, -0.001), (13, 1, 0.0003, 0.0003), (15, 1, -0.001, -0.001),
                            (16, 1, 0.0003, 0.0003), (1, 1, -0.00025, -0.00025), (2, 1, 0.00025, 0.00025)]),
    "eyebrow": ((-10.0, 15.0), [(1, 1, 0.001, 0.0003), (2, 1, -0.001, -0.0003), (1, 0, 0.0, -0.001),
                                (2, 0, 0.0, 0.001)]),
}


def expression_offsets(controls: Mapping[str, float] | None) -> np.ndarray:
    """(1, 21, 3) offsets for the expression deformation from named control values (missing controls = 0)."""
    out = np.zeros((1, NUM_KP, 3))
    for name, value in (controls or {}).items():
        if name not in EXPRESSION_CONTROLS:
            raise ValueError(f"unknown expression control {name!r}; known: {', '.join(EXPRESSION_CONTROLS)}")
        v = float(value)
        (lo, hi), moves = EXPRESSION_CONTROLS[name]
        if not np.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"expression control {name}={value!r} outside [{lo:g}, {hi:g}]")
        for kp, axis, pos, neg in moves:
            out[0, kp, axis] += v * (pos if v > 0 else neg)
    return out.astype(np.float32)

"""The python stages of the `liveportrait_frontalize` ensemble (same code in the GPU and CPU flavours):

  liveportrait_preprocess   IMAGE bytes -> 256 source crop (FP32 CHW in [0, 1]), crop transform, the decoded
                            photo (for paste-back) and the source's eye/lip-open ratios (for retargeting)
  liveportrait_keypoints    M's outputs + POSE + CONTROLS -> x_s, x_d (kinematics.py, the same numpy code as the
                            PyTorch reference), with the stitching / eye / lip MLPs (S, ~0.1 MFLOP) run here by
                            onnxruntime rather than as a leaf of their own
  liveportrait_postprocess  G's 512 image -> uint8 face, or pasted back into the photo (parameter paste_back)

Controls (CONTROLS, FP32 [N], names in the ensemble's `controls` parameter, 0 = no change for every one):
  relative   0: POSE is the absolute target (frontalize = 0/0/0); non-zero: POSE is added to the source's pose
  eye_open   target eye-open ratio in (0, 1] through the eye retargeting MLP; 0 keeps the source's eyes
  lip_open   target lip-open ratio in (0, 1] through the lip retargeting MLP; 0 keeps the source's lips
  smile, wink, eyebrow, eyes, pupil_x, pupil_y, aaa, eee, woo   FacePoke's expression offsets
                                                                (ranges: kinematics.EXPRESSION_CONTROLS)
"""
from __future__ import annotations

import numpy as np

from facefront import artifact, imaging
from facefront.liveportrait import kinematics as kin
from facefront.serving.stage import InputError, Stage
from facefront.sessions import session_from_parameters

SIZE = 256
RETARGET_CONTROLS = ("eye_open", "lip_open")
CONTROLS = ("relative", *RETARGET_CONTROLS, *kin.EXPRESSION_CONTROLS)

# FaceMesh (468) indices: eye lids and corners, inner lips and mouth corners
LEFT_EYE = (159, 145, 33, 133)     # upper lid, lower lid, outer corner, inner corner
RIGHT_EYE = (386, 374, 263, 362)
LIPS = (13, 14, 78, 308)           # upper inner lip, lower inner lip, mouth corners


def _open_ratio(lm: np.ndarray, idx) -> float:
    a, b, c, d = (lm[i, :2] for i in idx)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(c - d), 1e-6))


def source_ratios(landmarks: np.ndarray) -> np.ndarray:
    """(left eye, right eye, lips) open ratios: lid (lip) gap over the eye (mouth) width, as LivePortrait's
    calc_eye_close_ratio / calc_lip_close_ratio on its 203 landmarks, here from the 468 FaceMesh points."""
    return np.array([_open_ratio(landmarks, LEFT_EYE), _open_ratio(landmarks, RIGHT_EYE),
                     _open_ratio(landmarks, LIPS)], np.float32)


def crop_face(rgb: np.ndarray):
    """(crop uint8 256x256x3, M 2x3, source ratios) for the largest face of an RGB photo; InputError if none."""
    from facefront.face import NoFaceError, align, analyze
    try:
        face = analyze(rgb, max_faces=1)[0]   # largest face first
    except NoFaceError as e:
        raise InputError(str(e)) from None
    crop, M = align.crop(rgb, face, "portrait", size=SIZE)
    return crop, np.asarray(M, np.float32), source_ratios(np.asarray(face.landmarks))


def to_source(crop: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> FP32 3xHxW in [0, 1], the networks' input (and the reference pipeline's)."""
    return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """G's 3xHxW in (0, 1) -> HxWx3 uint8 (round to nearest)."""
    return np.clip(np.rint(image.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


class PreprocessStage(Stage):
    """`original` (the decoded photo) rides through the ensemble to the postprocess only when that pastes back: with
    `paste_back: "false"` (the default, as in liveportrait_postprocess) it is a 1x1 placeholder, so megapixel photos
    do not travel through every step for nothing."""
    INPUTS = ("IMAGE",)
    OUTPUTS = ("source", "crop_M", "original", "ratios")
    STACK = False

    def setup(self):
        self.carry_photo = self.params.get("paste_back", "false").lower() == "true"

    def check(self, name, value):
        if value.dtype != np.uint8 or value.ndim != 2:
            raise InputError(f"{name} must be the encoded image file as uint8, shape [1, nbytes]")
        return value

    def run(self, batch):
        out = {k: [] for k in self.OUTPUTS}
        for item in batch["IMAGE"]:
            try:
                rgb = imaging.decode(item.tobytes())
            except imaging.ImageError as e:
                raise InputError(str(e)) from None
            crop, M, ratios = crop_face(rgb)
            out["source"].append(to_source(crop))
            out["crop_M"].append(M)
            out["original"].append(rgb if self.carry_photo else np.zeros((1, 1, 3), np.uint8))
            out["ratios"].append(ratios)
        return out


class Keypoints:
    """x_s and x_d for a batch, from M's raw outputs, the target pose and the controls. `mlps(stitching_in, lip_in,
    eye_in) -> (stitching_out, lip_out, eye_out)` runs S (onnxruntime here, PyTorch in the reference)."""

    def __init__(self, mlps):
        self.mlps = mlps

    def __call__(self, raw: dict, pose: np.ndarray, controls: np.ndarray, ratios: np.ndarray):
        info = kin.decode_motion(raw)
        x_s = kin.source_keypoints(info)
        b = len(x_s)
        targets, offsets = [], []
        for i in range(b):
            c = dict(zip(CONTROLS, (float(v) for v in controls[i])))
            yaw, pitch, roll = (float(v) for v in pose[i])
            mode = "relative" if c.pop("relative") != 0 else "absolute"
            try:
                targets.append(kin.target_pose(info.degrees[i:i + 1], pitch, yaw, roll, mode)[0])
                offsets.append(kin.expression_offsets({k: v for k, v in c.items() if k in kin.EXPRESSION_CONTROLS})[0])
            except ValueError as e:
                raise InputError(str(e)) from None
            for k in RETARGET_CONTROLS:
                if not 0.0 <= c[k] <= 1.0:
                    raise InputError(f"control {k}={c[k]:g} outside [0, 1] (0 keeps the source's own)")
        x_d = kin.driving_keypoints(info, np.stack(targets), np.stack(offsets))
        eye_t, lip_t = controls[:, CONTROLS.index("eye_open")], controls[:, CONTROLS.index("lip_open")]
        lip_in = kin.lip_input(x_s, np.stack([np.clip(ratios[:, 2], 0, 1), lip_t], 1))
        eye_in = kin.eye_input(x_s, np.stack([np.clip(ratios[:, 0], 0, 1), np.clip(ratios[:, 1], 0, 1), eye_t], 1))
        _, lip_out, eye_out = self.mlps(kin.stitching_input(x_s, x_d), lip_in, eye_in)
        # retargeting deltas first, then stitching (as LivePortrait's pipeline orders them)
        x_d = (x_d + kin.retarget_offsets(eye_out) * (eye_t > 0)[:, None, None]
               + kin.retarget_offsets(lip_out) * (lip_t > 0)[:, None, None]).astype(np.float32)
        stitch_out = self.mlps(kin.stitching_input(x_s, x_d), lip_in, eye_in)[0]
        return x_s, kin.apply_stitching(x_d, stitch_out)


class KeypointsStage(Stage):
    INPUTS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp", "ratios")
    OPTIONAL = ("POSE", "CONTROLS")
    OUTPUTS = ("kp_source", "kp_driving")

    def setup(self):
        name = "stitching.onnx"
        try:
            artifact.verify(self.version_dir, name)
        except artifact.ArtifactError as e:
            raise RuntimeError(str(e)) from None
        sess = session_from_parameters(self.version_dir / name, self.params, default_threads=1)
        self.keypoints = Keypoints(lambda st, lip, eye: sess.run(None, {"stitching_in": st, "lip_in": lip, "eye_in": eye}))
        names = [n.strip() for n in self.params.get("controls", ",".join(CONTROLS)).split(",")]
        if tuple(names) != CONTROLS:
            raise RuntimeError(f"{self.name}: parameter controls must be {','.join(CONTROLS)}")

    def check(self, name, value):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise InputError(f"input {name} contains NaN or Inf")
        if name == "CONTROLS" and value.shape[1:] != (len(CONTROLS),):
            raise InputError(f"CONTROLS must hold {len(CONTROLS)} values ({','.join(CONTROLS)}), got {value.shape[1:]}")
        return value

    def defaults(self, n):
        return {"POSE": np.zeros((n, 3), np.float32), "CONTROLS": np.zeros((n, len(CONTROLS)), np.float32)}

    def run(self, batch):
        raw = {k: batch[k] for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")}
        x_s, x_d = self.keypoints(raw, batch["POSE"], batch["CONTROLS"], batch["ratios"])
        return {"kp_source": x_s, "kp_driving": x_d}


class PostprocessStage(Stage):
    INPUTS = ("image", "original", "crop_M")
    OUTPUTS = ("FRONTAL",)
    STACK = False

    def setup(self):
        self.paste = self.params.get("paste_back", "false").lower() == "true"

    def run(self, batch):
        from facefront.face import align
        out = []
        for image, original, M in zip(batch["image"], batch["original"], batch["crop_M"]):
            face = to_uint8(image)
            if self.paste:
                face = align.paste_back(original, face, M, crop_size=SIZE)
            out.append(face)
        return {"FRONTAL": out}

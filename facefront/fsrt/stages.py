"""The python stages of the `fsrt_frontalize` ensemble (the same code in the GPU and CPU flavours):

  fsrt_preprocess   IMAGE bytes (+ POSE) -> the 256 source crop and the DRIVER: mesh3d's render of that crop at
                    POSE (frontal by default), both FP32 CHW in [0, 1]. FSRT has no pose input; it copies the
                    keypoints and expression of a driving image, and our driver is the same person re-posed.
  fsrt_render       z (the source's tokens) + the driver's keypoints and expression (+ CONTROLS output_size) ->
                    the raw frame (HWC, not clamped): the decoder is a leaf (`fsrt_decoder`: onnxruntime on CPU,
                    TensorRT on GPU) that this stage calls chunk by chunk through BLS, so the decoder's memory is
                    bounded by `chunk_pixels` whatever the output size, and the GPU flavour keeps its engine.
                    Outside Triton (`Stage.standalone`) the same loop runs the decoder graph with onnxruntime.
  fsrt_postprocess  raw frame -> uint8 RGB (clamp to [0, 1], round to nearest), and RAW passed through

Keypoints reach the decoder in ABSOLUTE mode (`geometry.normalize_kp`: the driver's own): the driver is the same
person, so its keypoints already carry this face's shape (docs/fsrt.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facefront import artifact, imaging
from facefront.fsrt import geometry
from facefront.serving.stage import InputError, Stage, bls_infer, pb_utils

SIZE = geometry.SIZE
CROP = "eye_mouth"   # the framing mesh3d's render uses: source and driver then agree in face position and scale
CONTROLS = ("output_size",)


def face_crop(rgb: np.ndarray, convention: str = CROP, scale: float | None = None,
              shift: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(256x256x3 uint8 crop, its 468x3 landmarks in crop pixels) of the largest face; InputError if none.
    The landmarks are the photo's, carried through the crop transform (z scaled like x and y), so the driver
    render needs no second face analysis."""
    from facefront.face import NoFaceError, align, analyze
    try:
        face = analyze(rgb, max_faces=1)[0]   # largest face first
    except (NoFaceError, ValueError) as e:     # no face, or an image too small to hold one
        raise InputError(str(e)) from None
    crop, M = align.crop(rgb, face, convention, size=SIZE, scale=scale, shift=shift)
    M = np.asarray(M, np.float64)
    lm = np.asarray(face.landmarks, np.float64)
    xy = lm[:, :2] @ M[:, :2].T + M[:, 2]
    z = lm[:, 2:3] * np.sqrt(abs(np.linalg.det(M[:, :2])))
    return crop, np.hstack([xy, z]).astype(np.float32)


def driver(crop: np.ndarray, landmarks: np.ndarray, yaw: float = 0.0, pitch: float = 0.0,
           roll: float = 0.0) -> np.ndarray:
    """mesh3d's render (uint8 256x256x3) of the crop's own face at (yaw, pitch, roll) degrees."""
    from facefront.face import mesh3d
    check_pose(np.array([yaw, pitch, roll], np.float32))
    try:
        return mesh3d.render(crop, landmarks, float(yaw), float(pitch), float(roll), size=SIZE).image
    except ValueError as e:
        raise InputError(f"cannot render the driver: {e}") from None


def check_pose(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, np.float32)
    if pose.shape[-1:] != (3,) or not np.isfinite(pose).all() or (np.abs(pose) > 90).any():
        raise InputError("POSE must be [yaw, pitch, roll] in degrees, finite and each within +-90")
    return pose


def to_chw(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> FP32 3xHxW in [0, 1] (the networks' input; the reference divides the same way)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def to_uint8(raw: np.ndarray) -> np.ndarray:
    """The decoder's raw HxWx3 colours -> uint8 (the picture is clamp(raw, 0, 1), upstream's demo)."""
    return np.clip(np.rint(np.asarray(raw, np.float32) * 255.0), 0, 255).astype(np.uint8)


class PreprocessStage(Stage):
    INPUTS = ("IMAGE",)
    OPTIONAL = ("POSE",)
    OUTPUTS = ("source", "driver")
    STACK = False

    def setup(self):
        """Settings: `crop` (a facefront.face.align rule; default eye_mouth, mesh3d's own framing), optional
        `crop_scale` / `crop_shift`. The crop side is FSRT's 256."""
        from facefront.face import align
        from facefront.face.analysis import default_analyzer
        self.crop = self.params.get("crop", CROP)
        if self.crop not in align.CONVENTIONS:
            raise RuntimeError(f"{self.name}: unknown crop rule {self.crop!r}; known: {', '.join(align.CONVENTIONS)}")
        if int(self.params.get("crop_size", SIZE)) != SIZE:
            raise RuntimeError(f"{self.name}: parameter crop_size must be {SIZE} (FSRT's input resolution)")
        opt = {k: self.params.get(f"crop_{k}") for k in ("scale", "shift")}
        self.overrides = {k: float(v) for k, v in opt.items() if v not in (None, "")}
        default_analyzer()                      # build/load the face models now, not on the first request

    def check(self, name, value):
        if name == "IMAGE" and (value.dtype != np.uint8 or value.ndim != 2):
            raise InputError("IMAGE must be the encoded image file as uint8, shape [1, nbytes]")
        if name == "POSE":
            value = check_pose(value)
        return value

    def defaults(self, n):
        return {"POSE": np.zeros((n, 3), np.float32)}

    def prepare(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Encoded photo -> (crop, crop landmarks), as served (tests and in-process tools start here)."""
        try:
            # the crop is 256 px: decoding a JPEG at up to 1/8 scale keeps the face at several times that
            rgb = imaging.decode(bytes(data), min_side=SIZE * 8)
        except imaging.ImageError as e:
            raise InputError(str(e)) from None
        return face_crop(rgb, self.crop, **self.overrides)

    def run(self, batch):
        out = {"source": [], "driver": []}
        for item, pose in zip(batch["IMAGE"], batch["POSE"]):
            crop, lm = self.prepare(item.tobytes())
            out["source"].append(to_chw(crop))
            out["driver"].append(to_chw(driver(crop, lm, *(float(v) for v in pose))))
        return out


class _BlsDecoder:
    """decode(z, pixels, keypoints, expression) -> rgb as a BLS request to the decoder leaf."""

    def __init__(self, model: str):
        self.model = model

    def __call__(self, z, pixels, keypoints, expression):
        inputs = {n: np.ascontiguousarray(v, np.float32) for n, v in
                  (("z", z), ("pixels", pixels), ("keypoints", keypoints), ("expression", expression))}
        return bls_infer(self.model, inputs, ["rgb"])[0]


class RenderStage(Stage):
    INPUTS = ("z", "keypoints", "expression")
    OPTIONAL = ("CONTROLS",)
    OUTPUTS = ("raw",)

    def setup(self):
        """Settings: `bls_models` (the decoder leaf), `output_size` (the default when CONTROLS' output_size is 0),
        `chunk_pixels` (query pixels per decoder call: bounds the decoder's memory)."""
        self.decoder_model = self.params.get("bls_models", "fsrt_decoder").strip()
        try:
            self.output_size = geometry.check_output_size(float(self.params.get("output_size", SIZE)))
            self.chunk = int(self.params.get("chunk_pixels", geometry.DEFAULT_CHUNK))
        except ValueError as e:
            raise RuntimeError(f"{self.name}: parameter output_size / chunk_pixels: {e}") from None
        if self.chunk < 1:
            raise RuntimeError(f"{self.name}: parameter chunk_pixels must be positive")
        if pb_utils is not None:
            self.decode = _BlsDecoder(self.decoder_model)
        else:   # in-process (benchmarks, tests): the leaf's graph with onnxruntime, the same chunked loop
            from facefront.sessions import session_from_parameters
            leaf = Path(self.version_dir).parent.parent / self.decoder_model / "1"
            try:
                artifact.verify(leaf, "model.onnx")
            except artifact.ArtifactError as e:
                raise RuntimeError(str(e)) from None
            sess = session_from_parameters(leaf / "model.onnx", self.params, default_threads=2)
            self.decode = lambda z, p, k, e: sess.run(["rgb"], {"z": z, "pixels": p, "keypoints": k,
                                                               "expression": e})[0]

    def check(self, name, value):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise InputError(f"input {name} contains NaN or Inf")
        if name == "CONTROLS":
            if value.shape[1:] != (len(CONTROLS),):
                raise InputError(f"CONTROLS must hold {len(CONTROLS)} value ({','.join(CONTROLS)}), "
                                 f"got {value.shape[1:]}")
            for v in value[:, 0]:
                if v != 0 and v not in geometry.OUTPUT_SIZES:
                    raise InputError(f"control output_size={v:g} must be one of "
                                     f"{', '.join(map(str, geometry.OUTPUT_SIZES))} (0: the default "
                                     f"{self.output_size})")
        return value

    def defaults(self, n):
        return {"CONTROLS": np.zeros((n, len(CONTROLS)), np.float32)}

    def run(self, batch):
        out = []
        for z, kp, ex, ctl in zip(batch["z"], batch["keypoints"], batch["expression"], batch["CONTROLS"]):
            size = int(ctl[0]) or self.output_size
            query, _ = geometry.normalize_kp(None, kp[None])   # absolute mode: the driver's own keypoints
            out.append(geometry.render(self.decode, z[None], query, ex[None], size, self.chunk))
        return {"raw": out}


class PostprocessStage(Stage):
    INPUTS = ("raw",)
    OUTPUTS = ("FRONTAL", "RAW")   # RAW passes through: the ensemble's pre-clamp output (see its config)
    STACK = False

    def run(self, batch):
        return {"FRONTAL": [to_uint8(r) for r in batch["raw"]], "RAW": list(batch["raw"])}

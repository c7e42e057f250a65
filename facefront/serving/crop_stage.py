"""Preprocess stage shared by the models: image bytes -> the model's aligned face crop (uint8 HxWx3).

Decoding is `facefront.imaging.decode` (safe against bombs and truncated files). The config's parameters say how
to crop: `crop` names a rule of `facefront.face.align` (e.g. "landmark_box"), `crop_size` the side in pixels, and
optional `crop_scale` / `crop_shift` override the rule's defaults. With `crop: "center"` (or no face package) it
takes a centre square, which suits already-cropped faces.
"""
from __future__ import annotations

import cv2
import numpy as np

from facefront import imaging
from facefront.serving.stage import InputError, Stage


def face_crop(rgb: np.ndarray, convention: str, size: int, scale: float | None = None,
              shift: float | None = None) -> np.ndarray:
    from facefront.face import NoFaceError, align, analyze
    try:
        faces = analyze(rgb, max_faces=1)
    except (NoFaceError, ValueError) as e:   # no face, or an image too small to hold one
        raise InputError(str(e)) from None
    crop, _ = align.crop(rgb, faces[0], convention, size=size, scale=scale, shift=shift)
    return crop


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    sq = imaging.center_square(rgb)
    interp = cv2.INTER_AREA if sq.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(sq, (size, size), interpolation=interp)


class CropStage(Stage):
    INPUTS = ("IMAGE",)
    OUTPUTS = ("FACE",)
    STACK = False

    def setup(self):
        """Settings from the config: `crop` (an align rule, or "center"), `crop_size`, `crop_scale`, `crop_shift`."""
        self.mode = self.params.get("crop", "")
        if not self.mode:
            raise RuntimeError(f"{self.name}: parameter crop must name a crop rule or 'center'")
        try:
            self.SIZE = int(self.params.get("crop_size", ""))
        except ValueError:
            raise RuntimeError(f"{self.name}: parameter crop_size must be the crop side in pixels") from None
        opt = {k: self.params.get(f"crop_{k}") for k in ("scale", "shift")}
        self.overrides = {k: float(v) for k, v in opt.items() if v not in (None, "")}
        if self.mode != "center":
            try:
                from facefront.face import align
            except ImportError:
                self.mode = "center"
            else:
                if self.mode not in align.CONVENTIONS:
                    raise RuntimeError(f"{self.name}: unknown crop rule {self.mode!r}; known: "
                                       f"{', '.join(align.CONVENTIONS)}, center")

    def check(self, name, value):
        # IMAGE is the encoded file as a uint8 vector per request ([1, nbytes]); BYTES tensors are avoided
        # because the python backend of Triton 2.51 mis-reads them under numpy 2.
        if value.dtype != np.uint8 or value.ndim != 2:
            raise InputError(f"{name} must be the encoded image file as uint8, shape [1, nbytes]")
        return value

    def crop_one(self, data: bytes) -> np.ndarray:
        try:
            # the crop is SIZE px: decoding a JPEG at up to 1/8 scale keeps the face at several times that
            rgb = imaging.decode(bytes(data), min_side=self.SIZE * 8)
        except imaging.ImageError as e:
            raise InputError(str(e)) from None
        if self.mode == "center":
            return center_crop(rgb, self.SIZE)
        return face_crop(rgb, self.mode, self.SIZE, **self.overrides)

    def run(self, batch):
        return {"FACE": [self.crop_one(item.tobytes()) for item in batch["IMAGE"]]}

"""Preprocess stage shared by the models: image bytes -> the model's aligned face crop (uint8 HxWx3).

Decoding is `facefront.imaging.decode` (safe against bombs and truncated files). The crop follows the model's
convention through `facefront.face.align` when the face-analysis package is present; with `crop: "center"` in the
model config (or no face package) it falls back to a centre square, which suits already-cropped faces.
"""
from __future__ import annotations

import cv2
import numpy as np

from facefront import imaging
from facefront.serving.stage import InputError, Stage


def face_crop(rgb: np.ndarray, convention: str, size: int) -> np.ndarray:
    from facefront.face import NoFaceError, align, analyze
    try:
        faces = analyze(rgb, max_faces=1)
    except NoFaceError as e:
        raise InputError(str(e)) from None
    crop, _ = align.crop(rgb, faces[0], convention, size=size)
    return crop


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    sq = imaging.center_square(rgb)
    interp = cv2.INTER_AREA if sq.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(sq, (size, size), interpolation=interp)


class CropStage(Stage):
    INPUTS = ("IMAGE",)
    OUTPUTS = ("FACE",)
    STACK = False
    CONVENTION = "scaleway"
    SIZE = 128

    def setup(self):
        mode = self.params.get("crop", "face")
        if mode == "face":
            try:
                from facefront.face import align, analyze  # noqa: F401
            except ImportError:
                mode = "center"
        self.mode = mode

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
        if self.mode == "face":
            return face_crop(rgb, self.CONVENTION, self.SIZE)
        return center_crop(rgb, self.SIZE)

    def run(self, batch):
        return {"FACE": [self.crop_one(item.tobytes()) for item in batch["IMAGE"]]}

"""Preprocess stage shared by the models: image bytes -> the model's aligned face crop (uint8 HxWx3).

Decoding is `facefront.imaging.decode` (safe against bombs and truncated files). The config's parameters say how
to crop: `crop` names a rule of `facefront.face.align` (e.g. "landmark_box"), `crop_size` the side in pixels, and
optional `crop_scale` / `crop_shift` override the rule's defaults. With `crop: "center"` (or no face package) it
takes a centre square, which suits already-cropped faces.

A JPEG is first decoded at the smallest DCT scale that keeps 4 x crop_size pixels on its longer side (1/2 for a
1 MP photo and a 128-pixel crop). That decode is kept when the face in it still has the pixels the crop and the
landmark network take (the crop does not enlarge the face region, and the detector's box is at least the landmark
network's 192-pixel input / 1.5); a smaller face, or none found, has the photo decoded again at up to 8 x crop_size,
as before (so a "no face" error names the size it was searched at before this change).
"""
from __future__ import annotations

import cv2
import numpy as np

from facefront import imaging
from facefront.serving.stage import InputError, Stage


def largest_face(rgb: np.ndarray):
    from facefront.face import NoFaceError, analyze
    try:
        return analyze(rgb, max_faces=1)[0]
    except (NoFaceError, ValueError) as e:   # no face, or an image too small to hold one
        raise InputError(str(e)) from None


def face_crop(rgb: np.ndarray, convention: str, size: int, scale: float | None = None,
              shift: float | None = None) -> np.ndarray:
    from facefront.face import align
    crop, _ = align.crop(rgb, largest_face(rgb), convention, size=size, scale=scale, shift=shift)
    return crop


def face_has_pixels(face, convention: str, size: int, scale: float | None = None, shift: float | None = None) -> bool:
    """Whether the image `face` was found in holds the face at full detail for this crop: the crop does not enlarge
    the face region (at most one crop pixel per image pixel), and the detector's box is at least the landmark
    network's input side / 1.5 (its region of interest is 1.5 boxes), so its 192-pixel input is not enlarged."""
    from facefront.face import align
    from facefront.face.analysis import LMK_SIZE, ROI_SCALE
    m = align.transform(face, convention, size, scale, shift)
    x0, y0, x1, y1 = face.box
    return abs(np.linalg.det(m[:, :2])) <= 1.0 and max(x1 - x0, y1 - y0) * ROI_SCALE >= LMK_SIZE


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

    FIRST_SIDE, FULL_SIDE = 4, 8   # x SIZE: the longer side a JPEG is decoded to at first, and at most after

    def crop_one(self, data: bytes) -> np.ndarray:
        from facefront.face import align
        data = bytes(data)
        if self.mode == "center":
            return center_crop(self._decode(data, self.FULL_SIDE), self.SIZE)
        rgb = self._decode(data, self.FIRST_SIDE)
        try:
            face = largest_face(rgb)
        except InputError:
            face = None     # none found at this scale: maybe at a larger one
        if face is None or not face_has_pixels(face, self.mode, self.SIZE, **self.overrides):
            if max(rgb.shape[:2]) < max(imaging.header_size(data)):
                # a small (or no) face in a photo decoded at a reduced scale: decode more pixels, find it again
                rgb = self._decode(data, self.FULL_SIDE)
                face = largest_face(rgb)
            elif face is None:
                face = largest_face(rgb)   # raises the InputError again, with its message
        crop, _ = align.crop(rgb, face, self.mode, size=self.SIZE, **self.overrides)
        return crop

    def _decode(self, data: bytes, side: int) -> np.ndarray:
        try:
            return imaging.decode(data, min_side=self.SIZE * side)
        except imaging.ImageError as e:
            raise InputError(str(e)) from None

    def run(self, batch):
        return {"FACE": [self.crop_one(item.tobytes()) for item in batch["IMAGE"]]}

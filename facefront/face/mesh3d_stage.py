"""Triton python-backend stage for mesh3d: IMAGE (encoded file, uint8 [1, N]) + optional POSE (fp32 [3],
yaw/pitch/roll degrees) -> FRONTAL (uint8 size x size x 3, or the whole photo with paste_back)."""
from __future__ import annotations

import numpy as np

from facefront.serving.stage import InputError, Stage


class Mesh3dStage(Stage):
    INPUTS = ("IMAGE",)
    OPTIONAL = ("POSE",)
    OUTPUTS = ("FRONTAL",)
    STACK = False

    def setup(self):
        from facefront.face.analysis import default_analyzer
        self.size = int(self.params.get("size", 256))
        self.paste = self.params.get("paste_back", "false").lower() == "true"
        default_analyzer()                      # build/load the face models now, not on the first request

    def check(self, name, value):
        if name == "IMAGE" and (value.dtype != np.uint8 or value.ndim != 2):
            raise InputError("IMAGE must be the encoded image file as uint8, shape [1, nbytes]")
        if name == "POSE":
            value = np.asarray(value, np.float32)
            if value.ndim != 2 or value.shape[1] != 3 or not np.isfinite(value).all() or (np.abs(value) > 90).any():
                raise InputError("POSE must be [yaw, pitch, roll] in degrees, each within +-90")
        return value

    def defaults(self, n):
        return {"POSE": np.zeros((n, 3), np.float32)}

    def frontalize_one(self, data: bytes, pose) -> np.ndarray:
        from facefront import imaging
        from facefront.face import NoFaceError
        from facefront.face.mesh3d import frontalize
        try:
            rgb = imaging.decode(data)
        except imaging.ImageError as e:
            raise InputError(str(e)) from None
        try:
            return frontalize(rgb, *(float(v) for v in pose), size=self.size, paste_back=self.paste)
        except (NoFaceError, ValueError) as e:
            raise InputError(str(e)) from None

    def run(self, batch):
        return {"FRONTAL": [self.frontalize_one(img.tobytes(), pose)
                            for img, pose in zip(batch["IMAGE"], batch["POSE"])]}

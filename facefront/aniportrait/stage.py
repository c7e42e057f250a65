"""Triton python model `aniportrait_frontalize`: a decoupled BLS stage running AniPortrait's denoising loop on the
leaves, streaming one progress response per step.

Per request: decode IMAGE, find the largest face (FaceMesh, in-process like mesh3d: two small onnxruntime graphs),
cut the `crop` rule's square at `size` px (the reference photo), turn the face's own 3-D landmarks to POSE
(default frontal) and draw the pose image; then `loop.Pose2Image` sends the network calls as BLS requests to the
aniportrait_* leaves (TensorRT plans on GPU, onnxruntime stages on CPU). The CLIP embedding, the VAE latents and the
reference bank are computed once per request, and their leaves answer a repeated photo from Triton's response
cache (same bytes -> same crop -> same input tensors).

Decoupled (`model_transaction_policy { decoupled: true }`): after each denoising step the stage sends a response
holding only PROGRESS = [done, steps]; the last response holds FRONTAL and carries the FINAL flag. An error is one
final response with the message. Clients use gRPC streaming (facefront.aniportrait.client). A request the client
cancels stops at the next step.
"""
from __future__ import annotations

import sys
import traceback

import numpy as np

from facefront.aniportrait import loop, preprocess, scheduler
from facefront.serving.stage import InputError, Stage, bls_infer, pb_utils

CROP_RULE = "portrait"   # facefront.face.align: head and some shoulder, roll cancelled (like upstream's portraits)


class Cancelled(Exception):
    """The client cancelled the request; nothing more is sent."""


def reference_and_pose(rgb: np.ndarray, size: int, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                       crop: str = CROP_RULE) -> tuple[np.ndarray, np.ndarray]:
    """Photo -> (reference crop uint8 size x size x 3, its pose image re-posed to yaw/pitch/roll). Raises
    facefront.face.NoFaceError or ValueError (bad angles) with a one-line message."""
    from facefront.aniportrait import pose_image
    from facefront.face import align, analyze
    face = analyze(rgb, max_faces=1)[0]
    ref, M = align.crop(rgb, face, crop, size=size)
    landmarks = pose_image.to_crop(face.landmarks, M)
    return ref, pose_image.pose_image(landmarks, (size, size), yaw, pitch, roll)


class TritonLeaves:
    """`loop.Networks` answered by BLS requests to the leaf models (outputs asked in CPU memory, also when the
    leaf is a TensorRT engine)."""

    @staticmethod
    def _as_sent(v: np.ndarray) -> np.ndarray:
        # a [B] graph input (timestep, reference_rows) is declared dims [1] with reshape [] (batched leaves):
        # requests carry it as [B, 1] and the leaf sees [B]
        v = np.ascontiguousarray(v, np.float32)
        return v[:, None] if v.ndim == 1 else v

    def run(self, leaf, inputs, outputs):
        return bls_infer(leaf, {k: self._as_sent(v) for k, v in inputs.items()}, list(outputs))


class FrontalizeStage(Stage):
    INPUTS = ("IMAGE",)
    OPTIONAL = ("POSE", "STEPS", "GUIDANCE", "SEED")
    OUTPUTS = ("FRONTAL", "PROGRESS")

    def setup(self):
        from facefront import repository
        from facefront.face import align
        from facefront.face.analysis import default_analyzer
        p = self.params
        try:
            self.size = int(p.get("size", "256"))
            self.default_steps = int(p.get("default_steps", "4"))
            self.max_steps = int(p.get("max_steps", str(preprocess.MAX_STEPS)))
            self.default_guidance = float(p.get("default_guidance", str(preprocess.DEFAULT_GUIDANCE)))
        except ValueError as e:
            raise RuntimeError(f"{self.name}: bad parameter: {e}") from None
        if self.size <= 0 or self.size % 64:
            # the UNet halves the 1/8 latent three times
            raise RuntimeError(f"{self.name}: parameter size must be a positive multiple of 64, got {self.size}")
        if not 1 <= self.max_steps <= preprocess.MAX_STEPS or not 1 <= self.default_steps <= self.max_steps:
            raise RuntimeError(f"{self.name}: need 1 <= default_steps <= max_steps <= {preprocess.MAX_STEPS}")
        self.crop = p.get("crop", CROP_RULE)
        if self.crop not in align.CONVENTIONS:
            raise RuntimeError(f"{self.name}: unknown crop rule {self.crop!r}; known: {', '.join(align.CONVENTIONS)}")
        repo = self.version_dir.parent.parent
        ref_leaf = loop.PREFIX + "reference_unet"
        bank = [o.name for o in repository.config(ref_leaf, repo=repo).output if o.name.startswith("bank_")]
        self._check_size(repo)
        self.loop = loop.Pose2Image(TritonLeaves(), bank)
        default_analyzer()   # build/load the face models now, not on the first request

    def _check_size(self, repo):
        """The graphs' spatial size is fixed at export: refuse to load with a size they were not made for."""
        from facefront import artifact
        try:
            entries = artifact.read(repo / (loop.PREFIX + "denoising_unet") / "1").get("artifacts", {})
        except artifact.ArtifactError:
            return   # the leaf itself refuses to load without its artefact, with that message
        sizes = {e["size"] for e in entries.values() if "size" in e}
        if sizes and sizes != {self.size}:
            raise RuntimeError(f"{self.name}: parameter size is {self.size} px but the aniportrait graphs were "
                               f"exported at {', '.join(map(str, sorted(sizes)))} px; set size to match")

    def check(self, name, value):
        if name == "IMAGE":
            if value.dtype != np.uint8 or value.ndim != 2:
                raise InputError("IMAGE must be the encoded image file as uint8, shape [1, nbytes]")
            return value
        flat = np.asarray(value).reshape(-1)
        if name == "POSE":
            if flat.size != 3 or not np.isfinite(flat).all() or (np.abs(flat) > 90).any():
                raise InputError("POSE must be [yaw, pitch, roll] in degrees, each within +-90")
            return flat.astype(np.float32)[None]
        if flat.size != 1:
            raise InputError(f"{name} must be one number")
        v = flat[0]
        if name == "STEPS" and not (float(v).is_integer() and 1 <= v <= self.max_steps):
            raise InputError(f"STEPS must be an integer in 1..{self.max_steps}, got {v}")
        if name == "GUIDANCE" and not (np.isfinite(v) and v >= 0):
            raise InputError(f"GUIDANCE must be a finite number >= 0, got {v}")
        if name == "SEED" and not (float(v).is_integer() and 0 <= v <= scheduler.MAX_SEED):
            raise InputError(f"SEED must be an integer in 0..{scheduler.MAX_SEED}, got {v}")
        return flat[:1]

    def defaults(self, n):
        return {"POSE": np.zeros((n, 3), np.float32), "STEPS": np.full(n, self.default_steps, np.int32),
                "GUIDANCE": np.full(n, self.default_guidance, np.float32), "SEED": np.zeros(n, np.int64)}

    def frontalize(self, values: dict[str, np.ndarray], progress=None) -> np.ndarray:
        """One request's validated inputs -> FRONTAL (uint8 size x size x 3)."""
        from facefront import imaging
        from facefront.face import NoFaceError
        try:
            # the crop is `size` px: a JPEG may be decoded at a reduced scale that keeps 8x that
            rgb = imaging.decode(values["IMAGE"].tobytes(), min_side=self.size * 8)
        except imaging.ImageError as e:
            raise InputError(str(e)) from None
        yaw, pitch, roll = (float(a) for a in values["POSE"].reshape(-1))
        try:
            ref, pose = reference_and_pose(rgb, self.size, yaw, pitch, roll, self.crop)
        except (NoFaceError, ValueError) as e:
            raise InputError(str(e)) from None
        return self.loop.generate(ref, pose, int(values["STEPS"][0]), float(values["GUIDANCE"][0]),
                                  int(values["SEED"][0]), progress, self.max_steps)

    def execute(self, requests):
        # decoupled: every answer goes through the request's response sender; execute returns None
        for request in requests:
            sender = request.get_response_sender()
            final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
            try:
                values = self._read(request)

                def progress(done, steps, request=request, sender=sender):
                    if getattr(request, "is_cancelled", lambda: False)():
                        raise Cancelled
                    sender.send(pb_utils.InferenceResponse(output_tensors=[
                        pb_utils.Tensor("PROGRESS", np.array([[done, steps]], np.int32))]))

                frontal = self.frontalize(values, progress)
                sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("FRONTAL", frontal[None])]),
                            flags=final)
            except Cancelled:
                sender.send(flags=final)
            except InputError as e:
                sender.send(self._error(str(e)), flags=final)
            except Exception as e:  # noqa: BLE001 - answer every request, never crash the model
                traceback.print_exc(file=sys.stderr)
                sender.send(self._error(f"{self.name} failed: {type(e).__name__}: {e}"), flags=final)
        return None

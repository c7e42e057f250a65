"""AniPortrait pose-to-image over five network calls, whoever runs them (onnxruntime in-process, or Triton leaves
through BLS requests): the same code serves and is measured in-process.

    reference photo --vae_encoder--> latents --reference_unet (t = 0, batch [uncond, cond])--> bank
    reference photo --image_encoder--> CLIP embedding; context = [zeros, embedding]
    pose image --pose_guider--> 5 feature maps (batch 1, repeated for the [uncond, cond] batch)
    noise --DDIM: denoising_unet on [uncond, cond] (only cond reads the bank), guidance, step--> latents
    latents --vae_decoder--> image

`prepare` (photo and pose: the bank, the context, the pose features) runs once per request; `denoise` is the loop,
calling `progress(step, steps)` after each step. The arithmetic is upstream's pose2vid for one frame, the same as
export/aniportrait/reference.py (PyTorch), which tests/test_aniportrait_serving.py compares it with.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from facefront.aniportrait import preprocess, scheduler

PREFIX = "aniportrait_"
LEAVES = ("vae_encoder", "vae_decoder", "image_encoder", "pose_guider", "reference_unet", "denoising_unet")
N_POSE_FEATURES = 5


class Networks(Protocol):
    """Runs one leaf (`aniportrait_<name>`): named float32 inputs -> the named outputs, in that order."""

    def run(self, leaf: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]: ...


class OrtNetworks:
    """The leaves' ONNX graphs in-process (`<repo>/<leaf>/1/model.onnx`), each checked against its
    artefact manifest before loading, sessions made on first use."""

    def __init__(self, repo: Path, threads: int = 2):
        self.repo, self.threads = Path(repo), threads
        self._sessions: dict = {}

    def session(self, leaf: str):
        if leaf not in self._sessions:
            from facefront import artifact
            from facefront.sessions import onnx_session
            version_dir = self.repo / leaf / "1"
            artifact.verify(version_dir, "model.onnx")
            self._sessions[leaf] = onnx_session(version_dir / "model.onnx", self.threads, spinning=False)
        return self._sessions[leaf]

    def output_names(self, leaf: str) -> list[str]:
        return [o.name for o in self.session(leaf).get_outputs()]

    def run(self, leaf, inputs, outputs):
        return self.session(leaf).run(outputs, {k: np.ascontiguousarray(v) for k, v in inputs.items()})


@dataclass
class Conditioning:
    """What a request computes once and every step reuses."""
    context: np.ndarray               # 2x1xD  [uncond = zeros, cond = CLIP embedding]
    bank: dict[str, np.ndarray]       # bank_<block> -> 2xLxC (the reference UNet's self-attention inputs)
    pose: dict[str, np.ndarray]       # fea_<i> -> 2xCx1xhxw
    latent_shape: tuple[int, ...]     # 1x4x1xhxw


class Pose2Image:
    def __init__(self, networks: Networks, bank_names: list[str]):
        if not bank_names:
            raise ValueError("the reference UNet declares no bank_* outputs")
        self.nets, self.bank_names = networks, list(bank_names)

    def _run(self, leaf, inputs, outputs):
        return self.nets.run(PREFIX + leaf, inputs, outputs)

    def prepare(self, ref_u8: np.ndarray, pose_u8: np.ndarray) -> Conditioning:
        ref_u8 = preprocess.u8_image(ref_u8, "reference image")
        pose_u8 = preprocess.u8_image(pose_u8, "pose image")
        if ref_u8.shape != pose_u8.shape:
            raise ValueError(f"reference image {ref_u8.shape} and pose image {pose_u8.shape} differ in size")
        h, w = ref_u8.shape[:2]
        (embeds,) = self._run("image_encoder", {"pixel_values": preprocess.clip_pixel_values(
            preprocess.clip_resized(ref_u8))}, ["image_embeds"])
        context = preprocess.cfg_context(embeds)
        (latents,) = self._run("vae_encoder", {"image": preprocess.ref_image_tensor(ref_u8)}, ["latents"])
        bank = self._run("reference_unet", {"sample": np.concatenate([latents] * 2),
                                            "timestep": np.zeros(2, np.float32),
                                            "encoder_hidden_states": context}, self.bank_names)
        fea_names = [f"fea_{i}" for i in range(N_POSE_FEATURES)]
        fea = self._run("pose_guider", {"pose": preprocess.pose_condition(pose_u8)}, fea_names)
        # one pose-guider call for both rows: a per-sample network, so batch 2 of the same image is that row twice
        return Conditioning(context=context, bank=dict(zip(self.bank_names, bank)),
                            pose={n: np.concatenate([f, f]) for n, f in zip(fea_names, fea)},
                            latent_shape=(1, 4, 1, h // 8, w // 8))

    def denoise(self, cond: Conditioning, noise: np.ndarray, steps: int, guidance: float,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """DDIM from `noise` (1x4x1xhxw; init sigma is 1): returns the final latents."""
        latents = np.asarray(noise, np.float32)
        rows = np.array([0.0, 1.0], np.float32)      # only the cond row reads the bank, as upstream
        for k, t in enumerate(scheduler.timesteps(steps)):
            (out,) = self._run("denoising_unet", {
                "sample": np.concatenate([latents, latents]), "timestep": np.full(2, t, np.float32),
                "encoder_hidden_states": cond.context, **cond.pose, **cond.bank, "reference_rows": rows},
                ["model_output"])
            latents, _ = scheduler.step(scheduler.guide(out, guidance), t, latents, steps)
            if progress is not None:
                progress(k + 1, steps)
        return latents

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """1x4x1xhxw latents -> uint8 HxWx3 (the decoder leaf returns [0, 1])."""
        (image,) = self._run("vae_decoder", {"latents": np.ascontiguousarray(latents[:, :, 0])}, ["image"])
        return (image[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)

    def generate(self, ref_u8: np.ndarray, pose_u8: np.ndarray, steps: int, guidance: float = 3.5,
                 seed: int = 0, progress: Callable[[int, int], None] | None = None,
                 max_steps: int = preprocess.MAX_STEPS) -> np.ndarray:
        """Reference photo + pose image (same size, uint8) -> the generated uint8 image. The seed gives the same
        noise as the PyTorch reference (torch.randn on a CPU generator)."""
        preprocess.check_controls(steps, guidance, max_steps)
        cond = self.prepare(ref_u8, pose_u8)
        noise = scheduler.initial_noise(seed, cond.latent_shape)
        return self.decode(self.denoise(cond, noise, steps, guidance, progress))


def in_process(repo: Path, threads: int = 2) -> Pose2Image:
    """The loop on onnxruntime over a repository's exported graphs (what the served model computes, without
    Triton): the in-process side of the speed comparison."""
    nets = OrtNetworks(repo, threads)
    names = [n for n in nets.output_names(PREFIX + "reference_unet") if n.startswith("bank_")]
    return Pose2Image(nets, names)

"""PyTorch reference for AniPortrait's pose-to-image path (upstream's pose2vid pipeline for one frame), the parity
runner, and the pieces the served loop is built from (preprocessing, scheduler, guidance).

    ref image --VAE encoder--> ref latents --reference UNet (t=0, batch [uncond, cond])--> bank (16 tensors)
    ref image --CLIP--> embedding; context = [zeros, embedding]
    pose image --pose guider--> 5 feature maps
    noise --(DDIM steps: denoising UNet on [uncond, cond] with context, pose features, bank; guidance)--> latents
    latents --VAE decoder--> image

Networks are built one at a time and freed before the next (the full-size set is 2.7 B parameters), unless a
`Pipeline` is asked to keep them.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facefront.aniportrait.preprocess import (  # the one copy, shared with the served loop
    DEFAULT_GUIDANCE,
    cfg_context,
    check_controls,
    clip_pixel_values,
    clip_resized,
    pose_condition,
    ref_image_tensor,
)
from facefront.aniportrait.preprocess import u8_image as _u8_image

from ..common import fixtures
from .config import FULL, AniPortraitConfig
from .networks import LATENT_SCALE, ImageEncoder, VaeDecoder, VaeEncoder
from .weights import build

# upstream inference_v2.yaml noise_scheduler_kwargs (the rest are diffusers' DDIMScheduler defaults)
SCHEDULER_KWARGS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                        steps_offset=1, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                        timestep_spacing="trailing")


# ---------------------------------------------------------------- preprocessing (numpy, shared with serving)

def scheduler():
    from diffusers import DDIMScheduler
    return DDIMScheduler(**SCHEDULER_KWARGS)


def guide(model_output: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on a [uncond, cond] batch: uncond + g * (cond - uncond)."""
    uncond, cond = model_output.chunk(2)
    return uncond + guidance * (cond - uncond)


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------- the pipeline

@dataclass
class Result:
    image: np.ndarray                       # uint8 HxWx3
    trace: dict[str, np.ndarray]            # every intermediate the parity chain records


class Pipeline:
    """Pose-to-image for one frame. `keep=True` keeps the networks between calls (needs ~12 GB at full size);
    otherwise each is built, used and freed in turn."""

    def __init__(self, weights_dir: Path | None = None, cfg: AniPortraitConfig = FULL, keep: bool = False):
        self.weights_dir, self.cfg, self.keep = weights_dir, cfg, keep
        self._nets: dict[str, torch.nn.Module] = {}

    def net(self, name: str) -> torch.nn.Module:
        if name not in self._nets:
            self._nets[name] = build(name, self.weights_dir, self.cfg)
        return self._nets[name]

    def release(self, *names: str) -> None:
        """Free networks after their stage (unless this pipeline keeps them)."""
        if not self.keep:
            for name in names:
                self._nets.pop(name, None)
            gc.collect()

    # stages: each builds its network on first use; callers release() it when done
    @torch.no_grad()
    def image_embeds(self, ref_u8: np.ndarray) -> dict[str, np.ndarray]:
        resized = clip_resized(ref_u8)
        pixels = clip_pixel_values(resized)
        embeds, hidden = ImageEncoder(self.net("image_encoder"))(_t(pixels))
        return {"out_tap_resized_u8": resized, "out_pixel_values": pixels, "out_image_embeds": embeds.numpy(),
                "out_tap_last_hidden_state": hidden.numpy()}

    @torch.no_grad()
    def encode(self, ref_u8: np.ndarray) -> dict[str, np.ndarray]:
        x = ref_image_tensor(ref_u8)
        mean, logvar = VaeEncoder(self.net("vae"))(_t(x))
        return {"out_ref_image_tensor": x, "out_latent_mean": mean.numpy(), "out_tap_latent_logvar": logvar.numpy(),
                "out_ref_latents": (mean * LATENT_SCALE).numpy()}

    @torch.no_grad()
    def decode(self, latents: np.ndarray) -> dict[str, np.ndarray]:
        """latents B x4xhxw or B x4xFxhxw (decoded frame by frame, as upstream)."""
        dec = VaeDecoder(self.net("vae"))
        z = _t(latents)
        if z.dim() == 5:
            sample = torch.stack([dec(z[:, :, f]) for f in range(z.shape[2])], dim=2)
        else:
            sample = dec(z)
        return {"out_decoded_sample": sample.numpy(), "out_decoded_image": (sample / 2 + 0.5).clamp(0, 1).numpy()}

    @torch.no_grad()
    def pose_features(self, pose_cond: np.ndarray) -> list[np.ndarray]:
        return [f.numpy() for f in self.net("pose_guider")(_t(pose_cond))]

    @torch.no_grad()
    def reference(self, sample: np.ndarray, timestep, context: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        unet = self.net("reference_unet")
        out, bank = unet(_t(sample), torch.as_tensor(timestep), _t(context))
        return out.numpy(), [b.numpy() for b in bank]

    def bank_names(self) -> list[str]:
        from .networks import construct
        return construct("reference_unet", self.cfg).bank_names()

    @torch.no_grad()
    def denoise(self, sample, timestep, context, pose_fea, bank, reference_rows) -> np.ndarray:
        unet = self.net("denoising_unet")
        out = unet(_t(sample), torch.as_tensor(timestep), _t(context), [_t(p) for p in pose_fea],
                   [_t(b) for b in bank], _t(np.asarray(reference_rows, np.float32)))
        return out.numpy()

    def denoise_loop(self, init_noise, context, pose_fea, bank, steps: int, guidance: float,
                     trace: dict | None = None, progress=None) -> np.ndarray:
        """DDIM from `init_noise` (1x4xFxhxw): each step runs the denoising UNet on [uncond, cond] (only the cond
        row reads the bank), applies guidance and steps the scheduler. Returns the final latents."""
        trace = {} if trace is None else trace
        sched = scheduler()
        sched.set_timesteps(steps)
        latents = _t(init_noise) * sched.init_noise_sigma
        rows = np.array([0.0, 1.0], np.float32)
        for k, t in enumerate(sched.timesteps):
            out = torch.from_numpy(self.denoise(torch.cat([latents] * 2).numpy(), t, context, pose_fea, bank, rows))
            noise_pred = guide(out, guidance)
            step = sched.step(noise_pred, t, latents, eta=0.0)
            latents = step.prev_sample
            trace.update({f"out_model_output_step{k}": out.numpy(), f"out_noise_pred_step{k}": noise_pred.numpy(),
                          f"out_pred_original_sample_step{k}": step.pred_original_sample.numpy(),
                          f"out_latents_step{k}": latents.numpy()})
            if progress:
                progress(k + 1, steps)
        trace["out_timesteps"] = sched.timesteps.numpy()
        return latents.numpy()

    def generate(self, ref_u8: np.ndarray, pose_u8: np.ndarray, seed: int = 0, steps: int = 25,
                 guidance: float = DEFAULT_GUIDANCE, init_noise: np.ndarray | None = None,
                 progress=None) -> Result:
        """Reference photo + pose image (same size, uint8 RGB / as drawn) -> generated image (uint8 HxWx3).
        `progress(step, steps)` is called after each denoising step."""
        check_controls(steps, guidance)
        ref_u8 = _u8_image(ref_u8, "reference image")
        pose_u8 = _u8_image(pose_u8, "pose image")
        if ref_u8.shape != pose_u8.shape:
            raise ValueError(f"reference image {ref_u8.shape} and pose image {pose_u8.shape} differ in size")
        h, w = ref_u8.shape[:2]
        trace: dict[str, np.ndarray] = {}
        embeds = self.image_embeds(ref_u8)["out_image_embeds"]
        self.release("image_encoder")
        ref_latents = self.encode(ref_u8)["out_ref_latents"]
        self.release("vae")
        trace.update(out_image_embeds=embeds, out_ref_latents=ref_latents)
        context = cfg_context(embeds)
        # the pose guider sees the CFG-doubled batch, as upstream (a batch-1 call differs by float rounding only)
        pose_fea = self.pose_features(np.concatenate([pose_condition(pose_u8)] * 2))
        self.release("pose_guider")
        _, bank = self.reference(np.concatenate([ref_latents] * 2), np.int64(0), context)
        self.release("reference_unet")
        if init_noise is None:
            gen = torch.Generator().manual_seed(int(seed))
            init_noise = torch.randn((1, 4, 1, h // 8, w // 8), generator=gen, dtype=torch.float32).numpy()
        latents = self.denoise_loop(init_noise, context, pose_fea, bank, steps, guidance, trace, progress)
        del bank, pose_fea
        self.release("denoising_unet")
        dec = self.decode(latents)
        self.release("vae")
        trace["out_tap_decoded_sample"] = dec["out_decoded_sample"]
        trace["out_video"] = dec["out_decoded_image"]
        image = (dec["out_decoded_image"][0, :, 0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        return Result(image, trace)


def generate(ref_u8: np.ndarray, pose_u8: np.ndarray, seed: int = 0, steps: int = 25,
             guidance: float = DEFAULT_GUIDANCE, weights_dir: Path | None = None, cfg: AniPortraitConfig = FULL,
             progress=None) -> np.ndarray:
    """One pose-to-image call (networks built and freed in turn); returns uint8 HxWx3."""
    return Pipeline(weights_dir, cfg).generate(ref_u8, pose_u8, seed, steps, guidance, progress=progress).image


# ---------------------------------------------------------------- parity

def run_fixtures(fixture_dir: Path, weights_dir: Path | None = None,
                 cfg: AniPortraitConfig = FULL) -> dict[str, dict[str, np.ndarray]]:
    """Every output of every fixture file present in `fixture_dir`, from the files' own in_* arrays. Each network
    is built once, serves every file that needs it, and is freed before the next one is built."""
    fixture_dir = Path(fixture_dir)
    files = {p.stem: fixtures.load(p) for p in sorted(fixture_dir.glob("*.npz"))}
    pipe = Pipeline(weights_dir, cfg)
    drop = pipe.release
    out: dict[str, dict[str, np.ndarray]] = {}

    if "image_encoder" in files:
        out["image_encoder"] = pipe.image_embeds(files["image_encoder"]["in_ref_image_u8"])
    if "chain" in files:
        out["chain"] = {"out_image_embeds": pipe.image_embeds(files["chain"]["in_ref_image_u8"])["out_image_embeds"]}
    drop("image_encoder")
    if "vae" in files:
        refs = files["vae"]
        out["vae"] = {**pipe.encode(refs["in_ref_image_u8"]), **pipe.decode(refs["in_decode_latents"])}
    if "chain" in files:
        out["chain"]["out_ref_latents"] = pipe.encode(files["chain"]["in_ref_image_u8"])["out_ref_latents"]
    drop("vae")
    chain_pose = None
    if "pose_guider" in files:
        fea = pipe.pose_features(files["pose_guider"]["in_pose_cond"])
        out["pose_guider"] = {f"out_fea_{i}": f for i, f in enumerate(fea)}
    if "chain" in files:
        chain_pose = pipe.pose_features(np.concatenate([pose_condition(files["chain"]["in_pose_u8"])] * 2))
    drop("pose_guider")
    names = pipe.bank_names()
    chain_bank = None
    if "reference_unet" in files:
        refs = files["reference_unet"]
        sample, bank = pipe.reference(refs["in_sample"], refs["in_timestep"], refs["in_encoder_hidden_states"])
        out["reference_unet"] = {"out_sample": sample, **{f"out_bank_{n}": b for n, b in zip(names, bank)}}
    if "chain" in files:
        c = out["chain"]
        context = cfg_context(c["out_image_embeds"])
        _, chain_bank = pipe.reference(np.concatenate([c["out_ref_latents"]] * 2), np.int64(0), context)
    drop("reference_unet")
    if "denoising_unet" in files:
        refs = files["denoising_unet"]
        out["denoising_unet"] = {"out_sample": pipe.denoise(
            refs["in_sample"], refs["in_timestep"], refs["in_encoder_hidden_states"],
            [refs[f"in_pose_fea_{i}"] for i in range(5)], [refs[f"in_bank_{n}"] for n in names], [0.0, 1.0])}
    if "chain" in files:
        refs, c = files["chain"], out["chain"]
        context = cfg_context(c["out_image_embeds"])
        latents = pipe.denoise_loop(refs["in_init_noise"], context, chain_pose, chain_bank, 2, DEFAULT_GUIDANCE, c)
        chain_bank = chain_pose = None
        drop("denoising_unet")
        dec = pipe.decode(latents)
        c["out_tap_decoded_sample"], c["out_video"] = dec["out_decoded_sample"], dec["out_decoded_image"]
    drop("denoising_unet")
    drop("vae")
    return out

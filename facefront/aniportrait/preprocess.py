"""AniPortrait's input preprocessing and request controls, in numpy (shared by the served loop and the PyTorch
reference in export/aniportrait, which imports them from here).

The arithmetic follows upstream's pose2vid pipeline: diffusers' VaeImageProcessor for the reference photo,
CLIPImageProcessor defaults for the image encoder, and the pose frames passed as uint8 (see `pose_condition`).
"""
from __future__ import annotations

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224
DEFAULT_GUIDANCE = 3.5   # upstream's cfg
MAX_STEPS = 1000         # the scheduler's training steps: trailing spacing needs steps <= 1000


def u8_image(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{what} must be a uint8 HxWx3 array, got {a.dtype} {a.shape}")
    if a.shape[0] % 8 or a.shape[1] % 8:
        raise ValueError(f"{what} sides must be multiples of 8 (the VAE downsamples by 8), got {a.shape[:2]}")
    return a


def ref_image_tensor(u8: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> 1x3xHxW in [-1, 1] (VaeImageProcessor on a PIL image: /255 then 2x-1)."""
    x = u8_image(u8, "reference image").astype(np.float32) / 255.0
    return (2.0 * x - 1.0).transpose(2, 0, 1)[None].copy()


def clip_resized(u8: np.ndarray, size: int = CLIP_SIZE) -> np.ndarray:
    """PIL bicubic resize to size x size (upstream passes the PIL image through `resize((224, 224))`)."""
    from PIL import Image
    return np.asarray(Image.fromarray(np.asarray(u8)).resize((size, size), Image.BICUBIC))


def clip_pixel_values(resized_u8: np.ndarray) -> np.ndarray:
    """CLIPImageProcessor defaults on a 224x224 uint8 image: rescale 1/255 (float64, then float32), normalise."""
    x = (resized_u8 * (1 / 255)).astype(np.float32)
    x = (x - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return x.transpose(2, 0, 1)[None].copy()


def pose_condition(pose_u8: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 pose image -> 1x3x1xHxW = 2*u8 - 1 (values -1..509).

    Upstream hands the pose frames to VaeImageProcessor as uint8 arrays, which diffusers 0.24 does not divide by
    255 (training used [-1, 1]); the released weights were run this way, so we keep it. The channel order is the
    array's own (upstream's frames come from cv2 in BGR order, and pose_image draws them so)."""
    x = u8_image(pose_u8, "pose image").astype(np.float32)
    return (2.0 * x - 1.0).transpose(2, 0, 1)[None, :, None].copy()


def cfg_context(embeds: np.ndarray) -> np.ndarray:
    """CLIP embedding 1xD -> cross-attention context 2x1xD, rows [uncond = zeros, cond]."""
    return np.concatenate([np.zeros_like(embeds), embeds])[:, None]


def check_controls(steps, guidance, max_steps: int = MAX_STEPS) -> None:
    """ValueError with a one-line reason for a step count or guidance the loop cannot run."""
    if not isinstance(steps, (int, np.integer)) or not 1 <= steps <= max_steps:
        raise ValueError(f"steps must be an integer in 1..{max_steps}, got {steps!r}")
    if not np.isfinite(guidance) or guidance < 0:
        raise ValueError(f"guidance must be a finite number >= 0, got {guidance!r}")

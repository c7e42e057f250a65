"""DDIM (Song et al., ICLR 2021, eq. 12 with eta = 0) as AniPortrait configures it, in numpy float32.

Upstream (inference_v2.yaml) uses diffusers' DDIMScheduler with linear betas 0.00085..0.012 over 1000 steps,
v-prediction, zero terminal SNR (Lin et al., WACV 2024, algorithm 1) and "trailing" timestep spacing. This module
is that arithmetic without torch, so the served loop needs no PyTorch; tests/test_aniportrait_serving.py checks it
against diffusers step by step.

`initial_noise(seed, shape)` is torch.randn(shape, generator=torch.Generator().manual_seed(seed)) reproduced with
numpy's MT19937 (same engine, same 24-bit floats, same Box-Muller in blocks of 16), so a seed gives the same image
served as in the PyTorch reference pipeline.
"""
from __future__ import annotations

import numpy as np

TRAIN_STEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012
MAX_SEED = 2**32 - 1   # torch's CPU generator seeds its MT19937 with 32 bits


def _alphas_cumprod() -> np.ndarray:
    """Cumulative alpha products after the zero-terminal-SNR rescale (float32, as diffusers keeps them)."""
    betas = np.linspace(BETA_START, BETA_END, TRAIN_STEPS, dtype=np.float32)
    alphas = (1.0 - betas).astype(np.float32)
    sqrt_bar = np.sqrt(np.cumprod(alphas, dtype=np.float32))
    first, last = sqrt_bar[0].copy(), sqrt_bar[-1].copy()
    # shift so the last step has SNR 0, scale so the first keeps its value (Lin et al., algorithm 1)
    sqrt_bar = (sqrt_bar - last) * (first / (first - last))
    bar = sqrt_bar ** 2
    alphas = np.concatenate([bar[:1], bar[1:] / bar[:-1]]).astype(np.float32)
    betas = np.float32(1.0) - alphas   # diffusers stores betas and recomputes alphas from them: same rounding
    return np.cumprod(np.float32(1.0) - betas, dtype=np.float32)


ALPHAS_CUMPROD = _alphas_cumprod()


def timesteps(steps: int) -> np.ndarray:
    """The trailing-spaced timesteps of a `steps`-step run, from 999 down (e.g. 2 steps: 999, 499)."""
    if not 1 <= int(steps) <= TRAIN_STEPS:
        raise ValueError(f"steps must be an integer in 1..{TRAIN_STEPS}, got {steps!r}")
    return (np.round(np.arange(TRAIN_STEPS, 0, -TRAIN_STEPS / steps)).astype(np.int64) - 1)


def step(model_output: np.ndarray, t: int, sample: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One deterministic DDIM step from timestep `t`: (previous sample, predicted x0). The previous timestep is
    t - 1000 // steps, as diffusers computes it (not the next entry of `timesteps`), and alpha = 1 past 0."""
    t = int(t)
    prev = t - TRAIN_STEPS // int(steps)
    a_t = ALPHAS_CUMPROD[t]
    a_prev = ALPHAS_CUMPROD[prev] if prev >= 0 else np.float32(1.0)
    b_t = np.float32(1.0) - a_t
    v = np.asarray(model_output, np.float32)
    x = np.asarray(sample, np.float32)
    # v-prediction (Salimans & Ho, ICLR 2022): x0 = sqrt(a) x - sqrt(1-a) v, eps = sqrt(a) v + sqrt(1-a) x
    x0 = np.sqrt(a_t) * x - np.sqrt(b_t) * v
    eps = np.sqrt(a_t) * v + np.sqrt(b_t) * x
    prev_sample = np.sqrt(a_prev) * x0 + np.sqrt(np.float32(1.0) - a_prev) * eps
    return prev_sample.astype(np.float32), x0.astype(np.float32)


def guide(model_output: np.ndarray, guidance: float) -> np.ndarray:
    """Classifier-free guidance (Ho & Salimans, 2022) on a [uncond, cond] batch: uncond + g (cond - uncond)."""
    uncond, cond = model_output[:1], model_output[1:2]
    return (uncond + np.float32(guidance) * (cond - uncond)).astype(np.float32)


def _uniform24(rs: np.random.RandomState, n: int) -> np.ndarray:
    # torch's uniform float: the low 24 bits of one 32-bit MT19937 draw, times 2^-24
    raw = rs.randint(0, 2**32, size=n, dtype=np.uint32)
    return (raw & np.uint32((1 << 24) - 1)).astype(np.float32) * np.float32(2.0 ** -24)


def _box_muller16(u: np.ndarray) -> np.ndarray:
    # torch's normal_fill_16: pairs (u[j], u[j + 8]) -> (r cos, r sin) in place of (j, j + 8)
    r = np.sqrt(np.float32(-2.0) * np.log(np.float32(1.0) - u[:8]))
    theta = np.float32(2.0 * np.pi) * u[8:16]
    return np.concatenate([r * np.cos(theta), r * np.sin(theta)]).astype(np.float32)


def initial_noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """float32 standard normal noise equal (to float rounding) to torch.randn with a CPU generator seeded `seed`
    (tensors of 16 or more elements, the path torch takes for latents)."""
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in 0..{MAX_SEED}, got {seed}")
    n = int(np.prod(shape))
    if n < 16:
        raise ValueError(f"noise of {n} elements: torch draws fewer than 16 differently; latents are larger")
    rs = np.random.RandomState(seed)   # the legacy seeding is MT19937's init_genrand, as torch's
    u = _uniform24(rs, n)
    out = np.empty(n, np.float32)
    for i in range(0, n - 15, 16):
        out[i:i + 16] = _box_muller16(u[i:i + 16])
    if n % 16:   # torch redraws 16 fresh uniforms for the tail and overwrites the last 16 values
        out[n - 16:] = _box_muller16(_uniform24(rs, 16))
    return out.reshape(shape)

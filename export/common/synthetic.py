"""Deterministic synthetic weights (weight rule v2 of ../shared/parity/README.md), filled from a module's keys.

Each state_dict entry is drawn from a generator seeded by crc32 of its key, so a tensor's value depends only on
its name and shape: every network of every family gets the same weights the parity fixtures were made with.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import nn


def _rng(seed_key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(seed_key.encode("utf-8")))


def rule_v1(seed_key: str, shape: tuple[int, ...]) -> np.ndarray:
    """float64 value of one entry under rule v1 (no spectral-norm handling)."""
    rng = _rng(seed_key)
    if seed_key.endswith("num_batches_tracked"):
        return np.zeros(shape)
    if seed_key.endswith("running_mean"):
        return 0.1 * rng.standard_normal(shape)
    if seed_key.endswith("running_var"):
        return 1 + 0.1 * np.abs(rng.standard_normal(shape))
    if len(shape) >= 2:
        return rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    if len(shape) == 1 and seed_key.endswith("weight"):
        return 1 + 0.1 * rng.standard_normal(shape)
    return 0.1 * rng.standard_normal(shape)


def _spectral_norm_dims(module: nn.Module) -> dict[str, int]:
    """{'<path>.weight': dim} for every layer wrapped by torch.nn.utils.spectral_norm."""
    dims = {}
    for path, sub in module.named_modules():
        for hook in sub._forward_pre_hooks.values():
            if type(hook).__name__ == "SpectralNorm":
                dims[(path + "." if path else "") + hook.name] = hook.dim
    return dims


def synthetic_state_dict(module: nn.Module, seed_prefix: str = "") -> dict[str, torch.Tensor]:
    """The rule-v2 state_dict for `module`, in its own key order and dtypes."""
    sd = module.state_dict()
    sn = _spectral_norm_dims(module)
    out: dict[str, torch.Tensor] = {}
    for key, t in sd.items():
        shape = tuple(t.shape)
        if key.endswith("_u") or key.endswith("_v") or key.endswith("_orig"):
            base = key.rsplit("_", 1)[0]
            if base in sn:
                d = sn[base]
                W = rule_v1(seed_prefix + base + "_orig", tuple(sd[base + "_orig"].shape))
                v0 = rule_v1(seed_prefix + base + "_v", tuple(sd[base + "_v"].shape))
                v = v0 / np.linalg.norm(v0)
                Wm = np.moveaxis(W, d, 0).reshape(W.shape[d], -1)
                u = Wm @ v
                u = u / np.linalg.norm(u)
                val = {"_orig": W, "_v": v, "_u": u}[key[len(base):]]
                out[key] = torch.from_numpy(np.ascontiguousarray(val)).to(t.dtype)
                continue
        val = rule_v1(seed_prefix + key, shape)
        out[key] = torch.from_numpy(np.ascontiguousarray(val).reshape(shape)).to(t.dtype)
    return out


def fill_(module: nn.Module, seed_prefix: str = "") -> nn.Module:
    """Load rule-v2 weights into `module` (strict) and put it in eval mode."""
    module.load_state_dict(synthetic_state_dict(module, seed_prefix), strict=True)
    return module.eval()

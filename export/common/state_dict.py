"""Checking a loaded checkpoint against the state_dict a network expects: one place for every family's weights
loader, so every bad file fails the same way, with one line that names the file, the key and what was wrong."""
from __future__ import annotations

from .download import WeightsError


def few(keys) -> str:
    """Up to three sorted keys, and how many more."""
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def match(sd: dict, want: dict, where: str, what: str) -> dict:
    """`sd` (a dict of tensors) against `want` ({key: (shape, dtype)}): the same keys, shapes and dtypes (floating
    tensors of another float dtype are cast, e.g. a half-precision copy), all finite. Returns the checked dict;
    raises WeightsError("<where>: ... <what> ...") otherwise."""
    import torch
    sd = dict(sd)  # drops _metadata
    missing, unexpected = want.keys() - sd.keys(), sd.keys() - want.keys()
    if missing or unexpected:
        parts = ([f"{len(missing)} missing: {few(missing)}"] if missing else []) + \
                ([f"{len(unexpected)} unexpected: {few(unexpected)}"] if unexpected else [])
        raise WeightsError(f"{where}: keys do not match {what} ({'; '.join(parts)})")
    for k, (shape, dtype) in want.items():
        t = sd[k]
        if tuple(t.shape) != tuple(shape):
            raise WeightsError(f"{where}: {k} has shape {tuple(t.shape)}, {what} needs {tuple(shape)}")
        if t.dtype != dtype:
            if not (t.is_floating_point() and dtype.is_floating_point):
                raise WeightsError(f"{where}: {k} has dtype {t.dtype}, {what} needs {dtype}")
            sd[k] = t.to(dtype)
        if sd[k].is_floating_point() and not torch.isfinite(sd[k]).all():
            raise WeightsError(f"{where}: {k} contains NaN or Inf")
    return sd

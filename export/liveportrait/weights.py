"""Released LivePortrait weights: where they live, how they are checked, how they load into our networks.

Layout (as published in the authors' Hugging Face repository, under `liveportrait/`):

    <weights dir>/base_models/appearance_feature_extractor.pth      F, plain state_dict
    <weights dir>/base_models/motion_extractor.pth                  M, plain state_dict (detector.*)
    <weights dir>/base_models/warping_module.pth                    W, plain state_dict
    <weights dir>/base_models/spade_generator.pth                   G, plain state_dict with spectral-norm u/v/orig
    <weights dir>/retargeting_models/stitching_retargeting_module.pth   S, dict of three sub-dicts, 'module.' prefixes

Every file is read with `torch.load(weights_only=True)` (no pickled code runs) and must match our modules' keys and
shapes exactly; any problem is a one-line WeightsError.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facefront.artifact import sha256_file

from ..common.download import WeightsError
from .stitching import MLPS

FILES = {
    "F": "base_models/appearance_feature_extractor.pth",
    "M": "base_models/motion_extractor.pth",
    "W": "base_models/warping_module.pth",
    "G": "base_models/spade_generator.pth",
    "S": "retargeting_models/stitching_retargeting_module.pth",
}
# sha256 of each released file. The publisher does not state them anywhere we could read; None = not pinned yet, so
# a file is accepted on exact key/shape agreement and its hash is reported (pin it here once fetched on a connected
# machine).
SHA256: dict[str, str | None] = {net: None for net in FILES}


def resolve(weights_dir: Path) -> Path:
    """The directory holding base_models/ and retargeting_models/ (accepts it or its parent `liveportrait/`)."""
    weights_dir = Path(weights_dir)
    for d in (weights_dir, weights_dir / "liveportrait"):
        if (d / "base_models").is_dir():
            return d
    raise WeightsError(f"LivePortrait weights not found under {weights_dir} (expected base_models/ and "
                       f"retargeting_models/; `python -m export download liveportrait`)")


def _load(path: Path, verify_hash: bool = True, net: str | None = None) -> dict:
    if not path.is_file():
        raise WeightsError(f"LivePortrait weights file missing: {path}")
    want = SHA256.get(net) if net else None
    if verify_hash and want and sha256_file(path) != want:
        raise WeightsError(f"{path}: sha256 does not match the pinned value (corrupted or a different release)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # refused global, truncated file, not a torch file
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"cannot load {path}: {msg}") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


def _check(path: Path, sd: dict, module: nn.Module) -> dict[str, torch.Tensor]:
    expected = module.state_dict()
    missing, extra = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
    if missing or extra:
        raise WeightsError(f"{path}: keys do not match (missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                           f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''})")
    for k, v in expected.items():
        got = sd[k]
        if not isinstance(got, torch.Tensor):
            raise WeightsError(f"{path}: {k} is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != tuple(v.shape) and not (v.dim() == 0 and got.numel() == 1):
            raise WeightsError(f"{path}: {k} has shape {tuple(got.shape)}, expected {tuple(v.shape)}")
    return sd


def state_dicts(net: str, weights_dir: Path, module: nn.Module) -> dict[str, torch.Tensor]:
    """The checked state_dict for `module` (network `net`) from the released file; S keys are '<mlp>.<key>'."""
    path = resolve(weights_dir) / FILES[net]
    raw = _load(path, net=net)
    if net != "S":
        return _check(path, {k.removeprefix("module."): v for k, v in raw.items()}, module)
    out = {}
    for name, (subdict, *_rest) in MLPS.items():
        sub = raw.get(subdict)
        if not isinstance(sub, dict):
            raise WeightsError(f"{path}: no '{subdict}' sub-dict (has {sorted(raw)[:5]})")
        clean = {k.replace("module.", "", 1): v for k, v in sub.items()}
        out.update({f"{name}.{k}": v for k, v in _check(path, clean, getattr(module, name)).items()})
    return out


def load_into(net: str, module: nn.Module, weights_dir: Path) -> nn.Module:
    module.load_state_dict(state_dicts(net, weights_dir, module), strict=True)
    return module

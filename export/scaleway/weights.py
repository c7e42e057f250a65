"""Real weights for the scaleway generator: the released `generator_v0.pt` is a whole pickled `network.G` module.

We never import upstream code and never run pickled code we did not expect: torch's weights-only unpickler is
given an explicit allowlist that maps `network.G` and the few torch.nn classes the file names to our own classes;
any other global in the pickle is refused. What we keep is a plain state_dict with the 68 `main.*` keys.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from torch import nn

from ..common.download import WeightsError, fetch
from .network import Generator

FILENAME = "generator_v0.pt"
# Public host of the released file (the authors' repository on GitHub).
URL = "https://github.com/scaleway/frontalization/raw/master/pretrained/generator_v0.pt"
# sha256 of the released file is not stated publicly; it is pinned once a connected machine has fetched it.
SHA256: str | None = None


class _PickledG(Generator):
    """Stand-in for upstream `network.G` while unpickling: only its state (parameters, buffers) is used."""

    def __setstate__(self, state):
        nn.Module.__setstate__(self, state)


class _LegacyBackend:
    """torch<=1.0 modules pickled a `_backend` object; it carries no data."""

    def __setstate__(self, state):
        pass


def _allowlist() -> list:
    allowed = [nn.Sequential, nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Tanh, set]
    named = [(_PickledG, "network.G"), (_LegacyBackend, "torch.nn.backends.thnn.THNNFunctionBackend")]
    return allowed + named


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """State dict from a whole-module pickle (upstream's format) or a plain state_dict file."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise WeightsError(f"scaleway weights not found: {path} (expected {FILENAME}; `python -m export download scaleway`)")
    # Legacy (pre-1.6) files reference the module name `network` even for allowlisted globals; give it an empty
    # module so nothing upstream is imported, then remove it again.
    had = "network" in sys.modules
    if not had:
        sys.modules["network"] = types.ModuleType("network")
    try:
        with torch.serialization.safe_globals(_allowlist()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for a refused global, RuntimeError/EOFError for a damaged file
        msg = str(e).strip().splitlines()
        first = next((line for line in msg if "GLOBAL" in line or "global" in line),
                     msg[0] if msg else type(e).__name__)
        raise WeightsError(f"refusing to load {path}: {first.strip()}") from None
    finally:
        if not had:
            sys.modules.pop("network", None)
    sd = obj.state_dict() if isinstance(obj, nn.Module) else obj
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: expected a pickled network.G module or a state_dict, got {type(obj).__name__}")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    expected = Generator().state_dict()
    missing, extra = set(expected) - set(sd), set(sd) - set(expected)
    if missing or extra:
        raise WeightsError(f"{path}: not a scaleway generator (missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise WeightsError(f"{path}: {k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
    return sd


def download(dest_dir: Path) -> Path:
    return fetch(URL, Path(dest_dir) / FILENAME, SHA256)

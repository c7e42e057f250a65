"""What a model family folder in `export/` provides, and how the CLI finds them.

Each `export/<name>/__init__.py` defines `FAMILY = Family(...)`. Adding a model adds a folder; nothing else
changes, because `families()` discovers the folders.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
WEIGHTS_ROOT = REPO_ROOT / "weights"


@dataclass
class Family:
    name: str
    summary: str
    # fixture dir -> {net: {output name: array}}; reads the in_* arrays itself and runs our networks
    run_fixtures: Callable[[Path], dict[str, dict[str, np.ndarray]]] | None = None
    # (model_repository, weights path or None, options) -> list of artefacts written
    export: Callable[..., list[Path]] | None = None
    # (dest dir) -> path of verified weights; raises WeightsError with a one-line message
    download: Callable[[Path], Path] | None = None
    pose_control: bool = False
    default_weights: Path | None = None
    notes: list[str] = field(default_factory=list)


def families() -> dict[str, Family]:
    import export
    found = {}
    for info in pkgutil.iter_modules(export.__path__):
        if not info.ispkg or info.name == "common":
            continue
        mod = importlib.import_module(f"export.{info.name}")
        fam = getattr(mod, "FAMILY", None)
        if isinstance(fam, Family):
            found[fam.name] = fam
    return dict(sorted(found.items()))


def get(name: str) -> Family:
    fams = families()
    if name not in fams:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(fams) or 'none'}")
    return fams[name]

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
    # model_repository folders of this family's network leaves (TensorRT on GPU, onnxruntime on CPU)
    networks: list[str] = field(default_factory=list)
    # what `--weights` / weights/<name>/ must hold: a file name, or a folder layout description
    weights_file: str = ""
    # shown by `export list` instead of "synthetic" for families whose weights ship with a package
    weights_note: str = ""

    def default_weights(self) -> Path | None:
        """weights/<name>/ (or the file in it) when the user put real weights there, else None."""
        d = WEIGHTS_ROOT / self.name
        if self.weights_file and (d / self.weights_file).exists():
            return d / self.weights_file if (d / self.weights_file).is_file() else d
        return None


BROKEN: dict[str, str] = {}  # family folder -> why it failed to import (shown by `list`)


def _load(pkg: str) -> Family | None:
    try:
        mod = importlib.import_module(f"export.{pkg}")
    except Exception as e:  # one broken folder must not hide the others
        BROKEN[pkg] = f"{type(e).__name__}: {e}"
        return None
    fam = getattr(mod, "FAMILY", None)
    return fam if isinstance(fam, Family) else None


def families() -> dict[str, Family]:
    import export
    found = {}
    for info in pkgutil.iter_modules(export.__path__):
        if info.ispkg and info.name != "common":
            fam = _load(info.name)
            if fam is not None:
                found[fam.name] = fam
    return dict(sorted(found.items()))


def get(name: str) -> Family:
    fam = _load(name) if (Path(__file__).parents[1] / name / "__init__.py").is_file() else None
    if fam is None:
        why = BROKEN.get(name)
        if why:
            raise SystemExit(f"model {name!r} failed to import: {why}")
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(families()) or 'none'}")
    return fam

"""The build half of the family registry: what a model family folder in `export/` declares, and the one function
that finds them.

Each `export/<name>/__init__.py` defines `FAMILY = Family(...)`: its networks (repository leaf folders), export,
parity and download steps, weights layout, the in-process reference the benchmarks compare against, its install
recipe and whether the demo runs it with synthetic weights. The serving half (pose, named controls, crop rule)
is the family's repository folders' configs, read by `facefront.repository` (no torch, no build side).
Export, bench and the tests iterate `families()`; none of them names a family. Adding a model adds a folder
here and its folders in model_repository/; nothing else changes.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facefront.repository import MODEL_REPOSITORY, REPO_ROOT, WEIGHTS_ROOT  # noqa: F401  (one place defines them)


@dataclass(frozen=True)
class InProcess:
    """The family's served network run in-process: the eager module its ONNX graph was exported from (same input
    and output: uint8 B x S x S x 3 face crop in, uint8 out) and the repository leaf that holds that graph."""
    build: Callable[[], Any]  # () -> eager torch module (imports torch when called, not before)
    network: str              # model_repository/<network>/1/model.onnx
    input_size: int           # S

    @property
    def onnx(self) -> Path:
        return MODEL_REPOSITORY / self.network / "1" / "model.onnx"


@dataclass(frozen=True)
class Install:
    """How a user gets from a clone to a first output, for the report's install-cost table."""
    extra_packages: tuple[str, ...] = ()  # beyond the serving base (requirements.txt)
    params_m: float | None = None         # millions of parameters (weights download = params x 4 bytes, stated)
    weights: str = ""                     # where the weights come from
    commands: tuple[str, ...] = ()        # clone -> first output
    upstream: dict = field(default_factory=dict)  # {"repo", "source", "states"}: what upstream says it needs


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
    # model_repository folders of this family's network leaves (TensorRT on GPU, onnxruntime on CPU)
    networks: list[str] = field(default_factory=list)
    # what `--weights` / weights/<name>/ must hold: a file name, or a folder layout description
    weights_file: str = ""
    # shown by `export list` instead of "synthetic" for families whose weights ship with a package
    weights_note: str = ""
    # "frontalize": served as <name>_frontalize and compared in the report; "service": leaves for another model
    kind: str = "frontalize"
    # the in-process reference pipeline (bench speed and fidelity); None: the family has its own tools
    reference: InProcess | None = None
    # whole photo -> output in-process, for end-to-end fidelity when there is no single network (mesh3d)
    end_to_end: Callable[[np.ndarray], np.ndarray] | None = None
    install: Install = field(default_factory=Install)
    # the demo runs it even with synthetic weights (cheap enough to show the chain); else only with real weights
    demo_synthetic: bool = False

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


def families(kind: str | None = None) -> dict[str, Family]:
    """Every family folder in export/, by name (only those of `kind` when given)."""
    import export
    found = {}
    for info in pkgutil.iter_modules(export.__path__):
        if info.ispkg and info.name != "common":
            fam = _load(info.name)
            if fam is not None and (kind is None or fam.kind == kind):
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

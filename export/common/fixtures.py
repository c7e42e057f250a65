"""Read parity fixtures (full arrays and the __idx/__sub/__shape/__stats subsample form) and compare outputs.

A fixture directory holds `<net>.npz` files; its manifest is `manifest.json` in the directory or its parent.
Tolerances come from the manifest's `tolerance.suggested["<net>/<output>"]`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Subsample:
    idx: np.ndarray
    sub: np.ndarray
    shape: tuple[int, ...]
    stats: np.ndarray  # mean, std, sum, min, max, sum(abs) of the full tensor

    @property
    def absmax(self) -> float:
        return float(max(abs(self.stats[3]), abs(self.stats[4])))


def load(path: Path) -> dict[str, np.ndarray | Subsample]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    out: dict = {}
    parts: dict[str, dict] = {}
    for k, v in arrays.items():
        if "__" in k:
            base, part = k.split("__", 1)
            parts.setdefault(base, {})[part] = v
        else:
            out[k] = v
    for base, p in parts.items():
        out[base] = Subsample(p["idx"].astype(np.int64), p["sub"], tuple(int(s) for s in p["shape"]), p["stats"])
    return out


def find_manifest(fixture_dir: Path) -> dict:
    for d in (fixture_dir, fixture_dir.parent):
        if (d / "manifest.json").is_file():
            return json.loads((d / "manifest.json").read_text())
    raise FileNotFoundError(f"no manifest.json in {fixture_dir} or its parent")


def _diff(cand: np.ndarray, ref, mask: np.ndarray | None = None) -> float:
    cand = np.asarray(cand, dtype=np.float64)
    if isinstance(ref, Subsample):
        if tuple(cand.shape) != ref.shape:
            raise ValueError(f"shape {tuple(cand.shape)} != reference {ref.shape}")
        d = np.abs(cand.reshape(-1)[ref.idx] - ref.sub.astype(np.float64))
        if mask is not None:
            d = d[mask.reshape(-1)[ref.idx]]
        err = float(d.max()) if d.size else 0.0
        if mask is None:  # the stats of the full tensor catch errors outside the sampled indices
            err = max(err, abs(cand.mean() - ref.stats[0]), abs(cand.std() - ref.stats[1]))
        return err
    r = np.asarray(ref, dtype=np.float64)
    if cand.shape != r.shape:
        raise ValueError(f"shape {cand.shape} != reference {r.shape}")
    d = np.abs(cand - r)
    if mask is not None:
        d = d[mask]
    return float(d.max()) if d.size else 0.0


@dataclass
class Check:
    name: str          # "<net>/<output>"
    ok: bool
    error: float
    tolerance: float
    kind: str          # atol | rel_to_max | masked_by_logits


def check(name: str, cand: np.ndarray, refs: dict, rule: dict) -> Check:
    """Compare one output with the rule from the manifest (`refs` is the loaded fixture file)."""
    out = name.split("/", 1)[1]
    ref = refs[out]
    kind = rule["kind"]
    if kind == "atol":
        err, tol = _diff(cand, ref), rule["atol"]
    elif kind == "rel_to_max":
        absmax = ref.absmax if isinstance(ref, Subsample) else float(np.abs(ref).max())
        err, tol = _diff(cand, ref) / max(absmax, 1e-30), rule["rtol_to_max"]
    elif kind == "masked_by_logits":
        logits = np.asarray(refs[rule["logits"]], dtype=np.float64)
        keep = np.abs(logits) >= rule["band_rel"] * np.abs(logits).max()
        err, tol = _diff(cand, ref, mask=keep), rule["atol"]
    else:
        raise ValueError(f"unknown tolerance kind {kind!r} for {name}")
    return Check(name, bool(err <= tol), err, tol, kind)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))

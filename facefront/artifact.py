"""Artefact manifests: what an exported file was made from, so a stale or corrupt artefact is refused at load.

`<version dir>/manifest.json` holds one entry per artefact (`model.onnx`, `model.plan`): its sha256 and size, the
source weights ("synthetic" or a path) and their sha256, the opset, export time and tool versions; an engine also
records the sha256 of the ONNX file it was built from. `verify()` is what the serving stages call before loading.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = 1


class ArtifactError(RuntimeError):
    """An artefact is missing, corrupt, or does not match its manifest."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "onnx", "onnxruntime", "numpy", "tensorrt"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # not installed here (tensorrt on CPU machines)
            pass
    return out


def read(version_dir: Path) -> dict:
    path = Path(version_dir) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: missing artefact manifest; run `make export`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: unreadable manifest ({e}); run `make export`") from None
    if data.get("format") != FORMAT:
        raise ArtifactError(f"{path}: manifest format {data.get('format')} != {FORMAT}; run `make export`")
    return data


def write(artifact: Path, *, model: str, network: str, weights: str, weights_sha256: str | None,
          opset: int | None = None, extra: dict | None = None) -> Path:
    """Record `artifact` in its folder's manifest. `weights` is "synthetic" or the source path.
    Writing the ONNX entry drops entries of artefacts built from an older ONNX (they are stale)."""
    artifact = Path(artifact)
    path = artifact.parent / MANIFEST
    try:
        data = read(artifact.parent)
    except ArtifactError:
        data = {"format": FORMAT, "artifacts": {}}
    entry = {
        "model": model,
        "network": network,
        "sha256": sha256_file(artifact),
        "bytes": artifact.stat().st_size,
        "weights": weights,
        "weights_sha256": weights_sha256,
        "synthetic_weights": weights == "synthetic",
        "opset": opset,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tools": tool_versions(),
        **(extra or {}),
    }
    if artifact.suffix == ".onnx":
        data["artifacts"] = {k: v for k, v in data["artifacts"].items()
                             if v.get("source_onnx_sha256") in (None, entry["sha256"])}
    data["artifacts"][artifact.name] = entry
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def annotate(version_dir: Path, name: str, **fields) -> None:
    """Add fields to the manifest entry of `name` (e.g. the export's source fingerprint), atomically."""
    path = Path(version_dir) / MANIFEST
    data = read(version_dir)
    if name not in data["artifacts"]:
        raise ArtifactError(f"{Path(version_dir) / name}: not recorded in {path}")
    data["artifacts"][name].update(fields)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def verify(version_dir: Path, name: str) -> dict:
    """Check `version_dir/name` against its manifest entry; return the entry or raise ArtifactError."""
    version_dir = Path(version_dir)
    entries = read(version_dir)["artifacts"]
    path = version_dir / name
    if name not in entries:
        raise ArtifactError(f"{path}: not recorded in {version_dir / MANIFEST}; run `make export`")
    e = entries[name]
    if not path.is_file():
        raise ArtifactError(f"{path}: artefact missing; run `make export`")
    if path.stat().st_size != e["bytes"] or sha256_file(path) != e["sha256"]:
        raise ArtifactError(f"{path}: sha256 does not match its manifest (stale or corrupt); run `make export`")
    src = e.get("source_onnx_sha256")
    if src is not None:
        onnx = entries.get("model.onnx")
        if onnx is None or onnx["sha256"] != src:
            raise ArtifactError(f"{path}: built from a different model.onnx (stale engine); rebuild with `make trt`")
    return e

"""Export a torch module to ONNX with a dynamic batch axis, and check it against PyTorch with onnxruntime."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch

DEFAULT_OPSET = 17


def export(module: torch.nn.Module, example: Sequence[torch.Tensor], path: Path, input_names: Sequence[str],
           output_names: Sequence[str], opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Write `path` (and nothing else on failure). Batch axis 0 of every input and output is dynamic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    axes = {n: {0: "batch"} for n in list(input_names) + list(output_names)} if dynamic_batch else None
    module = module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, tuple(example), str(tmp), input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=axes, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model, full_check=True)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def session(path: Path, threads: int | None = None):
    from facefront.sessions import onnx_session
    return onnx_session(path, threads or 0)


def run(path_or_session, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = session(path_or_session) if isinstance(path_or_session, (str, Path)) else path_or_session
    return sess.run(None, inputs)


class ExportMismatch(RuntimeError):
    """The exported graph does not compute what the PyTorch network computes; the graph file has been removed."""


def require_close(path: Path, diffs, tolerance: float, family: str) -> None:
    """Fail the export (and remove the graph, so no stale or wrong artefact is served) when onnxruntime differs from
    PyTorch by more than `tolerance` on any output. `diffs`: a list or {output: max |diff|}."""
    values = diffs.values() if isinstance(diffs, dict) else diffs
    worst = max(float(v) for v in values)
    if not worst <= tolerance:   # also catches NaN
        Path(path).unlink(missing_ok=True)
        raise ExportMismatch(f"{family}: exported graph {Path(path).name} differs from PyTorch by {worst:.3g} "
                             f"(> {tolerance:g}); removed it. The export is wrong: do not serve it")


def max_abs_diff(path: Path, module: torch.nn.Module, inputs: dict[str, np.ndarray]) -> list[float]:
    """Per-output max |ORT - PyTorch| on the same inputs (in the graph's input order)."""
    with torch.no_grad():
        ref = module(*[torch.from_numpy(v) for v in inputs.values()])
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    got = run(path, inputs)
    return [float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref)]

"""The one factory for onnxruntime sessions: every stage, tool and benchmark builds its CPU sessions here.

Threads and spinning are the settings that matter on a small CPU shared by stages and clients: onnxruntime's
idle worker threads spin after each run by default, which steals the cores from whatever runs next (the next
stage, the next request). Stages take both from their config's `parameters` (`intra_op_threads`,
`allow_spinning`), so the numbers in a config are the numbers the server runs with.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping


def onnx_session(path: str | Path, threads: int = 0, spinning: bool = True, providers: list[str] | None = None):
    """An onnxruntime InferenceSession on `path`: `threads` intra-op threads (0: onnxruntime's default, one per
    core), one inter-op thread, all graph optimisations, and no idle spinning when `spinning` is False."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])


def session_from_parameters(path: str | Path, params: Mapping[str, str], default_threads: int = 0):
    """A session with a stage config's `intra_op_threads` and `allow_spinning` ("0" turns spinning off)."""
    return onnx_session(path, threads=int(params.get("intra_op_threads", default_threads)),
                        spinning=params.get("allow_spinning", "1") != "0")

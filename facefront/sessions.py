"""The one factory for onnxruntime sessions (and OpenVINO models, for CPU leaves configured `backend: openvino`;
and LiteRT interpreters, for the TFLite face networks): every stage,
tool and benchmark builds its CPU sessions here.

Threads and spinning are the settings that matter on a small CPU shared by stages and clients: onnxruntime's
idle worker threads spin after each run by default, which steals the cores from whatever runs next (the next
stage, the next request). Stages take both from their config's `parameters` (`intra_op_threads`,
`allow_spinning`), so the numbers in a config are the numbers the server runs with.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np


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


# ---- OpenVINO ---------------------------------------------------------------------------------------------------
# OpenVINO's CPU plugin runs the same ONNX graphs with native bf16 convolutions on AVX-512 BF16 / AMX (its
# INFERENCE_PRECISION_HINT), where onnxruntime has none: on the 2-core avx512_bf16 EPYC, LivePortrait's F ran 0.31 s
# in OpenVINO bf16 against 0.48 s in PyTorch bf16 and 0.78 s in onnxruntime fp32 (docs/precision.md).
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def openvino_import_error() -> str | None:
    """None when OpenVINO imports, else why not (one line)."""
    try:
        import openvino  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means: not available
        return f"{type(e).__name__}: {e}"
    return None


class OpenVINOSession:
    """An OpenVINO CPU model compiled from an ONNX graph, behind onnxruntime's session interface (`run(names,
    feeds)`, `get_inputs()` / `get_outputs()` with `.name`). `precision` "fp32" or "bf16" is OpenVINO's inference
    precision hint; one stream, latency hint, `threads` inference threads (0: OpenVINO's default). One infer request
    per part, calls serialised by a lock; outputs are copied out of the requests' reused buffers.

    `fp32_head`: the name of a tensor of the graph. In bf16, everything up to it runs as a separate fp32 model and
    the rest in bf16: OpenVINO's CPU plugin applies its precision hint to the whole graph (it did not honour
    per-node fp32 marks on convolutions, 2026.4), so an fp32 island is a model of its own. LivePortrait's G keeps
    its first SPADE blocks so (docs/precision.md)."""

    def __init__(self, path: str | Path, threads: int = 0, precision: str = "fp32", fp32_head: str | None = None):
        import threading
        from types import SimpleNamespace

        import openvino as ov
        if precision not in OPENVINO_PRECISION:
            raise ValueError(f"OpenVINO precision must be one of {', '.join(OPENVINO_PRECISION)}, got {precision!r}")
        self.path, self.precision = Path(path), precision
        self.fp32_head = fp32_head if precision != "fp32" else None
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = ov.Core()
        model = core.read_model(str(path))
        self._inputs = [SimpleNamespace(name=_port_name(p)) for p in model.inputs]
        self._head = None
        if self.fp32_head:
            head, model = _split_model(core, str(path), self.fp32_head)
            self._head = core.compile_model(head, "CPU", {**config, "INFERENCE_PRECISION_HINT": "f32"})
            self._head_request = self._head.create_infer_request()
        self.compiled = core.compile_model(model, "CPU", {**config,
                                                          "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision]})
        self._request = self.compiled.create_infer_request()
        # a port may carry several tensor names (the ONNX graph's name among them): answer to any of them
        self._outputs = [SimpleNamespace(name=_port_name(p)) for p in self.compiled.outputs]
        self._index = {n: i for i, p in enumerate(self.compiled.outputs) for n in p.get_names()}
        self._lock = threading.Lock()

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def run(self, names, feeds):
        idx = [self._index[n] for n in names] if names else range(len(self._outputs))
        feeds = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        with self._lock:
            if self._head is not None:
                self._head_request.infer(feeds)
                feeds[self.fp32_head] = self._head_request.get_output_tensor(0).data.copy()
            self._request.infer(feeds)
            return [self._request.get_output_tensor(i).data.copy() for i in idx]


def _split_model(core, path: str, tensor: str):
    """(head, tail) of the ONNX graph at `path` cut at the tensor named `tensor`: head = the graph's inputs -> that
    tensor; tail = the graph with that tensor as an extra input (the graph's own inputs stay inputs of both)."""
    import openvino as ov
    import openvino.opset13 as ops

    def find(model):
        for op in model.get_ordered_ops():
            for out in op.outputs():
                if tensor in out.get_names():
                    return out
        raise ValueError(f"{path}: no tensor named {tensor!r} to end the fp32 head at")
    head_model = core.read_model(path)
    head = ov.Model([ops.result(find(head_model))], head_model.get_parameters(), "fp32_head")
    tail_model = core.read_model(path)
    cut = find(tail_model)
    param = ops.parameter(cut.get_partial_shape(), cut.get_element_type(), name=tensor)
    param.output(0).get_tensor().set_names({tensor})
    for target in list(cut.get_target_inputs()):
        target.replace_source_output(param.output(0))
    tail = ov.Model(tail_model.get_results(), [*tail_model.get_parameters(), param], "tail")
    return head, tail


def openvino_session(path: str | Path, threads: int = 0, precision: str = "fp32",
                     fp32_head: str | None = None) -> OpenVINOSession:
    """The OpenVINO counterpart of onnx_session: every OpenVINO model in the project is compiled here."""
    return OpenVINOSession(path, threads, precision, fp32_head)


def _port_name(port) -> str:
    """The name of an OpenVINO port as the ONNX graph has it: of several, the one that is not an internal
    `/node/output_0` name."""
    names = sorted(port.get_names())
    return next((n for n in names if not n.startswith("/")), names[0] if names else port.get_any_name())


# ---- LiteRT (TFLite) -------------------------------------------------------------------------------------------
# The face networks are MediaPipe's own TFLite files; LiteRT's interpreter runs them on XNNPACK, as MediaPipe does.
# On this 2-core machine that is 3x faster than onnxruntime for the landmark network and barely slows when the
# cores are busy (`python -m bench frontend`). `ai-edge-litert` is optional: callers fall back to onnxruntime.

def litert_import_error() -> str | None:
    """None when LiteRT's interpreter imports, else why not (one line)."""
    try:
        from ai_edge_litert import interpreter  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure (missing wheel, ABI, numpy) means: not available
        return f"{type(e).__name__}: {e}"
    return None


class LiteRTSession:
    """A LiteRT interpreter (XNNPACK, `threads` threads) behind onnxruntime's session interface: `run(names,
    {input: x})` for any batch size, `get_inputs()` / `get_outputs()` with `.name`; `outputs` renames the TFLite
    output tensors (e.g. {"classificators": "scores"}) to the ONNX graph's names.

    The TFLite graphs have batch 1 built into their reshapes, and XNNPACK is no faster per item at batch 8 (the
    detector: 9.1 ms at batch 8, 8.8 ms as 8 calls), so a batch runs as one invoke per item into preallocated
    outputs. An interpreter is not re-entrant: calls are serialised by a lock."""

    def __init__(self, path: str | Path, threads: int = 1, outputs: Mapping[str, str] | None = None):
        import threading
        from types import SimpleNamespace

        from ai_edge_litert.interpreter import Interpreter
        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(path), num_threads=int(threads) if threads else None)
        self.interpreter.allocate_tensors()
        (inp,) = self.interpreter.get_input_details()
        self._input, self.input_shape = inp["index"], tuple(int(d) for d in inp["shape"][1:])
        rename = dict(outputs or {})
        self._outputs = {rename.get(d["name"], d["name"]): (d["index"], tuple(int(s) for s in d["shape"][1:]))
                         for d in self.interpreter.get_output_details()}
        self.input_name = "input"
        self._inputs_info = [SimpleNamespace(name=self.input_name, shape=["N", *self.input_shape])]
        self._outputs_info = [SimpleNamespace(name=n, shape=["N", *s]) for n, (_, s) in self._outputs.items()]
        self._lock = threading.Lock()

    def get_inputs(self):
        return self._inputs_info

    def get_outputs(self):
        return self._outputs_info

    def run(self, names, feeds: Mapping):
        import numpy as np
        names = list(names) if names else list(self._outputs)
        (x,) = feeds.values()
        x = np.ascontiguousarray(x, np.float32)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.path.name}: input of shape {x.shape}, expected N x {self.input_shape}")
        wanted = [self._outputs[n] for n in names]
        outs = [np.empty((len(x), *shape), np.float32) for _, shape in wanted]
        it = self.interpreter
        with self._lock:
            for i in range(len(x)):
                it.set_tensor(self._input, x[i:i + 1])
                it.invoke()
                for out, (index, _) in zip(outs, wanted):
                    out[i] = it.get_tensor(index)[0]
        return outs


def litert_session(path: str | Path, threads: int = 1, outputs: Mapping[str, str] | None = None) -> LiteRTSession:
    """The one place that creates LiteRT interpreters (see `LiteRTSession`); raises ImportError without LiteRT."""
    return LiteRTSession(path, threads, outputs)

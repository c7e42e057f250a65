"""Base of every python-backend stage: one response per request, batched execution, errors per request.

Triton's python backend hands `execute()` a list of requests and does not concatenate them. A `Stage` reads and
validates each request's inputs on its own (a bad request gets its own error response and never spoils the
batch), stacks the valid ones, runs the batch once, and splits the outputs back per request.

Subclasses set INPUTS / OUTPUTS and implement `run(batch: dict) -> dict`; per-request validation goes in
`check(name, array)`, which raises `InputError` with a one-line message.

Every `model_repository/*/1/model.py` is the same line, `TritonPythonModel` below: the stage class and all its
settings come from the model's config `parameters` (`stage: "package.module:Class"`), so the config is the whole
interface of a model folder.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np

try:
    import triton_python_backend_utils as pb_utils  # provided by the Triton python backend stub
except ImportError:  # imported outside the server (unit tests, tools): stages can still be built and run
    pb_utils = None


class InputError(ValueError):
    """A request's input is unusable; the message goes back to the client."""


def bls_infer(model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    """One BLS request from inside a python stage to another served model: `inputs` by name, the `outputs` asked for
    back as numpy arrays in CPU memory (also when the model is a TensorRT engine on the GPU). RuntimeError with the
    model's own message when it fails."""
    memory = {}
    if hasattr(pb_utils, "PreferredMemory"):
        memory = {"preferred_memory": pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)}
    response = pb_utils.InferenceRequest(model_name=model, requested_output_names=list(outputs),
                                         inputs=[pb_utils.Tensor(k, v) for k, v in inputs.items()], **memory).exec()
    if response.has_error():
        raise RuntimeError(f"{model}: {response.error().message()}")
    got = []
    for name in outputs:
        t = pb_utils.get_output_tensor_by_name(response, name)
        if t is None or not t.is_cpu():
            raise RuntimeError(f"{model} returned {name} {'nowhere' if t is None else 'in GPU memory'}")
        got.append(t.as_numpy())
    return got


class Stage:
    INPUTS: tuple[str, ...] = ()
    OPTIONAL: tuple[str, ...] = ()   # inputs a request may omit; `defaults()` supplies them
    OUTPUTS: tuple[str, ...] = ()
    STACK = True                     # False: run() gets lists (e.g. variable-size images)
    SPLITTABLE = True                # False: requests cannot run one at a time; a failure fails only that batch

    def initialize(self, args):
        self.model_config = json.loads(args["model_config"])
        self.name = args["model_name"]
        self.version_dir = Path(args["model_repository"]) / args["model_version"]
        self.params = {k: v["string_value"] for k, v in self.model_config.get("parameters", {}).items()}
        self.out_dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"])
                           for o in self.model_config.get("output", [])}
        self.setup()

    @classmethod
    def standalone(cls, params: dict[str, str], name: str = "in-process", version_dir: Path | None = None) -> "Stage":
        """The stage outside Triton, set up with these config parameters (benchmarks, fidelity, tests)."""
        stage = cls()
        stage.params, stage.name, stage.model_config, stage.out_dtypes = dict(params), name, {}, {}
        if version_dir is not None:
            stage.version_dir = Path(version_dir)
        stage.setup()
        return stage

    def setup(self):
        """Load resources (sessions, tables). Raise to fail model loading with a clear message."""

    def check(self, name: str, value: np.ndarray) -> np.ndarray:
        return value

    def defaults(self, n: int) -> dict[str, np.ndarray]:
        return {}

    def run(self, batch: dict[str, np.ndarray | list]) -> dict[str, np.ndarray | list]:
        raise NotImplementedError

    def _read(self, request) -> dict[str, np.ndarray]:
        values = {}
        for name in self.INPUTS + self.OPTIONAL:
            t = pb_utils.get_input_tensor_by_name(request, name)
            if t is None:
                if name in self.OPTIONAL:
                    continue
                raise InputError(f"missing input {name}")
            values[name] = self.check(name, t.as_numpy())
        n = len(next(iter(values.values()))) if values else 1
        for k, v in self.defaults(n).items():
            values.setdefault(k, v)
        return values

    def execute(self, requests):
        responses = [None] * len(requests)
        ok: list[int] = []
        per_request: list[dict] = []
        for i, req in enumerate(requests):
            try:
                per_request.append(self._read(req))
                ok.append(i)
            except InputError as e:
                responses[i] = self._error(str(e))
            except Exception as e:  # noqa: BLE001 - reading one request must not fail the others
                responses[i] = self._failure(e)
        if not ok:
            return responses
        try:
            outs = self._run_stacked(per_request)
            sizes = [len(next(iter(v.values()))) for v in per_request]
            start, answered = 0, []
            for i, n in zip(ok, sizes):
                answered.append((i, self._respond(outs, start, start + n)))
                start += n
        except Exception as e:  # noqa: BLE001 - any failure: isolate the bad request, answer every one
            if len(ok) == 1 or not self.SPLITTABLE:
                fail = self._error(str(e)) if isinstance(e, InputError) else self._failure(e)
                for i in ok:
                    responses[i] = fail
                return responses
            # re-run each request of the batch alone: the bad one gets its own error, the others their answer
            for i, vals in zip(ok, per_request):
                responses[i] = self._run_alone(vals)
            return responses
        for i, r in answered:
            responses[i] = r
        return responses

    def _run_stacked(self, per_request):
        names = per_request[0].keys()
        if self.STACK:
            batch = {k: np.concatenate([v[k] for v in per_request], axis=0) for k in names}
        else:
            batch = {k: [x for v in per_request for x in v[k]] for k in names}
        return self.run(batch)

    def _run_alone(self, vals):
        try:
            return self._respond(self.run(vals), 0, len(next(iter(vals.values()))))
        except InputError as e:
            return self._error(str(e))
        except Exception as e:  # noqa: BLE001
            return self._failure(e)

    def _failure(self, e: Exception):
        """An unexpected exception: the traceback to the server log, one line (no paths, no trace) to the client."""
        traceback.print_exc(file=sys.stderr)
        return self._error(f"{self.name} failed: {type(e).__name__}: {e}")

    def _respond(self, outs, a, b):
        tensors = []
        for name in self.OUTPUTS:
            value = outs[name][a:b]
            if isinstance(value, list):
                value = np.stack(value) if len({np.shape(x) for x in value}) == 1 else value
            arr = np.asarray(value, dtype=self.out_dtypes.get(name))
            tensors.append(pb_utils.Tensor(name, arr))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    @staticmethod
    def _error(message: str):
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))

    def finalize(self):
        pass


class TritonPythonModel:
    """The python backend's entry point for every facefront model: builds the `Stage` subclass that the config's
    `stage` parameter names ("facefront.module:Class"; only facefront's own modules) and hands it each call."""

    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        target = (params.get("stage") or {}).get("string_value", "")
        self.stage = load_stage(target, args["model_name"])()
        self.stage.initialize(args)

    def execute(self, requests):
        return self.stage.execute(requests)

    def finalize(self):
        self.stage.finalize()


def load_stage(target: str, model: str = "model") -> type[Stage]:
    """The Stage class named by a config's `stage` parameter; RuntimeError (fails the model load) with the reason."""
    import importlib
    module, _, cls = target.partition(":")
    if not module.startswith("facefront.") or not cls:
        raise RuntimeError(f"{model}: parameter stage must name a facefront stage as 'facefront.module:Class', "
                           f"got {target!r}")
    try:
        found = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"{model}: parameter stage {target!r} cannot be loaded: {e}") from None
    if not (isinstance(found, type) and issubclass(found, Stage)):
        raise RuntimeError(f"{model}: parameter stage {target!r} is not a Stage")
    return found


def from_repository(model: str, repo: Path | None = None) -> Stage:
    """The python stage `model` of the repository, built in-process exactly as the server builds it (CPU flavour
    config: its `stage` class and parameters), e.g. a family's crop stage for a benchmark's in-process pipeline."""
    from facefront import repository
    repo = repo or repository.MODEL_REPOSITORY
    params = repository.stage_parameters(model, repo)
    return load_stage(params.get("stage", ""), model).standalone(params, model, Path(repo) / model / "1")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]

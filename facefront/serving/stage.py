"""Base of every python-backend stage: one response per request, batched execution, errors per request.

Triton's python backend hands `execute()` a list of requests and does not concatenate them. A `Stage` reads and
validates each request's inputs on its own (a bad request gets its own error response and never spoils the
batch), stacks the valid ones, runs the batch once, and splits the outputs back per request.

Subclasses set INPUTS / OUTPUTS and implement `run(batch: dict) -> dict`; per-request validation goes in
`check(name, array)`, which raises `InputError` with a one-line message.
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


class Stage:
    INPUTS: tuple[str, ...] = ()
    OPTIONAL: tuple[str, ...] = ()   # inputs a request may omit; `defaults()` supplies them
    OUTPUTS: tuple[str, ...] = ()
    STACK = True                     # False: run() gets lists (e.g. variable-size images)

    def initialize(self, args):
        self.model_config = json.loads(args["model_config"])
        self.name = args["model_name"]
        self.version_dir = Path(args["model_repository"]) / args["model_version"]
        self.params = {k: v["string_value"] for k, v in self.model_config.get("parameters", {}).items()}
        self.out_dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"])
                           for o in self.model_config.get("output", [])}
        self.setup()

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
        if ok:
            try:
                self._run_batch(requests, ok, per_request, responses)
            except InputError as e:
                for i in ok:
                    responses[i] = self._error(str(e))
            except Exception as e:  # noqa: BLE001 - a stage must answer every request, never crash the batch
                traceback.print_exc(file=sys.stderr)
                for i in ok:
                    responses[i] = self._error(f"{self.name} failed: {type(e).__name__}: {e}")
        return responses

    def _run_batch(self, requests, ok, per_request, responses):
        sizes = [len(next(iter(v.values()))) for v in per_request]
        names = per_request[0].keys()
        if self.STACK:
            batch = {k: np.concatenate([v[k] for v in per_request], axis=0) for k in names}
        else:
            batch = {k: [x for v in per_request for x in v[k]] for k in names}
        try:
            outs = self.run(batch)
        except InputError:
            if len(ok) == 1:
                raise
            # one bad item in a batch: run each request alone so the others still succeed
            for i, vals in zip(ok, per_request):
                try:
                    responses[i] = self._respond(self.run(vals), 0, len(next(iter(vals.values()))))
                except InputError as e:
                    responses[i] = self._error(str(e))
            return
        start = 0
        for i, n in zip(ok, sizes):
            responses[i] = self._respond(outs, start, start + n)
            start += n

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


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]

"""Stage.execute on a real batch of several requests, outside Triton: one bad request never spoils its batch.

A fake `pb_utils` (the python backend's module) stands in for Triton; the batch goes through the same code the
server runs. Whatever a request does wrong (an InputError, any other exception while the batch runs), it gets its
own one-line error and every other request of the batch its normal answer.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from facefront.serving import stage as stage_mod
from facefront.serving.stage import InputError, Stage


class FakeTensor:
    def __init__(self, name, array):
        self.name, self.array = name, np.asarray(array)

    def as_numpy(self):
        return self.array


class FakeResponse:
    def __init__(self, output_tensors, error=None):
        self.outputs = {t.name: t.array for t in output_tensors}
        self.error = error


FAKE = SimpleNamespace(
    Tensor=FakeTensor, InferenceResponse=FakeResponse, TritonError=lambda msg: msg,
    get_input_tensor_by_name=lambda req, name: req.get(name))


@pytest.fixture(autouse=True)
def fake_backend(monkeypatch):
    monkeypatch.setattr(stage_mod, "pb_utils", FAKE)


class Doubler(Stage):
    """x -> 2x; a value of -1 raises a plain RuntimeError (a bug-like failure), -2 an InputError."""
    INPUTS, OUTPUTS = ("x",), ("y",)
    calls = 0

    def check(self, name, value):
        if np.isnan(value).any():
            raise InputError("x contains NaN")
        return value

    def run(self, batch):
        Doubler.calls += 1
        x = batch["x"]
        if (x == -1).any():
            raise RuntimeError("the network fell over")
        if (x == -2).any():
            raise InputError("x = -2 is not allowed")
        return {"y": x * 2}


def _stage(cls=Doubler):
    return cls.standalone({}, name="doubler")


def _req(v):
    return {"x": FakeTensor("x", np.array([[v]], np.float32))}


def test_a_good_batch_runs_once_and_is_split_back():
    Doubler.calls = 0
    out = _stage().execute([_req(1), _req(2), _req(3)])
    assert Doubler.calls == 1
    assert [r.error for r in out] == [None] * 3
    assert [float(r.outputs["y"][0, 0]) for r in out] == [2, 4, 6]


@pytest.mark.parametrize("bad, message", [(-1, "doubler failed: RuntimeError: the network fell over"),
                                          (-2, "x = -2 is not allowed"),
                                          (float("nan"), "x contains NaN")])
def test_one_bad_request_gets_its_own_error_and_the_others_their_answer(bad, message):
    out = _stage().execute([_req(1), _req(bad), _req(3), _req(4)])
    assert out[1].error == message
    assert [out[i].error for i in (0, 2, 3)] == [None] * 3
    assert [float(out[i].outputs["y"][0, 0]) for i in (0, 2, 3)] == [2, 6, 8]


def test_errors_carry_no_traceback_or_path():
    out = _stage().execute([_req(-1), _req(1)])
    assert "\n" not in out[0].error and "Traceback" not in out[0].error and "/" not in out[0].error


def test_a_stage_that_cannot_split_fails_only_its_batch():
    class Unsplittable(Doubler):
        SPLITTABLE = False
    out = _stage(Unsplittable).execute([_req(1), _req(-1)])
    assert all(r.error == "doubler failed: RuntimeError: the network fell over" for r in out)


def test_crop_stage_isolates_a_tiny_image_in_a_batch():
    """The reported case: a valid but 4x4 image batched with good photos must not fail them (scaleway's crop)."""
    import cv2

    from facefront.data import photo
    from facefront.repository import preprocess_model
    from facefront.serving.stage import from_repository
    crop = from_repository(preprocess_model("scaleway"))
    good = np.frombuffer(photo("obama.jpg").read_bytes(), np.uint8)[None]
    tiny = np.frombuffer(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes(), np.uint8)[None]
    out = crop.execute([{"IMAGE": FakeTensor("IMAGE", a)} for a in (good, tiny, good)])
    assert out[1].error and "4x4" in out[1].error, out[1].error
    assert out[0].error is None and out[2].error is None
    assert out[0].outputs["FACE"].shape == (1, 128, 128, 3)

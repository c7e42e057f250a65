"""LivePortrait served by the real CPU tritonserver (ensemble liveportrait_frontalize), against the PyTorch reference.

LivePortrait costs ~1.3 TFLOP a frame (seconds on these CPUs), so the whole file serves 6 frames of one photo
(F and M run once for it: repeated edits hit Triton's response cache), one two-face photo, and one reference run.
Synthetic weights (the parity rule): the pictures are not faces, but every number is the released networks'.
"""
from __future__ import annotations

import numpy as np
import pytest

from client import FrontalizeClient
from client.api import ServerError

pytestmark = pytest.mark.server
MODEL = "liveportrait"


@pytest.fixture(scope="module")
def lp(triton_server):
    from facefront.repository import exported_families
    if MODEL not in exported_families()[0]:
        pytest.fail("liveportrait is not exported: run `python -m export onnx liveportrait`")
    with FrontalizeClient(triton_server.grpc_url, timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def source():
    from facefront.data import photo
    return photo("obama2.jpg")


@pytest.fixture(scope="module")
def frontal(lp, source):
    return lp.frontalize(source, model=MODEL)


def _stats(client, model):
    s = client._call("get_inference_statistics", model, as_json=True)["model_stats"][0]
    return int(s.get("execution_count", 0)), int(s.get("inference_stats", {}).get("cache_hit", {}).get("count", 0))


def test_served_matches_the_pytorch_reference_end_to_end(lp, source, frontal):
    """The same crop through `reference.Pipeline().repose()` (eager PyTorch) and through the served ensemble
    (TorchScript/onnxruntime leaves, numpy keypoints, onnxruntime S): uint8 within +-2 grey levels."""
    from export.liveportrait.reference import Pipeline
    from facefront import imaging
    from facefront.liveportrait.stages import crop_face, to_source, to_uint8
    crop, _, _ = crop_face(imaging.decode(source.read_bytes()))
    ref = to_uint8(Pipeline().repose(to_source(crop)[None])[0])
    assert frontal.shape == (512, 512, 3) and frontal.dtype == np.uint8
    diff = np.abs(frontal.astype(int) - ref.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.1, (diff.max(), diff.mean())


def test_pose_and_controls_change_the_face_and_reuse_f_m(lp, source, frontal):
    counts = {m: _stats(lp, m) for m in ("liveportrait_appearance", "liveportrait_motion")}
    turned = lp.frontalize(source, model=MODEL, yaw=15)
    smiling = lp.frontalize(source, model=MODEL, smile=0.5)
    relative = lp.frontalize(source, model=MODEL, relative=1)   # the source's own pose: not the frontal face
    for edited in (turned, smiling, relative):
        assert edited.shape == frontal.shape
        assert np.abs(edited.astype(int) - frontal.astype(int)).max() > 0
    assert np.abs(turned.astype(int) - smiling.astype(int)).max() > 0
    # three edits of the same photo: F and M answered from the response cache, never run again
    for m, (executions, hits) in counts.items():
        now_exec, now_hits = _stats(lp, m)
        assert now_exec == executions, f"{m} ran again for an edit of the same photo"
        assert now_hits >= hits + 3


def test_bad_requests_get_clear_errors(lp, source, frontal):
    with pytest.raises(ServerError, match=r"target yaw outside \+-90 degrees"):
        lp.frontalize(source, model=MODEL, yaw=120)
    with pytest.raises(ServerError, match=r"target pitch outside .* \(relative mode\)"):
        lp.frontalize(source, model=MODEL, pitch=200, relative=1)   # beyond +-90 from any source pose
    # the client checks the ranges the ensemble's `controls` parameter states before sending...
    with pytest.raises(ValueError, match=r"smile must be in \[-0.3, 1.3\]"):
        lp.frontalize(source, model=MODEL, smile=5)
    with pytest.raises(ValueError, match=r"eye_open must be in \[0, 1\]"):
        lp.frontalize(source, model=MODEL, eye_open=2)
    with pytest.raises(ValueError, match="has no control 'grin'"):
        lp.frontalize(source, model=MODEL, grin=1)
    with pytest.raises(ValueError, match="finite"):
        lp.frontalize(source, model=MODEL, smile=float("nan"))
    with pytest.raises(ServerError, match="no face was found"):
        lp.frontalize(np.full((120, 160, 3), 90, np.uint8), model=MODEL)


def _raw(lp, **inputs):
    tc = lp._tc
    data = np.frombuffer(inputs.pop("IMAGE"), np.uint8)[None]
    tensors = [tc.InferInput("IMAGE", list(data.shape), "UINT8")]
    tensors[0].set_data_from_numpy(data)
    for name, (value, dtype) in inputs.items():
        t = tc.InferInput(name, list(value.shape), dtype)
        t.set_data_from_numpy(value)
        tensors.append(t)
    return lp._call("infer", "liveportrait_frontalize", tensors)


def test_raw_protocol_errors(lp, source):
    data = source.read_bytes()
    with pytest.raises(ServerError, match="not a recognised image format"):
        _raw(lp, IMAGE=b"definitely not an image file")
    with pytest.raises(ServerError, match="POSE.*(FP64|datatype)|(FP64|datatype).*POSE"):
        _raw(lp, IMAGE=data, POSE=(np.zeros((1, 3), np.float64), "FP64"))
    nan = np.zeros((1, 12), np.float32)
    nan[0, 3] = np.nan
    with pytest.raises(ServerError, match="CONTROLS contains NaN"):
        _raw(lp, IMAGE=data, CONTROLS=(nan, "FP32"))
    with pytest.raises(ServerError, match="POSE contains NaN"):
        _raw(lp, IMAGE=data, POSE=(np.array([[np.nan, 0, 0]], np.float32), "FP32"))
    # ...and the server checks them again for clients that send raw tensors (order: relative, eye_open, lip_open,
    # smile, ...)
    smile = np.zeros((1, 12), np.float32)
    smile[0, 3] = 5
    with pytest.raises(ServerError, match=r"smile=5.* outside \[-0.3, 1.3\]"):
        _raw(lp, IMAGE=data, CONTROLS=(smile, "FP32"))
    eye = np.zeros((1, 12), np.float32)
    eye[0, 1] = 2
    with pytest.raises(ServerError, match=r"eye_open=2 outside \[0, 1\]"):
        _raw(lp, IMAGE=data, CONTROLS=(eye, "FP32"))


def test_two_faces_use_the_largest(lp):
    """A photo with several faces (faceapi_sample1.jpg: three) is re-posed from its largest face."""
    from facefront.data import photo
    out = lp.frontalize(photo("faceapi_sample1.jpg"), model=MODEL)
    assert out.shape == (512, 512, 3)

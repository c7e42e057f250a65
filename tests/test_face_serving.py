"""face_analyze on the real CPU tritonserver (its CPU config runs the two networks in the stage, `face_networks:
in_process`), against the same analysis run in-process (facefront.face.analyze on the same decoded pixels) and
against the same analysis with the networks answered by the served face_detector / face_landmarks leaves (what
`face_networks: leaves`, the GPU flavour's setting, computes)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from facefront import imaging
from facefront.data import photo
from facefront.face import analyze
from facefront.face.pose import head_pose

pytestmark = pytest.mark.server

# Served and in-process runs are the same code on the same ONNX bytes; only the network calls differ (BLS chunks
# of <= 8 to the leaf's own onnxruntime session). Measured on 5 photos (1-6 faces): boxes, scores, landmarks
# identical (max |diff| 0), pose < 1e-6 degrees. The tolerances leave room for thread-count rounding only.
BOX_TOL_PX = 1e-3
LANDMARK_TOL_PX = 1e-3
POSE_TOL_DEG = 1e-3
OUTPUTS = ("BOXES", "SCORES", "LANDMARKS", "POSE")


@pytest.fixture(scope="module")
def grpc(triton_server):
    assert "face_analyze" in triton_server.services
    c = grpcclient.InferenceServerClient(triton_server.grpc_url)
    yield c
    c.close()


def infer(client, data: bytes, all_faces: bool | None = None) -> dict[str, np.ndarray]:
    arr = np.frombuffer(data, np.uint8)
    inputs = [grpcclient.InferInput("IMAGE", [len(arr)], "UINT8")]
    inputs[0].set_data_from_numpy(arr)
    if all_faces is not None:
        inputs.append(grpcclient.InferInput("ALL_FACES", [1], "BOOL"))
        inputs[1].set_data_from_numpy(np.array([all_faces]))
    r = client.infer("face_analyze", inputs)
    return {k: r.as_numpy(k) for k in OUTPUTS}


def in_process(data: bytes, max_faces=None) -> dict[str, np.ndarray]:
    faces = analyze(imaging.decode(data), max_faces=max_faces)
    return {"BOXES": np.array([f.box for f in faces]), "SCORES": np.array([f.score for f in faces]),
            "LANDMARKS": np.stack([f.landmarks for f in faces]),
            "POSE": np.array([head_pose(f.landmarks) for f in faces])}


def assert_same(got, ref):
    assert got["BOXES"].shape == ref["BOXES"].shape
    np.testing.assert_allclose(got["BOXES"], ref["BOXES"], atol=BOX_TOL_PX, rtol=0)
    np.testing.assert_allclose(got["SCORES"], ref["SCORES"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["LANDMARKS"], ref["LANDMARKS"], atol=LANDMARK_TOL_PX, rtol=0)
    np.testing.assert_allclose(got["POSE"], ref["POSE"], atol=POSE_TOL_DEG, rtol=0)


def test_single_face_equals_in_process_analysis(grpc):
    data = photo("obama.jpg").read_bytes()
    got = infer(grpc, data)
    assert got["BOXES"].shape == (1, 4) and got["SCORES"].shape == (1,)
    assert got["LANDMARKS"].shape == (1, 468, 3) and got["POSE"].shape == (1, 3)
    assert all(v.dtype == np.float32 for v in got.values())
    x0, y0, x1, y1 = got["BOXES"][0]
    assert 0 <= x0 < x1 and 0 <= y0 < y1 and 0.5 < got["SCORES"][0] <= 1
    assert_same(got, in_process(data, max_faces=1))
    assert np.abs(got["POSE"][0]).max() < 20  # a near-frontal portrait


def test_group_photo_all_faces_largest_first(grpc):
    data = photo("faceapi_sample1.jpg").read_bytes()
    got = infer(grpc, data, all_faces=True)
    assert len(got["BOXES"]) == 3
    b = got["BOXES"]
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    assert list(areas) == sorted(areas, reverse=True)
    assert_same(got, in_process(data))
    one = infer(grpc, data, all_faces=False)  # default: the largest only
    assert len(one["BOXES"]) == 1
    np.testing.assert_allclose(one["BOXES"][0], b[0], atol=1.0)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_no_face_is_a_clear_error_and_the_server_stays_healthy(grpc):
    with pytest.raises(InferenceServerException, match="no face was found in the 320x240 image"):
        infer(grpc, _png(np.zeros((240, 320, 3), np.uint8)))
    with pytest.raises(InferenceServerException, match="image"):
        infer(grpc, b"not an image file at all")
    assert grpc.is_server_ready() and grpc.is_model_ready("face_analyze")
    assert len(infer(grpc, photo("obama.jpg").read_bytes())["BOXES"]) == 1


def test_leaves_are_served_with_the_configured_interface(grpc):
    x = np.zeros((2, 128, 128, 3), np.float32)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = grpc.infer("face_detector", [inp])
    assert r.as_numpy("regressors").shape == (2, 896, 16) and r.as_numpy("scores").shape == (2, 896, 1)


class _LeavesOverGrpc:
    """`TritonNetworks` over gRPC: the served face_detector / face_landmarks leaves, in chunks of their max batch."""

    def __init__(self, client, max_batch: int = 8):
        self.client, self.max_batch = client, max_batch

    def _infer(self, model, outputs, x):
        parts = []
        for a in range(0, len(x), self.max_batch):
            chunk = np.ascontiguousarray(x[a:a + self.max_batch], np.float32)
            inp = grpcclient.InferInput("input", list(chunk.shape), "FP32")
            inp.set_data_from_numpy(chunk)
            r = self.client.infer(model, [inp])
            parts.append([r.as_numpy(n) for n in outputs])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(outputs))]

    def detector(self, x):
        return tuple(self._infer("face_detector", ["regressors", "scores"], x))

    def landmarks(self, x):
        return tuple(self._infer("face_landmarks", ["landmarks", "presence"], x))


@pytest.mark.parametrize("name", ["obama.jpg", "faceapi_sample1.jpg"])
def test_in_process_networks_answer_as_the_leaves(grpc, name):
    from facefront import repository
    from facefront.face.analysis import FaceAnalyzer
    from facefront.face.bls_stage import faces_to_outputs
    assert repository.stage_parameters("face_analyze")["face_networks"] == "in_process"   # what this server runs
    data = photo(name).read_bytes()
    leaves = FaceAnalyzer(networks=_LeavesOverGrpc(grpc)).analyze(imaging.decode(data))
    ref = {k: v.astype(np.float64) for k, v in faces_to_outputs(leaves).items()}
    assert_same(infer(grpc, data, all_faces=True), ref)

"""The real CPU tritonserver: ensemble round trip over gRPC and HTTP, dynamic batching, bad inputs."""
from __future__ import annotations

import concurrent.futures as cf
import io
import struct
import time
import zlib

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.server


def _jpeg_of_face() -> bytes:
    from facefront.data import photo
    return photo("obama.jpg").read_bytes()


def _image_input(mod, data: bytes):
    arr = np.frombuffer(data, np.uint8)[None]
    inp = mod.InferInput("IMAGE", list(arr.shape), "UINT8")
    inp.set_data_from_numpy(arr)
    return inp


@pytest.fixture(scope="module")
def grpc(triton_server):
    c = grpcclient.InferenceServerClient(triton_server.grpc_url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def face_bytes():
    return _jpeg_of_face()


def test_server_serves_scaleway_and_clients_cannot_unload(triton_server, grpc):
    assert "scaleway" in triton_server.served
    assert grpc.is_model_ready("scaleway_frontalize")
    with pytest.raises(InferenceServerException, match="restricted"):
        grpc.unload_model("scaleway_frontalize")  # the model-repository API needs the launcher's own header
    with pytest.raises(InferenceServerException, match="restricted"):
        grpc.unload_model("scaleway_frontalize", headers={"triton-grpc-protocol-facefront-admin": "guess"})
    assert grpc.is_model_ready("scaleway_frontalize")


def test_ensemble_round_trip_grpc_and_http(triton_server, grpc, face_bytes):
    r = grpc.infer("scaleway_frontalize", [_image_input(grpcclient, face_bytes)])
    out = r.as_numpy("FRONTAL")
    assert out.shape == (1, 128, 128, 3) and out.dtype == np.uint8
    h = httpclient.InferenceServerClient(triton_server.http_url)
    try:
        out_h = h.infer("scaleway_frontalize", [_image_input(httpclient, face_bytes)]).as_numpy("FRONTAL")
    finally:
        h.close()
    assert np.array_equal(out, out_h)


@pytest.mark.parametrize("family", ["scaleway", "ffwm"])
def test_served_output_equals_in_process_pipeline(triton_server, grpc, face_bytes, family):
    """Server vs the same pieces run in-process (decode, face crop, the exported graph via onnxruntime)."""
    from export.common import onnx_tools
    from facefront.repository import preprocess_model
    from facefront.serving.stage import from_repository
    from tests.conftest import REPO
    assert family in triton_server.served
    stage = from_repository(preprocess_model(family))   # the served crop stage with its config's settings
    crop = stage.crop_one(face_bytes)
    ref = onnx_tools.run(REPO / f"model_repository/{family}_generator/1/model.onnx", {"face": crop[None]})[0]
    got = grpc.infer(f"{family}_frontalize", [_image_input(grpcclient, face_bytes)]).as_numpy("FRONTAL")
    assert got.shape == (1, 128, 128, 3)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_dynamic_batching_under_concurrent_requests(triton_server, face_bytes):
    stats0 = _stats(triton_server, "scaleway_generator")
    n = 24

    def one(_):
        c = grpcclient.InferenceServerClient(triton_server.grpc_url)
        try:
            return c.infer("scaleway_frontalize", [_image_input(grpcclient, face_bytes)]).as_numpy("FRONTAL")
        finally:
            c.close()
    with cf.ThreadPoolExecutor(12) as ex:
        outs = list(ex.map(one, range(n)))
    assert all(np.array_equal(o, outs[0]) for o in outs)
    # Triton records a leaf's statistics after its execute() returns, which can be just after the ensemble has
    # answered the client: wait (briefly) for the last batch to be counted
    deadline = time.monotonic() + 10
    while True:
        stats1 = _stats(triton_server, "scaleway_generator")
        if stats1["inference_count"] - stats0["inference_count"] >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    inferences = stats1["inference_count"] - stats0["inference_count"]
    executions = stats1["execution_count"] - stats0["execution_count"]
    assert inferences == n
    assert executions < n, f"no batching: {executions} executions for {n} requests"


def _stats(srv, model):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        s = c.get_inference_statistics(model, as_json=True)["model_stats"][0]
    finally:
        c.close()
    return {"inference_count": int(s.get("inference_count", 0)), "execution_count": int(s.get("execution_count", 0))}


def _png_bomb() -> bytes:
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()[:2000]


def _no_face() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name,data,reason", [
    ("empty body", b"", "empty image"),
    ("random bytes", bytes(np.random.default_rng(5).integers(0, 256, 3000, dtype=np.uint8)), "not a recognised image"),
    ("truncated JPEG", _truncated_jpeg(), "truncated|corrupt"),
    ("20000x20000 PNG header", _png_bomb(), "too large"),
])
def test_bad_images_get_clear_errors_and_server_stays_healthy(grpc, face_bytes, name, data, reason):
    with pytest.raises(InferenceServerException, match=reason):
        grpc.infer("scaleway_frontalize", [_image_input(grpcclient, data)])
    assert grpc.is_server_live() and grpc.is_server_ready()
    ok = grpc.infer("scaleway_frontalize", [_image_input(grpcclient, face_bytes)]).as_numpy("FRONTAL")
    assert ok.shape == (1, 128, 128, 3)


def test_wrong_dtype_and_shape_are_refused(grpc, face_bytes):
    f = grpcclient.InferInput("IMAGE", [1, 16], "FP32")
    f.set_data_from_numpy(np.zeros((1, 16), np.float32))
    with pytest.raises(InferenceServerException, match="(?i)data-type|datatype|dtype"):
        grpc.infer("scaleway_frontalize", [f])
    g = grpcclient.InferInput("face", [1, 64, 64, 3], "UINT8")
    g.set_data_from_numpy(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(InferenceServerException, match="(?i)shape"):
        grpc.infer("scaleway_generator", [g])
    assert grpc.is_server_ready()
    assert grpc.infer("scaleway_frontalize", [_image_input(grpcclient, face_bytes)]).as_numpy("FRONTAL").shape[0] == 1


def test_one_bad_request_in_a_batch_does_not_spoil_the_others(triton_server, face_bytes):
    def one(data):
        c = grpcclient.InferenceServerClient(triton_server.grpc_url)
        try:
            return c.infer("scaleway_frontalize", [_image_input(grpcclient, data)]).as_numpy("FRONTAL")
        except InferenceServerException as e:
            return e
        finally:
            c.close()
    inputs = [face_bytes, b"junk", face_bytes, _truncated_jpeg(), face_bytes, face_bytes]
    with cf.ThreadPoolExecutor(len(inputs)) as ex:
        outs = list(ex.map(one, inputs))
    for data, out in zip(inputs, outs, strict=True):
        if data is face_bytes:
            assert isinstance(out, np.ndarray) and out.shape == (1, 128, 128, 3)
        else:
            assert isinstance(out, InferenceServerException)


def test_no_face_is_a_clear_error(grpc):
    with pytest.raises(InferenceServerException, match="(?i)no face"):
        grpc.infer("scaleway_frontalize", [_image_input(grpcclient, _no_face())])

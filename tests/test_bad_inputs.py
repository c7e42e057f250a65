"""Bad inputs over every served frontalization ensemble, sent concurrently with good requests so that they share
dynamic batches: each bad request gets its own clear one-line error, its neighbours their normal answer, and the
server stays ready. The table of kinds and messages is docs/bad-inputs.md. LivePortrait's requests take seconds on
CPU, so its sweep sends every bad kind at once between only two good photos (its controls and pose errors are in
tests/test_liveportrait_serving.py).
"""
from __future__ import annotations

import concurrent.futures as cf
import io
import re
import struct
import zlib

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.conftest import REPO

pytestmark = pytest.mark.server
MODELS = ["scaleway", "ffwm", "mesh3d", pytest.param("liveportrait", marks=pytest.mark.slow)]


def _png(a: np.ndarray, mode: str | None = None) -> bytes:
    b = io.BytesIO()
    Image.fromarray(a, mode).save(b, "PNG")
    return b.getvalue()


def _bomb() -> bytes:
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def _kinds(good: bytes) -> dict[str, tuple[bytes, str | None]]:
    """kind -> (file bytes, regex the error must match; None: it must succeed)."""
    cmyk = io.BytesIO()
    Image.open(io.BytesIO(good)).convert("CMYK").save(cmyk, "JPEG")
    gif = io.BytesIO()
    frames = [Image.fromarray(np.full((64, 64, 3), v, np.uint8)) for v in (30, 200)]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    gray16 = _png((np.arange(96 * 96).reshape(96, 96) * 7).astype(np.uint16))
    return {
        "empty body": (b"", "empty image"),
        "random bytes": (bytes(np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8)), "not a recognised image"),
        "truncated JPEG": (good[: len(good) // 3], "corrupt or truncated"),
        "decompression-bomb header": (_bomb(), "too large"),
        "4x4 image": (_png(np.zeros((4, 4, 3), np.uint8)), "too small"),
        "1x20000 image": (_png(np.zeros((1, 20000, 3), np.uint8)), "too small|no face"),
        "16-bit grayscale PNG, no face": (gray16, "(?i)no face"),
        "animated GIF (first frame), no face": (gif.getvalue(), "(?i)no face"),
        "photo with no face": (_png(np.full((200, 300, 3), 90, np.uint8)), "(?i)no face"),
        "CMYK JPEG of a face": (cmyk.getvalue(), None),
    }


def _call(url: str, model: str, data: bytes):
    c = grpcclient.InferenceServerClient(url)
    try:
        arr = np.frombuffer(data, np.uint8)[None]
        t = grpcclient.InferInput("IMAGE", list(arr.shape), "UINT8")
        t.set_data_from_numpy(arr)
        return c.infer(f"{model}_frontalize", [t]).as_numpy("FRONTAL")
    except InferenceServerException as e:
        return e
    finally:
        c.close()


def _executions(url: str, model: str) -> tuple[int, int]:
    c = grpcclient.InferenceServerClient(url)
    try:
        s = c.get_inference_statistics(model, as_json=True)["model_stats"][0]
    finally:
        c.close()
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))


@pytest.mark.parametrize("model", MODELS)
def test_each_bad_request_fails_alone_inside_shared_batches(triton_server, model):
    from facefront import repository
    url = triton_server.grpc_url
    good = (REPO / ".cache" / "data" / "obama.jpg").read_bytes()
    kinds = _kinds(good)
    first = repository.preprocess_model(model) if repository.members(f"{model}_frontalize") else f"{model}_frontalize"
    inf0, exe0 = _executions(url, first)
    jobs = []
    for kind, (data, _) in kinds.items():   # each bad input between two good ones, all in flight together
        jobs += [(kind, data)] if model == "liveportrait" else [("good", good), (kind, data), ("good", good)]
    if model == "liveportrait":
        jobs = [("good", good)] + jobs + [("good", good)]
    with cf.ThreadPoolExecutor(12) as ex:
        outs = list(ex.map(lambda j: _call(url, model, j[1]), jobs))
    for (kind, _), out in zip(jobs, outs, strict=True):
        expect = None if kind == "good" else kinds[kind][1]
        if expect is None:
            assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape[-1] == 3, (kind, out)
        else:
            assert isinstance(out, InferenceServerException), (kind, out)
            msg = out.message()
            assert re.search(expect, msg), (kind, msg)
            assert "Traceback" not in msg and "/work/" not in msg and "\n" not in msg.strip(), (kind, msg)
    inf1, exe1 = _executions(url, first)
    assert inf1 - inf0 >= len(jobs) - 2
    assert exe1 - exe0 < inf1 - inf0, f"{first}: no request shared a batch ({exe1 - exe0} executions)"
    c = grpcclient.InferenceServerClient(url)
    try:
        assert c.is_server_ready() and c.is_model_ready(f"{model}_frontalize")
    finally:
        c.close()


def test_face_analyze_bad_inputs(triton_server):
    """face_analyze (not batched: one request at a time), sent raw so the server's own checks answer."""
    url = triton_server.grpc_url
    good = (REPO / ".cache" / "data" / "obama.jpg").read_bytes()
    c = grpcclient.InferenceServerClient(url)
    try:
        for kind, (data, expect) in _kinds(good).items():
            t = grpcclient.InferInput("IMAGE", [len(data)], "UINT8")
            t.set_data_from_numpy(np.frombuffer(data, np.uint8))
            if expect is None:
                assert c.infer("face_analyze", [t]).as_numpy("BOXES").shape == (1, 4), kind
                continue
            with pytest.raises(InferenceServerException) as e:
                c.infer("face_analyze", [t])
            assert re.search(expect, e.value.message()), (kind, e.value.message())
        assert c.is_server_ready() and c.is_model_ready("face_analyze")
    finally:
        c.close()

"""studio/ gateway without a server: limits, sniffing, error messages, headers, model metadata (fake client)."""
from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from typing import NamedTuple

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from client import ServerError
from client.api import ModelInfo
from studio import metadata
from studio.app import Latest, Superseded, create_app
from studio.photos import PhotoStore, UploadError, sniff


def png(w=64, h=48, color=(200, 150, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


def png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (no real pixel data): what a decompression bomb looks like."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


class Spec(NamedTuple):
    """Duck-types facefront.repository.Control, what the client's ModelInfo.control_specs holds."""
    name: str
    low: float
    high: float
    help: str = ""
    switch: bool = False


class FakeClient:
    """Stands in for FrontalizeClient: mesh3d (pose) and liveportrait (pose + controls), records the calls."""
    protocol = "grpc"

    def __init__(self, faces=1, parameters=None, output_face=True, fail=None):
        self.calls, self.faces, self.output_face, self.fail = [], faces, output_face, fail
        self.parameters = parameters or {}

    def models(self):
        return ["liveportrait", "mesh3d", "oldlp", "scaleway"]

    def model_info(self, name):
        return {"mesh3d": ModelInfo("mesh3d", "mesh3d_frontalize", True),
                "scaleway": ModelInfo("scaleway", "scaleway_frontalize", False),
                # the client's view of a `controls` parameter with ranges, and of an older names-only one
                "liveportrait": ModelInfo("liveportrait", "liveportrait_frontalize", True,
                                          controls=("relative", "smile"),
                                          control_specs=(Spec("relative", 0, 1, "own pose", True),
                                                         Spec("smile", -0.5, 1.5, "smile"))),
                "oldlp": ModelInfo("oldlp", "oldlp_frontalize", True, controls=("smile", "grin_x"))}[name]

    def model_parameters(self, ensemble):
        return dict(self.parameters.get(ensemble, {}))

    def analyze(self, data, all_faces=False):
        is_output = Image.open(io.BytesIO(data)).size == (32, 32)
        if (is_output and not self.output_face) or (not is_output and not self.faces):
            raise ServerError("no face was found in the 64x48 image")
        pose = {"yaw": 1.25, "pitch": -2.5, "roll": 0.0} if is_output else {"yaw": -20.0, "pitch": 3.0, "roll": 1.0}
        return [{"box": (10.0, 5.0, 40.0, 40.0), "score": 0.9, "landmarks": np.zeros((468, 3), np.float32),
                 "pose": pose}] * (self.faces if not is_output else 1)

    def frontalize(self, data, model, yaw=0.0, pitch=0.0, roll=0.0, **controls):
        if self.fail:
            raise self.fail
        self.calls.append({"model": model, "yaw": yaw, "pitch": pitch, "roll": roll, "controls": controls,
                           "bytes": len(data)})
        return np.full((32, 32, 3), 128, np.uint8)

    def close(self):
        pass


def app_with(fake=None, **kw):
    fake = fake or FakeClient()
    return TestClient(create_app("fake:1", client_factory=lambda: fake, **kw), raise_server_exceptions=False), fake


def upload(tc, data=None):
    r = tc.post("/api/photos", content=png() if data is None else data)
    return r


def assert_clean_error(r, status, text):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and text in body["error"], body
    assert "Traceback" not in r.text and "/work" not in r.text and ".py" not in r.text


def test_page_and_static_files_carry_strict_headers():
    tc, _ = app_with()
    r = tc.get("/")
    assert r.status_code == 200 and 'data-testid="upload"' in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    js = tc.get("/static/studio.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    # only the files in the package's static folder: no traversal, no other file of the package
    for path in ("/static/app.py", "/static/..%2fapp.py", "/static/../app.py", "/static/%2e%2e/__init__.py",
                 "/static/nothing.css", "/docs", "/openapi.json"):
        assert_clean_error(tc.get(path), 404, "not found")


def test_every_testid_the_tests_rely_on_is_on_the_page():
    html = (metadata.Path(__file__).resolve().parents[1] / "studio" / "static" / "index.html").read_text()
    for tid in ("upload", "model", "frontalize", "result", "latency", "compare", "error", "yaw", "pitch"):
        assert f'data-testid="{tid}"' in html, tid
    assert 'role="alert"' in html and "<script>" not in html and "http" not in html.replace("http-equiv", "")
    js = (metadata.Path(__file__).resolve().parents[1] / "studio" / "static" / "studio.js").read_text()
    assert "compare-tile" in js and "fetch(" in js and "http://" not in js and "https://" not in js


def test_upload_sniffs_the_bytes_and_reports_faces():
    tc, fake = app_with(FakeClient(faces=2))
    r = upload(tc)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["width"] == 64 and body["height"] == 48 and body["mime"] == "image/png"
    assert len(body["faces"]) == 2 and body["faces"][0]["box"] == [10.0, 5.0, 40.0, 40.0]
    assert body["faces"][0]["pose"]["yaw"] == -20.0


@pytest.mark.parametrize("data, status, text", [
    (b"", 400, "empty"),
    (b"%PDF-1.4 this is not a picture at all", 415, "not an image"),
    (b"\x89PNG\r\n\x1a\n-truncated", 415, "damaged or truncated"),
    (png_header(8000, 6000), 413, "megapixels"),        # 48 MP > the server's 40 MP
    (png_header(20000, 20000), 413, "megapixels"),      # past PIL's own bomb limit too
])
def test_upload_refuses_what_the_server_would(data, status, text):
    tc, fake = app_with()
    assert_clean_error(upload(tc, data), status, text)
    assert fake.calls == []


def test_upload_size_limit_counts_the_bytes_not_the_header():
    tc, _ = app_with(max_bytes=2000)
    assert_clean_error(upload(tc, png(400, 400, (1, 2, 3)) + b"\0" * 3000), 413, "too large")
    # chunked (no Content-Length): the stream is counted as it arrives
    r = tc.post("/api/photos", content=iter([b"\0" * 1500, b"\0" * 1500]))
    assert_clean_error(r, 413, "too large")


def test_gif_tiff_formats_by_content_not_name():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="TIFF")
    with pytest.raises(UploadError, match="TIFF images are not supported"):
        sniff(buf.getvalue())
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    assert sniff(buf.getvalue()) == ("image/jpeg", 8, 8)


def test_no_face_is_a_clear_message():
    tc, _ = app_with(FakeClient(faces=0))
    assert_clean_error(upload(tc), 422, "no face was found in this photo")


def test_unreachable_triton_is_a_clear_message():
    from facefront.serving.server import free_ports
    (port,) = free_ports(1)
    tc = TestClient(create_app(f"127.0.0.1:{port}", timeout=5), raise_server_exceptions=False)
    t0 = time.monotonic()
    assert_clean_error(tc.get("/api/models"), 503, f"Triton server at 127.0.0.1:{port} cannot be reached")
    assert_clean_error(upload(tc), 503, "cannot be reached")
    assert time.monotonic() - t0 < 30


def test_models_report_pose_controls_ranges_and_weights(tmp_path):
    params = {"liveportrait_frontalize": {"pose_range": '{"yaw": [-45, 45]}', "weights": "synthetic"},
              "mesh3d_frontalize": {"weights": "none"}}
    tc, _ = app_with(FakeClient(parameters=params))
    models = {m["name"]: m for m in tc.get("/api/models").json()["models"]}
    assert set(models) == {"liveportrait", "mesh3d", "oldlp", "scaleway"}
    lp = models["liveportrait"]
    assert lp["pose"] and lp["weights"] == "synthetic"
    assert lp["controls"] == [
        {"name": "relative", "min": 0, "max": 1, "help": "own pose", "switch": True, "source": "server"},
        {"name": "smile", "min": -0.5, "max": 1.5, "help": "smile", "switch": False, "source": "server"}]
    assert lp["pose_range"] == {"yaw": [-45, 45], "pitch": [-90, 90], "roll": [-90, 90]}
    old = {c["name"]: c for c in models["oldlp"]["controls"]}
    assert (old["smile"]["min"], old["smile"]["max"], old["smile"]["source"]) == (-0.3, 1.3, "documented")
    assert (old["grin_x"]["min"], old["grin_x"]["max"]) == metadata.FALLBACK_RANGE
    assert models["mesh3d"]["weights"] == "none" and models["mesh3d"]["controls"] == []
    assert models["scaleway"]["pose"] is False and models["scaleway"]["weights"] == "unknown"
    assert models["scaleway"]["pose_range"] == {}


def test_a_model_with_an_unreadable_config_is_listed_as_skipped():
    params = {"mesh3d_frontalize": {"pose_range": "[not json"}}
    tc, _ = app_with(FakeClient(parameters=params))
    body = tc.get("/api/models").json()
    assert "mesh3d" not in {m["name"] for m in body["models"]} and "liveportrait" in {m["name"] for m in body["models"]}
    assert body["skipped"]["mesh3d"].startswith("mesh3d_frontalize pose_range parameter: expected JSON")


def test_pose_range_parameter_is_checked():
    assert metadata.parse_pose_range("", "x")["pitch"] == (-90, 90)
    assert metadata.parse_pose_range('{"roll": [-30, 30.5]}', "x")["roll"] == (-30, 30.5)
    for bad in ('{"yaw": [10, -10]}', '{"yaw": 5}', "[1, 2", '{"yaw": ["a", 1]}'):
        with pytest.raises(ValueError, match="x: expected JSON"):
            metadata.parse_pose_range(bad, "x")


def test_render_forwards_pose_and_controls_and_checks_ranges():
    tc, fake = app_with()
    tc.get("/api/models")
    pid = upload(tc).json()["id"]
    r = tc.post("/api/render", json={"photo": pid, "model": "liveportrait", "yaw": 12.5, "pitch": -3, "roll": 4,
                                     "controls": {"smile": 0.5, "relative": 0}})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)
    assert float(r.headers["x-studio-ms"]) >= float(r.headers["x-triton-ms"]) >= 0
    assert "content-security-policy" in r.headers
    (call,) = fake.calls
    # 0 means "no change" and is left out; the photo's bytes are the upload's, from memory
    assert call == {"model": "liveportrait", "yaw": 12.5, "pitch": -3, "roll": 4, "controls": {"smile": 0.5},
                    "bytes": len(png())}
    bad = [({"model": "liveportrait", "yaw": 91}, 400, "yaw 91 is outside liveportrait's range -90..90"),
           ({"model": "liveportrait", "controls": {"smile": 2}}, 400, "smile 2 is outside its range -0.5..1.5"),
           ({"model": "liveportrait", "controls": {"grin": 1}}, 400, "has no control 'grin'"),
           ({"model": "scaleway", "controls": {"smile": 1}}, 400, "has no control 'smile'"),
           ({"model": "nope"}, 400, "model 'nope' is not served"),
           ({"model": "mesh3d", "yaw": "left"}, 400, "bad request: yaw"),
           ({"model": "mesh3d", "photo": "gone"}, 404, "no longer held"),
           ]
    for extra, status, text in bad:
        assert_clean_error(tc.post("/api/render", json={"photo": pid, **extra}), status, text)
    assert len(fake.calls) == 1
    assert_clean_error(tc.post("/api/render", content=b"{not json", headers={"content-type": "application/json"}),
                       400, "bad request")


def test_server_refusal_and_internal_errors_are_one_line():
    tc, fake = app_with(FakeClient(fail=ServerError("in ensemble 'mesh3d_frontalize', POSE must be within +-90\n  at x")))
    pid = upload(tc).json()["id"]
    assert_clean_error(tc.post("/api/render", json={"photo": pid, "model": "mesh3d"}), 422,
                       "the server refused this: in ensemble 'mesh3d_frontalize', POSE must be within +-90 at x")
    fake.fail = RuntimeError("boom in /work/main/secret/path.py")
    r = tc.post("/api/render", json={"photo": pid, "model": "mesh3d"})
    assert_clean_error(r, 500, "internal error in the studio gateway")
    assert "boom" not in r.text


def test_compare_measures_residual_pose_of_the_output():
    tc, fake = app_with()
    pid = upload(tc).json()["id"]
    body = tc.post("/api/compare", json={"photo": pid, "model": "mesh3d"}).json()
    assert body["model"] == "mesh3d" and body["residual"] == {"yaw": 1.2, "pitch": -2.5} and body["note"] == ""
    assert body["image"].startswith("data:image/png;base64,") and body["latency_ms"] >= 0
    assert fake.calls[-1]["yaw"] == 0 and fake.calls[-1]["controls"] == {}
    fake.output_face = False
    body = tc.post("/api/compare", json={"photo": pid, "model": "scaleway"}).json()
    assert body["residual"] is None and body["note"] == "no face found in the output"


def test_older_waiting_renders_are_superseded_before_reaching_triton():
    latest, ran = Latest(), []
    gate = threading.Event()

    def slow():
        gate.wait(5)
        ran.append(1)
        return 1
    first = threading.Thread(target=latest.run, args=("page", 1, slow))
    first.start()
    time.sleep(0.05)
    results = {}

    def later(seq):
        try:
            results[seq] = latest.run("page", seq, lambda: ran.append(seq) or seq)
        except Superseded:
            results[seq] = "superseded"
    waiting = [threading.Thread(target=later, args=(s,)) for s in (2, 3)]
    for t in waiting:
        t.start()
        time.sleep(0.05)
    gate.set()
    first.join(), [t.join() for t in waiting]
    assert results == {2: "superseded", 3: 3} and ran == [1, 3]
    assert latest.run("other-page", 1, lambda: "independent") == "independent"


def test_photos_are_held_in_memory_only_and_bounded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = PhotoStore(capacity=2)
    a, b = store.add(b"a", "image/png", 1, 1, ()), store.add(b"b", "image/png", 1, 1, ())
    store.get(a.id)                        # a used last: b is the one dropped
    c = store.add(b"c", "image/png", 1, 1, ())
    assert store.get(a.id).data == b"a" and store.get(c.id).data == b"c"
    with pytest.raises(UploadError, match="no longer held"):
        store.get(b.id)
    big = PhotoStore(capacity=10, max_total=10)
    big.add(b"x" * 8, "image/png", 1, 1, ()), big.add(b"y" * 8, "image/png", 1, 1, ())
    assert len(big) == 1
    tc, _ = app_with()
    assert upload(tc).status_code == 200
    assert list(tmp_path.iterdir()) == []  # nothing written to disk


def test_command_line_refuses_bad_arguments_in_one_line(capsys, tmp_path):
    import socket

    from studio.__main__ import main
    assert main(["--port", "0"]) == 2
    assert main(["--repository", str(tmp_path / "missing")]) == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--port", str(port)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: --port must be 1..65535, not 0", f"error: --repository {tmp_path / 'missing'} is not a folder",
                   f"error: port {port} on 127.0.0.1 is already in use (another studio?); pick one with --port"]

"""client/ against the real CPU tritonserver (the session's `triton_server`): both protocols, CLI round trip."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import client.__main__ as cli
from client import FrontalizeClient, ServerError

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def face():
    from facefront.data import photo
    return photo("obama.jpg")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_frontalize_round_trip(triton_server, face, protocol):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with FrontalizeClient(url, protocol=protocol) as c:
        assert "scaleway" in c.models()
        info = c.model_info("scaleway")
        assert not info.pose
        out = c.frontalize(face, model="scaleway")
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        # same image as bytes and as pixels: the server sees a file either way
        assert c.frontalize(face.read_bytes()).shape == out.shape
        assert c.frontalize(np.asarray(Image.open(face).convert("RGB"))).shape == out.shape
        with pytest.raises(ValueError, match="no pose control"):
            c.frontalize(face, yaw=20)


def test_cli_round_trip(triton_server, face, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "face.jpg").write_bytes(face.read_bytes())
    (tmp_path / "in" / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n-truncated")
    rc = cli.main(["frontalize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--url", triton_server.grpc_url])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face.png"]
    assert Image.open(tmp_path / "out" / "face.png").mode == "RGB"
    assert "noise.png: FAILED" in err
    assert cli.main(["models", "--url", triton_server.http_url, "--protocol", "http"]) == 0
    assert "scaleway" in capsys.readouterr().out


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_analyze_round_trip(triton_server, face, protocol):
    from facefront.data import photo
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with FrontalizeClient(url, protocol=protocol) as c:
        faces = c.analyze(face)
        assert len(faces) == 1
        f = faces[0]
        assert len(f["box"]) == 4 and 0.5 < f["score"] <= 1
        assert f["landmarks"].shape == (468, 3) and f["landmarks"].dtype == np.float32
        assert set(f["pose"]) == {"yaw", "pitch", "roll"}
        group = c.analyze(photo("faceapi_sample1.jpg"), all_faces=True)
        assert len(group) == 3
        area = [(g["box"][2] - g["box"][0]) * (g["box"][3] - g["box"][1]) for g in group]
        assert area == sorted(area, reverse=True)
        with pytest.raises(ServerError, match="no face was found in the 32x24 image"):
            c.analyze(np.zeros((24, 32, 3), np.uint8))
        assert "face_analyze" not in c.models()  # models() lists frontalize families only


def test_cli_analyze_prints_one_json_line_per_image(triton_server, face, tmp_path, capsys):
    import json
    (tmp_path / "blank.png").write_bytes(b"")
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "black.png")
    rc = cli.main(["analyze", str(face), str(tmp_path / "black.png"), "--all", "--url", triton_server.grpc_url])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 1
    assert [line["file"] for line in lines] == [str(face), str(tmp_path / "black.png")]
    (one,) = lines[0]["faces"]
    assert len(one["landmarks"]) == 468 and len(one["box"]) == 4 and set(one["pose"]) == {"yaw", "pitch", "roll"}
    assert "no face was found" in lines[1]["error"]

"""client/ against the real CPU tritonserver (the session's `triton_server`): both protocols, CLI round trip."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import client.__main__ as cli
from client import FrontalizeClient

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

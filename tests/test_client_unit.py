"""client/ without a server: image handling, input discovery, pose/controls checks, the CLI's lines and exit codes."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

import client.__main__ as cli
from client import images
from client.api import ModelInfo, ServerError, controls_vector, parse_model_info, pose_vector
from tests.conftest import free_ports


def png(w=8, h=6) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 99, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_client_stays_light():
    import subprocess
    code = "import sys, client, client.__main__; bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'export') if m in sys.modules]; print(bad)"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_encode_accepts_path_bytes_and_array(tmp_path):
    data = png()
    (tmp_path / "a.png").write_bytes(data)
    assert images.encode(tmp_path / "a.png") == data
    assert images.encode(str(tmp_path / "a.png")) == data
    assert images.encode(data) == data
    arr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    back = np.asarray(Image.open(io.BytesIO(images.encode(arr))))
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("image, match", [
    (b"", "empty file"), (b"hello, not an image", "not an image file"),
    (np.zeros((4, 4, 3), np.float32), "uint8"), (np.zeros((4, 4, 4), np.uint8), "HxWx3"),
])
def test_encode_rejects_what_is_not_an_image(image, match):
    with pytest.raises(ValueError, match=match):
        images.encode(image)


def test_encode_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        images.encode(tmp_path / "nope.jpg")


def test_discover_files_folders_recursion_and_problems(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for p in ("d/b.JPG", "d/a.png", "d/notes.txt", "d/sub/c.webp", "x.dat"):
        (tmp_path / p).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    files, problems = images.discover([tmp_path / "x.dat", tmp_path / "d", tmp_path / "missing", tmp_path / "empty"])
    assert [f.name for f in files] == ["x.dat", "a.png", "b.JPG"]  # explicit file kept whatever its extension
    assert [(p.name, r.split(" ")[0]) for p, r in problems] == [("missing", "no"), ("empty", "no")]
    files, _ = images.discover([tmp_path / "d", tmp_path / "d" / "a.png"], recursive=True)
    assert [f.name for f in files] == ["a.png", "b.JPG", "c.webp"]  # sorted, no duplicates


def test_write_png_leaves_no_partial_file(tmp_path, monkeypatch):
    images.write_png(np.zeros((2, 2, 3), np.uint8), tmp_path / "ok.png")
    assert Image.open(tmp_path / "ok.png").size == (2, 2)

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        images.write_png(np.zeros((2, 2, 3), np.uint8), tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png"]


META = {"inputs": [{"name": "IMAGE", "datatype": "UINT8"}, {"name": "POSE", "datatype": "FP32"},
                   {"name": "CONTROLS", "datatype": "FP32"}]}
CONFIG = {"parameters": {"controls": {"string_value": '[{"name": "smile", "range": [-0.3, 1.3], "help": "smile"}, '
                                                      '{"name": "eyes", "range": [-20, 5]}]'}}}


def test_parse_model_info():
    info = parse_model_info("lp_frontalize", META, CONFIG)
    assert (info.family, info.ensemble, info.pose, info.image_datatype, info.controls) == \
        ("lp", "lp_frontalize", True, "UINT8", ("smile", "eyes"))
    assert [(c.low, c.high, c.help) for c in info.control_specs] == [(-0.3, 1.3, "smile"), (-20.0, 5.0, "")]
    with pytest.raises(ValueError, match="controls parameter"):
        parse_model_info("lp_frontalize", META, {"parameters": {"controls": {"string_value": "smile, eyes"}}})
    plain = parse_model_info("scaleway_frontalize", {"inputs": [{"name": "IMAGE", "datatype": "BYTES"}]}, {})
    assert (plain.pose, plain.controls, plain.image_datatype) == (False, (), "BYTES")
    with pytest.raises(ValueError, match="not a frontalize ensemble"):
        parse_model_info("x_frontalize", {"inputs": [{"name": "INPUT", "datatype": "FP32"}]}, {})


def test_pose_rejected_on_models_without_pose():
    plain = ModelInfo("scaleway", "scaleway_frontalize", pose=False)
    assert pose_vector(plain, 0, 0, 0) is None
    with pytest.raises(ValueError, match="no pose control.*yaw=15"):
        pose_vector(plain, 15, 0, 0)
    posed = ModelInfo("mesh3d", "mesh3d_frontalize", pose=True)
    np.testing.assert_array_equal(pose_vector(posed, 15, -5, 2), [[15, -5, 2]])
    with pytest.raises(ValueError, match="finite"):
        pose_vector(posed, float("nan"), 0, 0)


def test_controls_out_of_range_refused_before_sending():
    info = parse_model_info("lp_frontalize", META, CONFIG)
    np.testing.assert_array_equal(controls_vector(info, {"smile": 1.3, "eyes": -20}), np.float32([[1.3, -20]]))
    with pytest.raises(ValueError, match=r"smile must be in \[-0.3, 1.3\]"):
        controls_vector(info, {"smile": 2})


def test_controls_vector_in_model_order():
    info = ModelInfo("lp", "lp_frontalize", pose=True, controls=("smile", "eyes"))
    assert controls_vector(info, {}) is None
    np.testing.assert_array_equal(controls_vector(info, {"eyes": 0.3}), np.array([[0, 0.3]], np.float32))
    with pytest.raises(ValueError, match="no control 'frown'.*smile, eyes"):
        controls_vector(info, {"frown": 1})
    with pytest.raises(ValueError, match="takes no controls"):
        controls_vector(ModelInfo("s", "s_frontalize", pose=False), {"smile": 1})


def test_cli_parses_options_after_inputs(tmp_path):
    args = cli.parse_args(["frontalize", "a.jpg", "-r", "b", "-o", str(tmp_path), "--yaw", "10",
                           "--control", "smile=0.5", "--protocol", "http"])
    assert (args.cmd, args.inputs, args.recursive, args.yaw, args.control, args.protocol) == \
        ("frontalize", ["a.jpg", "b"], True, 10.0, [("smile", 0.5)], "http")
    with pytest.raises(SystemExit) as e:
        cli.parse_args(["frontalize", "a.jpg", "-o", "x", "--control", "smile"])
    assert e.value.code == 2


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["frontalize", "--help"])
    assert "examples:" in capsys.readouterr().out


class FakeClient:
    """Stands in for FrontalizeClient: a 4x4 grey face for readable images, the server's error for 'refuse.png'."""
    def __init__(self, url=None, protocol="grpc", timeout=None):
        self.url = url or "fake:1"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def model_info(self, model):
        if model != "scaleway":
            raise ValueError(f"model {model!r} is not served at {self.url} (served: scaleway)")
        return ModelInfo("scaleway", "scaleway_frontalize", pose=False)

    def frontalize(self, image, model="scaleway", yaw=0, pitch=0, roll=0, **controls):
        images.encode(image)
        if str(image).endswith("refuse.png"):
            raise ServerError("no face found in the image")
        return np.full((4, 4, 3), 7, np.uint8)


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "FrontalizeClient", FakeClient)
    d = tmp_path / "in"
    (d / "more").mkdir(parents=True)
    (d / "a.png").write_bytes(png())
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    (d / "refuse.png").write_bytes(png())
    (d / "more" / "a.jpg").write_bytes(png())  # same stem as a.png
    return d


def test_cli_reports_each_bad_input_on_one_line_and_carries_on(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["frontalize", str(inputs), "-r", str(tmp_path / "missing.jpg"), "-o", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # nothing partial, no hidden temp files
    failed = [line for line in err if "FAILED" in line or "missing.jpg" in line]
    assert len(failed) == 4
    assert any("broken.jpg: FAILED: not an image file" in line for line in failed)
    assert any("refuse.png: FAILED: no face found" in line for line in failed)
    assert any("a.jpg: FAILED: output" in line and "same file stem" in line for line in failed)
    assert any("missing.jpg: no such file" in line for line in failed)
    assert err[-1] == f"1 written to {out}, 4 failed"
    assert any(line.startswith("[1/4] ") for line in err)


def test_cli_checks_model_and_pose_before_any_file(inputs, tmp_path, capsys):
    assert cli.main(["frontalize", str(inputs / "a.png"), "-o", str(tmp_path / "o"), "--yaw", "20"]) == 2
    assert "no pose control" in capsys.readouterr().err
    assert cli.main(["frontalize", str(inputs / "a.png"), "-o", str(tmp_path / "o"), "--model", "nope"]) == 2
    assert "not served" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_exit_2_when_server_unreachable(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(png())
    port = free_ports(1)[0]  # nothing listens there
    for proto in ("grpc", "http"):
        rc = cli.main(["frontalize", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                       "--protocol", proto, "--url", f"127.0.0.1:{port}", "--timeout", "5"])
        err = capsys.readouterr().err
        assert rc == 2
        assert f"cannot reach a Triton server at 127.0.0.1:{port} ({proto})" in err


def test_faces_from_outputs_and_their_json():
    from client.api import faces_from_outputs
    n = 2
    out = {"BOXES": np.arange(n * 4, dtype=np.float32).reshape(n, 4), "SCORES": np.array([0.9, 0.8], np.float32),
           "LANDMARKS": np.ones((n, 468, 3), np.float32), "POSE": np.array([[1, 2, 3], [4, 5, 6]], np.float32)}
    faces = faces_from_outputs(out)
    assert [f["box"] for f in faces] == [(0.0, 1.0, 2.0, 3.0), (4.0, 5.0, 6.0, 7.0)]
    assert faces[1]["pose"] == {"yaw": 4.0, "pitch": 5.0, "roll": 6.0} and faces[0]["landmarks"].shape == (468, 3)
    j = cli.face_json(faces[0], landmarks=False)
    assert j == {"box": [0.0, 1.0, 2.0, 3.0], "score": 0.9, "pose": {"yaw": 1.0, "pitch": 2.0, "roll": 3.0}}
    assert len(cli.face_json(faces[0])["landmarks"]) == 468
    with pytest.raises(ServerError, match="inconsistent shapes"):
        faces_from_outputs({**out, "POSE": out["POSE"][:1]})


class FakeAnalyzeClient(FakeClient):
    def analyze(self, image, all_faces=False):
        from client.api import ModelNotServed
        if self.url == "no-model:1":
            raise ModelNotServed("face_analyze is not served at no-model:1")
        images.encode(image)
        if str(image).endswith("refuse.png"):
            raise ServerError("no face was found in the 8x6 image")
        face = {"box": (1.0, 2.0, 3.0, 4.0), "score": 0.9, "landmarks": np.zeros((468, 3), np.float32),
                "pose": {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}}
        return [face, face] if all_faces else [face]


def test_cli_analyze_json_lines_errors_and_exit_codes(inputs, monkeypatch, capsys):
    import json
    monkeypatch.setattr(cli, "FrontalizeClient", FakeAnalyzeClient)
    rc = cli.main(["analyze", str(inputs / "a.png"), str(inputs / "broken.jpg"), str(inputs / "refuse.png"),
                   "--all", "--no-landmarks"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 1
    assert len(lines[0]["faces"]) == 2 and "landmarks" not in lines[0]["faces"][0]
    assert lines[1]["error"].startswith("not an image file")
    assert lines[2]["error"] == "no face was found in the 8x6 image"
    assert cli.main(["analyze", str(inputs / "a.png")]) == 0
    assert len(json.loads(capsys.readouterr().out)["faces"]) == 1
    # a model that is not served stops at once with exit 2
    assert cli.main(["analyze", str(inputs / "a.png"), str(inputs / "refuse.png"), "--url", "no-model:1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "face_analyze is not served" in captured.err


def test_model_parameters_and_pose_range_are_read_from_the_repository():
    """What the page and other clients read from a model's config: pose_range on every pose-capable family."""
    import json

    from facefront import repository
    for name, fam in repository.families().items():
        params = repository.parameters(repository.config(fam.ensemble))
        if fam.pose:
            ranges = json.loads(params["pose_range"])
            assert set(ranges) == {"yaw", "pitch", "roll"} and all(lo < 0 < hi for lo, hi in ranges.values()), name

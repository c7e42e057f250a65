"""The face networks' runtimes: LiteRT (XNNPACK on MediaPipe's own tflite files, the CPU default) against
onnxruntime (the ONNX translation), in-process and as the served CPU leaves, and the fallback to onnxruntime
when LiteRT does not import."""
import logging
import sys

import numpy as np
import pytest

from facefront.data import load_rgb
from facefront.face.analysis import FaceAnalyzer, LiteRTNetworks, OrtNetworks, requested_runtime
from facefront.sessions import litert_import_error
from tests.test_face_analysis import MAX_TOL, MEAN_TOL, _mediapipe_landmarks

needs_litert = pytest.mark.skipif(litert_import_error() is not None, reason=f"LiteRT: {litert_import_error()}")

# LiteRT vs onnxruntime on the same networks: measured max 0.006 px (single faces) and 0.017 px (faceapi_sample1's
# three faces), i.e. < 0.01 % of the inter-ocular distance; the bound leaves 30x room, far inside docs/face.md's
# tolerance against MediaPipe (mean < 1 %, max < 3 %).
RUNTIME_TOL = 0.003


def _no_litert(monkeypatch):
    # what a machine without the ai-edge-litert wheel sees
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)


@pytest.fixture(scope="module")
def analyzers():
    return FaceAnalyzer(runtime="litert"), FaceAnalyzer(runtime="onnxruntime")


@needs_litert
@pytest.mark.parametrize("name", ["obama2.jpg", "biden.jpg"])
def test_litert_landmarks_match_onnxruntime_and_mediapipe(analyzers, name):
    lite, ort = analyzers
    assert isinstance(lite.networks, LiteRTNetworks) and type(ort.networks) is OrtNetworks
    image = load_rgb(name)
    ref = _mediapipe_landmarks(image)
    iod = np.linalg.norm(ref[33, :2] - ref[263, :2])
    a, b = lite.analyze(image, max_faces=1)[0], ort.analyze(image, max_faces=1)[0]
    assert a.landmarks.shape == (468, 3) and a.landmarks.dtype == np.float32
    assert np.abs(a.landmarks - b.landmarks).max() / iod < RUNTIME_TOL
    assert np.abs(np.array(a.box) - np.array(b.box)).max() / iod < RUNTIME_TOL and abs(a.score - b.score) < 1e-3
    err = np.linalg.norm(a.landmarks[:, :2] - ref[:, :2], axis=1) / iod
    assert err.mean() < MEAN_TOL and err.max() < MAX_TOL, (err.mean(), err.max())


@needs_litert
def test_litert_group_photo_same_faces_as_onnxruntime(analyzers):
    lite, ort = analyzers
    image = load_rgb("faceapi_sample1.jpg")          # tiles: batches of detector windows, several landmark crops
    fa, fb = lite.analyze(image), ort.analyze(image)
    assert len(fa) == len(fb) == 3
    for a, b in zip(fa, fb, strict=True):
        iod = np.linalg.norm(b.landmarks[33, :2] - b.landmarks[263, :2])
        assert np.abs(a.landmarks - b.landmarks).max() / iod < RUNTIME_TOL


def test_without_litert_analysis_falls_back_to_onnxruntime(monkeypatch, caplog):
    _no_litert(monkeypatch)
    assert litert_import_error() is not None
    with caplog.at_level(logging.WARNING, logger="facefront.face.analysis"):
        a = FaceAnalyzer(runtime="litert")
    assert type(a.networks) is OrtNetworks and a.networks.runtime == "onnxruntime"
    assert "LiteRT is not available" in caplog.text
    assert len(a.analyze(load_rgb("obama.jpg"), max_faces=1)) == 1


def test_runtime_setting(monkeypatch):
    monkeypatch.delenv("FACEFRONT_FACE_RUNTIME", raising=False)
    assert requested_runtime() == "litert" and requested_runtime("auto") == "litert"
    assert requested_runtime("onnxruntime") == "onnxruntime"
    monkeypatch.setenv("FACEFRONT_FACE_RUNTIME", "onnxruntime")
    assert requested_runtime() == "onnxruntime" and requested_runtime("litert") == "litert"   # an argument wins
    with pytest.raises(ValueError, match="face runtime"):
        requested_runtime("tensorflow")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from export.face import export_spec
    repo = tmp_path_factory.mktemp("repo")
    export_spec.export(repo, log=lambda *a: None)
    return repo


def _leaf(repo, net, **params):
    from facefront import repository
    from facefront.face.leaf_stage import FaceLeafStage
    p = {**repository.stage_parameters(net), **params}
    return FaceLeafStage.standalone(p, net, repo / net / "1")


@pytest.mark.parametrize("net,size", [("face_detector", 128), ("face_landmarks", 192)])
def test_cpu_leaf_runs_litert_and_matches_onnxruntime(exported, monkeypatch, capsys, net, size):
    monkeypatch.delenv("FACEFRONT_FACE_RUNTIME", raising=False)
    ort = _leaf(exported, net, face_runtime="onnxruntime")
    assert ort.runtime == "onnxruntime"
    x = np.random.default_rng(0).uniform(0, 1, (3, size, size, 3)).astype(np.float32)
    want = ort.run({"input": x})
    if litert_import_error() is None:
        lite = _leaf(exported, net)                   # the CPU config's setting
        assert lite.runtime == "litert" and "LiteRT" in capsys.readouterr().out
        assert set(lite.OUTPUTS) == set(ort.OUTPUTS) and lite.INPUTS == ort.INPUTS == ("input",)
        got = lite.run({"input": x})
        for k in want:
            assert got[k].shape == want[k].shape and got[k].dtype == np.float32
            np.testing.assert_allclose(got[k], want[k], atol=2e-3, rtol=1e-3)
    _no_litert(monkeypatch)
    fallback = _leaf(exported, net)
    assert fallback.runtime == "onnxruntime" and "LiteRT unavailable" in capsys.readouterr().out
    for k, v in fallback.run({"input": x}).items():
        np.testing.assert_array_equal(v, want[k])


@needs_litert
def test_cpu_leaf_without_tflite_export_falls_back(exported, tmp_path, monkeypatch, capsys):
    import shutil
    monkeypatch.delenv("FACEFRONT_FACE_RUNTIME", raising=False)
    old = tmp_path / "face_detector" / "1"                # an export from before model.tflite
    shutil.copytree(exported / "face_detector" / "1", old)
    (old / "model.tflite").unlink()
    stage = _leaf(tmp_path, "face_detector")
    assert stage.runtime == "onnxruntime" and "model.tflite" in capsys.readouterr().out

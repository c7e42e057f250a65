"""bench.metrics / bench.lpips / bench.identity: values that can be checked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from bench import metrics as mx


def test_psnr_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert mx.psnr(a, a) == float("inf") and mx.ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    mse = ((a.astype(float) - b) ** 2).mean()
    assert mx.psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / mse))
    assert mx.ssim(a, b) < 1.0


def test_frechet_distance_closed_form():
    # diagonal Gaussians: d^2 = |mu1-mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2))
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, 3.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    want = 1 + 4 + (1 + 9 - 2 * 3) + (4 + 1 - 2 * 2)
    assert mx.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want)
    f = np.random.default_rng(1).normal(size=(200, 4))
    assert mx.fd_from_feats(f, f) == pytest.approx(0.0, abs=1e-6)


def test_frechet_labels_implementation_and_small_sets():
    f = np.random.default_rng(2).normal(size=(20, 3))
    r = mx.frechet(f, f + 1.0, use_cleanfid=False)
    assert r["implementation"].startswith("in-process") and r["value"] == pytest.approx(3.0, rel=1e-6)
    assert mx.frechet(f[:1], f, use_cleanfid=False)["value"] is None


@pytest.mark.skipif(mx.cleanfid_python() is None, reason="optional clean-fid venv not installed (python -m bench.metrics setup-cleanfid)")  # noqa: E501
def test_in_process_formula_matches_cleanfid():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(50, 6)) * 1.5 + 0.3
    assert mx.cleanfid_fd(a, b) == pytest.approx(mx.fd_from_feats(a, b), rel=1e-6)


def test_pose_summary_and_error():
    s = mx.pose_summary([(1, 2), (-8, 0), (20, 1)])
    assert s["mean_abs_yaw"] == pytest.approx(29 / 3) and s["mean_abs_pitch"] == pytest.approx(1.0)
    assert s["within_5deg"] == pytest.approx(1 / 3) and s["within_10deg"] == pytest.approx(2 / 3)
    e = mx.pose_error([(20, 0), (0, 10)], [(15, 1), (2, 7)])
    assert e["yaw_mae"] == pytest.approx(3.5) and e["pitch_mae"] == pytest.approx(2.0)
    assert mx.pose_summary([]) == {"n": 0}


def test_expression_distance_ignores_pose_and_scale():
    from facefront.face.mesh import canonical
    from facefront.face.pose import rotation
    v = canonical().vertices.astype(np.float64)
    moved = 3.0 * v @ rotation(25, -10, 5).T + np.array([100.0, 50.0, 0.0])
    assert mx.expression_distance(v, moved) == pytest.approx(0.0, abs=1e-6)
    open_mouth = v.copy()
    open_mouth[v[:, 1] >= 2.5, 1] += 0.5  # lower face moves down 0.5 cm
    assert mx.expression_distance(v, open_mouth) > 0.05


def test_lpips_module_shapes_and_identity():
    pytest.importorskip("torch")
    from bench import lpips
    try:
        lpips.weights_file("alex")
    except lpips.WeightsUnavailable as e:
        pytest.skip(str(e))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    assert lpips.distance(a, a)[0] == pytest.approx(0.0, abs=1e-7)
    d = lpips.distance([a, a], [b, a])
    assert d.shape == (2,) and d[0] > 0.01 and d[1] == pytest.approx(0.0, abs=1e-7)
    assert lpips.vgg16_features([a, b], size=64).shape == (2, 512)


def test_arcface_five_points_and_onnx(tmp_path):
    torch = pytest.importorskip("torch")
    from bench import identity
    from facefront.face.mesh import canonical
    lm = canonical().vertices * 20 + np.array([100, 100, 0])
    pts = identity.five_points(lm)
    assert pts.shape == (5, 2) and pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
    # a stand-in recognition net with ArcFace's interface: 1x3x112x112 -> 1x8
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    path = tmp_path / "arc.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 112, 112), str(path), input_names=["data"], dynamo=False)
    rgb = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    af = identity.ArcFace(path)
    e = af.embedding(rgb, lm)
    assert e.shape == (8,) and identity.cosine(e, e) == pytest.approx(1.0)

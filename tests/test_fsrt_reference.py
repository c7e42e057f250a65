"""FSRT inference math (absolute / relative with adapt_scale), the chunked decoder, and our driving recipe:
mesh3d's render of the same crop at the requested pose drives the decoder in absolute mode."""
import numpy as np
import pytest
import torch

from export.fsrt import reference
from export.fsrt.scene import pixel_grid

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def nets():
    return reference.build()


def _square(cx, cy, side):
    """10 keypoints on a square (4 corners + 6 inside), 1x10x2: hull area side^2."""
    h = side / 2
    pts = [(-h, -h), (h, -h), (h, h), (-h, h), (0, 0), (0.1 * h, 0), (0, 0.1 * h), (-0.1 * h, 0), (0, -0.1 * h),
           (0.2 * h, 0.2 * h)]
    return torch.tensor([[(cx + x, cy + y) for x, y in pts]], dtype=torch.float32)


def test_absolute_and_relative_math_on_a_hand_made_case():
    kp_src = _square(0.1, 0.0, 0.5)          # area 0.25
    kp_d0 = _square(0.0, 0.2, 0.25)          # area 0.0625: the driver's face is half the source's size
    move = torch.tensor([0.04, -0.02])
    kp_d = kp_d0 + move
    # absolute: the driver's keypoints as they are
    kp, s = reference.normalize_kp(kp_src, kp_d, kp_d0)
    assert s == 1.0 and torch.equal(kp, kp_d)
    # relative, no scale: the source's geometry moved by the driver's motion since its first frame
    kp, s = reference.normalize_kp(kp_src, kp_d, kp_d0, relative=True)
    assert s == 1.0
    assert torch.allclose(kp, kp_src + move, atol=1e-7)
    # relative with adapt_scale: the motion is scaled by sqrt(area_src / area_d0) = 2
    kp, s = reference.normalize_kp(kp_src, kp_d, kp_d0, relative=True, adapt_scale=True)
    assert s == pytest.approx(2.0, rel=1e-6)
    assert torch.allclose(kp, kp_src + 2 * move, atol=1e-6)
    assert reference.hull_area(kp_src[0].numpy()) == pytest.approx(0.25, rel=1e-6)
    with pytest.raises(ValueError, match="kp_driving_initial"):
        reference.normalize_kp(kp_src, kp_d, None, relative=True)


def test_pixel_grid_is_upstreams():
    g = pixel_grid(256)
    assert g.dtype == torch.float32 and g.shape == (256, 256, 2)
    j, i = 7, 200
    assert g[i, j, 0].item() == (j + 0.5 - 128) / 128 and g[i, j, 1].item() == (i + 0.5 - 128) / 128
    assert pixel_grid(128)[0, 0, 0].item() == -127 / 128


def test_chunked_decoder_equals_unchunked(nets):
    rng = np.random.default_rng(1)
    z = torch.from_numpy(rng.standard_normal((2, 1024, 768)).astype(np.float32))
    px = pixel_grid(256).reshape(1, -1, 2)[:, rng.choice(65536, 300, replace=False)].expand(2, 300, 2)
    kp = torch.from_numpy(rng.uniform(-0.3, 0.3, (2, 10, 2)).astype(np.float32))
    ex = torch.from_numpy(rng.standard_normal((2, 256)).astype(np.float32))
    with torch.no_grad():
        whole = nets.decoder(z, px, kp, ex)
        chunked = nets.decoder(z, px, kp, ex, chunk=128)              # uneven last chunk
        per_pixel_kp = nets.decoder(z, px, kp[:, None].expand(2, 300, 10, 2), ex, chunk=100)  # upstream's form
        alone = nets.decoder(z[1:], px[1:, :10], kp[1:], ex[1:])
    assert whole.shape == (2, 300, 3)
    assert torch.allclose(chunked, whole, atol=1e-5, rtol=0), (chunked - whole).abs().max()
    assert torch.allclose(per_pixel_kp, whole, atol=1e-5, rtol=0)
    assert torch.allclose(alone, whole[1:, :10], atol=1e-5, rtol=0)  # batch entries and pixels independent
    assert (whole[0] - whole[1]).abs().max() > 1e-3  # and the output does depend on the inputs


@pytest.fixture(scope="module")
def face_crop():
    """A real 256x256 face crop: mesh3d's frontal render of an offline photo (`make data`)."""
    from facefront.data import load_rgb
    from facefront.face import mesh3d
    return mesh3d.frontalize(load_rgb("obama.jpg"))


def test_driver_render_follows_the_requested_pose(face_crop):
    """The driver is mesh3d's render of the same crop; yaw > 0 turns the face toward image right, so the
    rendered nose tip lies right of the one at yaw < 0 (facefront/face/pose.py's convention)."""
    from facefront.face.mesh import NOSE_TIP
    right = reference.driver_render(face_crop, yaw=20)
    left = reference.driver_render(face_crop, yaw=-20)
    nose_r, nose_l = right.target_vertices[NOSE_TIP], left.target_vertices[NOSE_TIP]
    assert nose_r[0] - nose_l[0] > 10, (nose_r, nose_l)        # pixels, at 256
    up = reference.driver_render(face_crop, pitch=20)
    assert up.target_vertices[NOSE_TIP][1] < reference.driver_render(face_crop).target_vertices[NOSE_TIP][1]


def test_frontalize_drives_the_decoder_with_the_render_keypoints(face_crop, nets, monkeypatch):
    """The pose reaches the decoder: its query keypoints are the kp_detector's keypoints of mesh3d's render at
    that pose (absolute mode), and they, and the output, change with the pose. (Synthetic weights: the
    keypoints are not face-like, so their direction cannot be checked; the render's is, above.)"""
    from facefront.face.analysis import analyze
    landmarks = analyze(face_crop, max_faces=1)[0].landmarks
    seen = []
    decode = reference.decode
    monkeypatch.setattr(reference, "decode", lambda n, z, kp, e, **kw: seen.append(kp.clone()) or decode(n, z, kp, e, **kw))
    a = reference.frontalize(face_crop, yaw=20, nets=nets, size=32, landmarks=landmarks)  # 32 px keeps CI fast
    b = reference.frontalize(face_crop, yaw=-20, nets=nets, size=32, landmarks=landmarks)
    assert a.image.shape == (32, 32, 3) and a.raw.dtype == np.float32
    assert 0 <= a.image.min() and a.image.max() <= 1
    with torch.no_grad():
        kp_render, _ = reference.keypoints_and_expression(nets, torch.from_numpy(a.driver.transpose(2, 0, 1)[None].copy()))
    assert np.array_equal(seen[0][0].numpy(), a.kp_query) and np.array_equal(a.kp_query, a.kp_driving)
    assert np.allclose(a.kp_query, kp_render[0].numpy(), atol=1e-6)
    assert np.abs(a.kp_query - b.kp_query).max() > 1e-3        # the pose changed the query keypoints
    assert np.abs(a.kp_query - a.kp_source).max() > 1e-3       # absolute mode: not the source's keypoints
    assert np.array_equal(a.kp_source, b.kp_source)            # the same source encoding for both poses
    assert np.abs(a.raw - b.raw).max() > 1e-3                  # and the picture changed
    assert np.array_equal(a.driver, reference.driver_render(face_crop, 20, landmarks=landmarks).image / np.float32(255))


def test_reenact_relative_mode_and_bad_inputs(nets):
    imgs = reference.recipe_images(0)
    src, drv, drv0 = (imgs[k][0].transpose(1, 2, 0) for k in ("source", "driving", "driving_initial"))
    r = reference.reenact(src, drv, nets, relative=True, adapt_scale=True, driving_initial=drv0, size=24)
    assert r.image.shape == (24, 24, 3) and r.scale != 1.0
    assert np.allclose(r.kp_query, r.kp_source + (r.kp_driving - reference.keypoints_and_expression(
        nets, torch.from_numpy(imgs["driving_initial"]))[0][0].numpy()) * np.float32(r.scale), atol=1e-6)
    with pytest.raises(ValueError, match="256x256x3"):
        reference.reenact(src[:100], drv, nets)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reference.reenact(src * 2, drv, nets)
    with pytest.raises(ValueError, match="output size"):
        reference.reenact(src, drv, nets, size=1024)
    with pytest.raises(ValueError, match="driving_initial"):
        reference.reenact(src, drv, nets, relative=True)
    with pytest.raises(ValueError, match="yaw"):
        reference.frontalize(src, yaw=120, nets=nets)


def test_positional_encoding_arithmetic_is_upstreams_fp32():
    """argument = fp32(c * (2^o * fp32(pi))), sin block then cos block, d-major; kept fp32 under half inputs."""
    from export.fsrt.layers import PositionalEncoding
    pe = PositionalEncoding(16, -1)
    m = pe.multipliers("cpu").numpy()
    assert m.dtype == np.float32
    assert np.array_equal(m, (np.float32(np.pi) * 2.0 ** np.arange(-1, 15)).astype(np.float32))
    c = pixel_grid(256)[3, 250]                                    # (x, y) of one pixel
    out = pe(c[None]).numpy()[0]
    arg = (c.numpy()[:, None] * m[None, :]).astype(np.float32).reshape(-1)   # d-major, o-minor, in fp32
    assert np.allclose(out, np.concatenate([np.sin(arg), np.cos(arg)]), atol=2e-6)
    # the high octaves hold only the fp32 rounding of an integer multiple of pi: not 0, as exact maths says
    assert np.abs(out[14]) > 1e-5 and np.abs(out[14]) < 1e-2
    half = pe(c[None].half())
    assert half.dtype == torch.float16 and torch.equal(half, pe(c[None].half().float()).half())

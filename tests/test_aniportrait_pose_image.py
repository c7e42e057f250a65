"""AniPortrait pose images: upstream's landmark drawing, and re-posing a face's own landmarks (frontalization)."""
from __future__ import annotations

import numpy as np
import pytest

from export.aniportrait import pose_image
from facefront.face import pose
from facefront.face.mesh import canonical

SIZE = (256, 256)


def _face(yaw=0.0, pitch=0.0, roll=0.0) -> np.ndarray:
    """The canonical FaceMesh (frontal by construction) placed in a 256-px image, turned to the given pose."""
    v = canonical().vertices.astype(np.float64)
    v = (v - v.mean(0)) * (150.0 / np.ptp(v[:, 0]))
    v = v @ pose.rotation(yaw, pitch, roll).T
    return v + np.array([128.0, 136.0, 0.0])


def _mask(img: np.ndarray) -> np.ndarray:
    return img.max(axis=2) > 40


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_drawing_uses_upstream_edges_colours_and_size():
    img = pose_image.draw(_face()[:, :2], SIZE)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert 0.01 < _mask(img).mean() < 0.2          # thin lines on black
    # the face-oval colour (10, 200, 10) and a lip colour appear (as drawn, BGR order kept)
    flat = img.reshape(-1, 3).astype(int)
    assert (np.abs(flat - [10, 200, 10]).sum(1) < 30).sum() > 50
    assert (np.abs(flat - [20, 10, 180]).sum(1) < 30).sum() > 5
    assert len(pose_image.edges()) == 114


def test_frontal_face_gives_back_its_own_drawing():
    lm = _face()
    own = pose_image.draw(lm[:, :2], SIZE)
    again = pose_image.pose_image(lm, SIZE)
    assert _iou(_mask(own), _mask(again)) > 0.95
    assert np.abs(pose_image.repose(lm) - lm).max() < 1.0   # under a pixel


@pytest.mark.parametrize("yaw,pitch,roll", [(35, 0, 0), (-25, 10, 5), (0, -15, -20)])
def test_turned_face_is_drawn_frontal(yaw, pitch, roll):
    frontal = pose_image.draw(_face()[:, :2], SIZE)
    turned = _face(yaw, pitch, roll)
    assert _iou(_mask(pose_image.draw(turned[:, :2], SIZE)), _mask(frontal)) < 0.6   # the pose matters
    assert _iou(_mask(pose_image.pose_image(turned, SIZE)), _mask(frontal)) > 0.9


def test_repose_reaches_the_requested_pose():
    got = pose.head_pose(pose_image.repose(_face(-30, 5, 0), yaw=20, pitch=-10, roll=5))
    assert np.allclose(got, (20, -10, 5), atol=0.5)


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(ValueError, match="468"):
        pose_image.draw(np.zeros((10, 2)), SIZE)
    with pytest.raises(ValueError, match="finite"):
        pose_image.draw(np.full((468, 2), np.nan), SIZE)
    with pytest.raises(ValueError, match="yaw"):
        pose_image.repose(_face(), yaw=float("nan"))
    with pytest.raises(ValueError, match="pitch"):
        pose_image.repose(_face(), pitch=120)


def test_points_outside_the_image_drop_their_edges():
    lm = _face()[:, :2].copy()
    full = _mask(pose_image.draw(lm, SIZE)).sum()
    lm[pose_image.EDGE_GROUPS[0][1][0]] = -5.0       # the whole face oval off-image
    assert _mask(pose_image.draw(lm, SIZE)).sum() < full * 0.8

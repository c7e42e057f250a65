"""LivePortrait's python stages without the server: keypoints vs the reference chain, controls, crops, paste-back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facefront.liveportrait import kinematics as kin
from facefront.liveportrait import stages as lps
from facefront.serving.stage import InputError

REPO = Path(__file__).resolve().parents[1]


def _raw(b=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"pitch": rng.normal(0, 1, (b, 66)).astype(np.float32), "yaw": rng.normal(0, 1, (b, 66)).astype(np.float32),
            "roll": rng.normal(0, 1, (b, 66)).astype(np.float32), "t": rng.normal(0, 0.05, (b, 3)).astype(np.float32),
            "exp": rng.normal(0, 0.02, (b, 63)).astype(np.float32), "scale": np.full((b, 1), 1.3, np.float32),
            "kp": rng.uniform(-0.6, 0.6, (b, 63)).astype(np.float32)}


@pytest.fixture(scope="module")
def pipeline():
    import torch
    torch.set_num_threads(2)
    from export.liveportrait.reference import Pipeline
    return Pipeline()


@pytest.fixture(scope="module")
def keypoints(pipeline):
    return lps.Keypoints(pipeline.stitch_mlps)


def _controls(b=2, **named):
    c = np.zeros((b, len(lps.CONTROLS)), np.float32)
    for k, v in named.items():
        c[:, lps.CONTROLS.index(k)] = v
    return c


RATIOS = np.array([[0.3, 0.32, 0.1], [0.25, 0.2, 0.0]], np.float32)


def test_keypoints_match_the_reference_chain(keypoints, pipeline):
    raw = _raw()
    pose = np.array([[0, 0, 0], [15, -5, 3]], np.float32)          # yaw, pitch, roll
    x_s, x_d = keypoints(raw, pose, _controls(smile=0.5), RATIOS)
    info = kin.decode_motion(raw)
    ref_s = kin.source_keypoints(info)
    for i in range(2):
        yaw, pitch, roll = pose[i]
        target = kin.target_pose(info.degrees[i:i + 1], pitch, yaw, roll, "absolute")
        one = kin.KeypointInfo(*(getattr(info, f)[i:i + 1] for f in ("pitch", "yaw", "roll", "kp", "exp", "scale", "t")))
        d = kin.driving_keypoints(one, target, kin.expression_offsets({"smile": 0.5}))
        d = kin.apply_stitching(d, pipeline.stitch_delta(ref_s[i:i + 1], d))
        np.testing.assert_allclose(x_d[i], d[0], atol=1e-6)
    np.testing.assert_allclose(x_s, ref_s, atol=1e-6)


def test_relative_mode_and_retargeting(keypoints):
    raw = _raw(seed=1)
    zero = np.zeros((2, 3), np.float32)
    frontal = keypoints(raw, zero, _controls(), RATIOS)[1]
    own = keypoints(raw, zero, _controls(relative=1), RATIOS)[1]
    # relative 0/0/0 keeps the source's pose: driving = source keypoints up to the stitching offsets
    x_s = kin.source_keypoints(kin.decode_motion(raw))
    assert np.abs(own - x_s).max() < np.abs(frontal - x_s).max()
    eyes = keypoints(raw, zero, _controls(eye_open=0.8), RATIOS)[1]
    lips = keypoints(raw, zero, _controls(lip_open=0.8), RATIOS)[1]
    assert np.abs(eyes - frontal).max() > 0 and np.abs(lips - frontal).max() > 0


@pytest.mark.parametrize("pose, controls, message", [
    ([95, 0, 0], {}, r"target yaw outside \+-90"),
    ([0, 0, 0], {"smile": 2.0}, r"smile=2.0 outside \[-0.3, 1.3\]"),
    ([0, 0, 0], {"eye_open": -0.1}, r"eye_open=-0.1 outside \[0, 1\]"),
    ([0, 80, 0], {"relative": 1}, r"relative mode"),
])
def test_out_of_range_requests_raise_input_error(keypoints, pose, controls, message):
    raw = _raw(b=1)
    raw["pitch"][:] = 0
    raw["pitch"][0, 60] = 30.0                                   # source pitch ~ +82 degrees
    with pytest.raises(InputError, match=message):
        keypoints(raw, np.array([pose], np.float32), _controls(b=1, **controls), RATIOS[:1])


def test_controls_are_listed_the_same_everywhere():
    """The ensemble's control specs (what clients read), the keypoints stage and the kinematics agree: names,
    order, CONTROLS width, and the expression controls' ranges."""
    from facefront import repository
    fam = repository.families()["liveportrait"]
    assert tuple(c.name for c in fam.controls) == lps.CONTROLS
    for c in fam.controls:
        if c.name in kin.EXPRESSION_CONTROLS:
            assert (c.low, c.high) == kin.EXPRESSION_CONTROLS[c.name][0], c.name
        else:
            assert (c.low, c.high) == (0.0, 1.0), c.name
    assert [c.name for c in fam.controls if c.switch] == ["relative"]
    keypoints = repository.stage_parameters("liveportrait_keypoints")
    assert keypoints["controls"] == ",".join(lps.CONTROLS)
    for model in ("liveportrait_frontalize", "liveportrait_keypoints"):
        cfg = repository.config(model)
        assert [list(i.dims) for i in cfg.input if i.name == "CONTROLS"] == [[len(lps.CONTROLS)]]
    from client.__main__ import NAMED_CONTROLS
    assert {n for n, (_, fams) in NAMED_CONTROLS.items() if "liveportrait" in fams} == set(lps.CONTROLS)


def test_crop_uses_the_largest_face_and_paste_back_restores_the_photo_size():
    import cv2

    from facefront import imaging
    from facefront.data import photo
    from facefront.face import align, analyze
    big = imaging.decode(photo("obama2.jpg").read_bytes())
    small = cv2.resize(big, (big.shape[1] // 2, big.shape[0] // 2))
    two = np.zeros((big.shape[0], big.shape[1] + small.shape[1], 3), np.uint8)
    two[:, :big.shape[1]] = big
    two[:small.shape[0], big.shape[1]:] = small
    assert len(analyze(two)) == 2
    crop, M, ratios = lps.crop_face(two)
    _, want = align.crop(big, analyze(big, max_faces=1)[0], "portrait", size=256)
    # the big face's crop: the same transform up to landmark noise (the small face's would be 2x the scale)
    assert np.abs(M[:, :2] - want[:, :2]).max() < 0.05 * np.abs(want[:, :2]).max()   # the small face: 2x scale
    assert np.abs(M[:, 2] - want[:, 2]).max() < 10
    assert ratios.shape == (3,) and (ratios >= 0).all() and ratios[:2].max() < 1
    src = lps.to_source(crop)
    assert src.shape == (3, 256, 256) and src.dtype == np.float32 and src.max() <= 1
    stage = lps.PostprocessStage()
    stage.params, stage.paste = {}, True
    face = np.random.default_rng(0).random((3, 512, 512)).astype(np.float32)
    out = stage.run({"image": [face], "original": [two], "crop_M": [M]})["FRONTAL"][0]
    assert out.shape == two.shape and out.dtype == np.uint8
    stage.paste = False
    assert stage.run({"image": [face], "original": [two], "crop_M": [M]})["FRONTAL"][0].shape == (512, 512, 3)


def test_no_face_is_an_input_error():
    with pytest.raises(InputError, match="no face was found"):
        lps.crop_face(np.full((120, 160, 3), 90, np.uint8))


def test_the_photo_rides_along_only_when_pasting_back():
    from facefront import repository
    from facefront.data import photo
    pre = repository.stage_parameters("liveportrait_preprocess")["paste_back"]
    assert pre == repository.stage_parameters("liveportrait_postprocess")["paste_back"]  # the two must agree
    data = np.frombuffer(photo("obama.jpg").read_bytes(), np.uint8)[None]
    for paste, shape in (("false", (1, 1, 3)), ("true", None)):
        stage = lps.PreprocessStage.standalone({"paste_back": paste})
        original = stage.run({"IMAGE": [data[0]]})["original"][0]
        if shape:
            assert original.shape == shape
        else:
            assert original.shape[0] > 500 and original.shape[2] == 3   # the whole decoded photo

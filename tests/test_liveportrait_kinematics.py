"""LivePortrait keypoint math against hand-computed cases, and clear errors for bad values."""
import numpy as np
import pytest

from facefront.liveportrait import kinematics as kin


def one_hot_logits(index, batch=1, big=60.0):
    z = np.zeros((batch, kin.NUM_BINS))
    z[:, index] = big
    return z


def test_bins_to_degrees_one_hot_and_uniform():
    assert kin.bins_to_degrees(one_hot_logits(0)) == pytest.approx([-97.5], abs=1e-4)
    assert kin.bins_to_degrees(one_hot_logits(65)) == pytest.approx([97.5], abs=1e-4)
    assert kin.bins_to_degrees(one_hot_logits(32)) == pytest.approx([-1.5], abs=1e-4)
    # uniform logits: mean index 32.5 -> 0 degrees; equal mass on bins 32 and 33 -> 0 too
    assert kin.bins_to_degrees(np.zeros((2, 66))) == pytest.approx([0.0, 0.0], abs=1e-5)
    z = np.full((1, 66), -50.0)
    z[0, 32] = z[0, 33] = 10.0
    assert kin.bins_to_degrees(z) == pytest.approx([0.0], abs=1e-4)
    # large logits do not overflow (max subtracted before exp)
    assert np.isfinite(kin.bins_to_degrees(one_hot_logits(10, big=1e4))).all()


def test_rotation_conventions():
    np.testing.assert_allclose(kin.rotation_matrix([0], [0], [0])[0], np.eye(3), atol=1e-7)
    p = np.array([[1.0, 0.0, 0.0]])
    # yaw 90: R^T = Ry(90), rows rotate by p @ R = (Ry p^T)^T; Ry(90) maps x -> -z
    r = kin.rotation_matrix([0], [90], [0])[0]
    np.testing.assert_allclose(p @ r, [[0, 0, -1]], atol=1e-6)
    # pitch 90: Rx maps y -> z; roll 90: Rz maps x -> y
    np.testing.assert_allclose(np.array([[0, 1.0, 0]]) @ kin.rotation_matrix([90], [0], [0])[0], [[0, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(p @ kin.rotation_matrix([0], [0], [90])[0], [[0, 1, 0]], atol=1e-6)
    # composition order Rz @ Ry @ Rx (pitch applied first to a column vector)
    r = kin.rotation_matrix([30], [-20], [10])[0].astype(np.float64)
    a, b, c = np.deg2rad([30, -20, 10])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    np.testing.assert_allclose(r, (rz @ ry @ rx).T, atol=1e-6)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)


def test_transform_keypoints_formula():
    kp = np.zeros((1, 21, 3))
    kp[0, 0] = [1, 0, 0]
    exp = np.zeros((1, 63))
    exp[0, :3] = [0.1, 0.2, 0.3]
    r = kin.rotation_matrix([0], [90], [0])
    x = kin.transform_keypoints(kp, r, exp, np.array([[2.0]]), np.array([[0.5, -0.5, 9.0]]))
    # 2 * ((0, 0, -1) + (0.1, 0.2, 0.3)) + (0.5, -0.5, 0): t_z is ignored
    np.testing.assert_allclose(x[0, 0], [0.7, -0.1, -1.4], atol=1e-6)
    np.testing.assert_allclose(x[0, 1], [0.5, -0.5, 0.0], atol=1e-6)


def test_frontal_target_and_driving_keypoints():
    info = kin.KeypointInfo(pitch=np.array([10.0]), yaw=np.array([-30.0]), roll=np.array([5.0]),
                            kp=np.ones((1, 21, 3)), exp=np.zeros((1, 21, 3)), scale=np.ones((1, 1)),
                            t=np.zeros((1, 3)))
    np.testing.assert_array_equal(kin.target_pose(info.degrees), [[0, 0, 0]])
    np.testing.assert_allclose(kin.target_pose(info.degrees, yaw=20, mode="relative"), [[10, -10, 5]])
    x_d = kin.driving_keypoints(info, kin.target_pose(info.degrees))
    np.testing.assert_allclose(x_d, np.ones((1, 21, 3)), atol=1e-6)  # identity rotation at 0/0/0


def test_stitching_and_retargeting_plumbing():
    x_s = np.zeros((1, 21, 3))
    x_d = np.ones((1, 63))
    assert kin.stitching_input(x_s, x_d).shape == (1, 126)
    delta = np.zeros((1, 65))
    delta[0, 3] = 0.5          # keypoint 1, x
    delta[0, 63:] = [1.0, 2.0]  # shift every keypoint's x, y
    out = kin.apply_stitching(x_d, delta)
    np.testing.assert_allclose(out[0, 0], [2, 3, 1])
    np.testing.assert_allclose(out[0, 1], [2.5, 3, 1])
    assert kin.lip_input(x_s, [[0.1, 0.2]]).shape == (1, 65)
    assert kin.eye_input(x_s, [[0.1, 0.2, 0.3]]).shape == (1, 66)
    assert kin.retarget_offsets(np.arange(63.0)[None]).shape == (1, 21, 3)


def test_expression_offsets_follow_the_controls():
    off = kin.expression_offsets({"smile": 1.0})
    assert off[0, 14, 1] == pytest.approx(-0.02) and off[0, 20, 1] == pytest.approx(-0.01)
    assert off[0, 17, 2] == pytest.approx(0.003)
    assert np.count_nonzero(off) == 8
    # sign-dependent factors: eyebrow up moves keypoints 1, 2 vertically only; down also pulls them inward
    up, down = kin.expression_offsets({"eyebrow": 10}), kin.expression_offsets({"eyebrow": -10})
    assert up[0, 1, 1] == pytest.approx(0.01) and up[0, 1, 0] == 0
    assert down[0, 1, 1] == pytest.approx(-0.003) and down[0, 1, 0] == pytest.approx(0.01)
    assert kin.expression_offsets({"pupil_y": 5})[0, 11, 1] == pytest.approx(-0.01)
    np.testing.assert_array_equal(kin.expression_offsets({}), np.zeros((1, 21, 3)))


@pytest.mark.parametrize("call, match", [
    (lambda: kin.bins_to_degrees(np.zeros((1, 65))), "trailing shape"),
    (lambda: kin.bins_to_degrees(np.full((1, 66), np.nan)), "NaN"),
    (lambda: kin.rotation_matrix([0, 1], [0], [0]), "batch sizes"),
    (lambda: kin.target_pose(np.zeros((1, 3)), yaw=91), r"yaw outside \+-90"),
    (lambda: kin.target_pose(np.array([[0, 80, 0]]), yaw=20, mode="relative"), "yaw outside"),
    (lambda: kin.target_pose(np.zeros((1, 3)), mode="sideways"), "absolute' or 'relative"),
    (lambda: kin.target_pose(np.zeros((1, 3)), pitch=float("inf")), "NaN or Inf"),
    (lambda: kin.lip_input(np.zeros((1, 21, 3)), [[0.1, 1.5]]), r"lip ratio must lie in \[0, 1\]"),
    (lambda: kin.eye_input(np.zeros((1, 21, 3)), [[0.1, 0.2]]), "trailing shape"),
    (lambda: kin.transform_keypoints(np.zeros((1, 20, 3)), np.eye(3)[None], np.zeros((1, 63)), [[1]], np.zeros((1, 3))),
     "expected shape"),
    (lambda: kin.expression_offsets({"smile": 2.0}), r"smile=2.0 outside \[-0.3, 1.3\]"),
    (lambda: kin.expression_offsets({"frown": 1.0}), "unknown expression control 'frown'"),
])
def test_bad_values_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()

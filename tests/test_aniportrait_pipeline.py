"""AniPortrait PyTorch pose-to-image pipeline on the reduced configuration: determinism, seeds, guidance, progress,
scheduler facts, and clear errors for bad controls."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.aniportrait import reference
from export.aniportrait.config import REDUCED

torch.set_num_threads(2)
SIZE = 64


def _images():
    rng = np.random.default_rng(0)
    ref = (rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    pose = np.zeros((SIZE, SIZE, 3), np.uint8)
    pose[20:44, 30:33] = (10, 200, 10)
    return ref, pose


@pytest.fixture(scope="module")
def pipe():
    return reference.Pipeline(cfg=REDUCED, keep=True)


@pytest.fixture(scope="module")
def first(pipe):
    ref, pose = _images()
    calls = []
    res = pipe.generate(ref, pose, seed=7, steps=2, progress=lambda k, n: calls.append((k, n)))
    return res, calls


def test_output_image_and_progress(first):
    res, calls = first
    assert res.image.shape == (SIZE, SIZE, 3) and res.image.dtype == np.uint8
    assert calls == [(1, 2), (2, 2)]
    assert list(res.trace["out_timesteps"]) == [999, 499]
    # the last DDIM step goes to alpha = 1: the final latents are that step's predicted x0
    assert np.array_equal(res.trace["out_latents_step1"], res.trace["out_pred_original_sample_step1"])
    assert res.trace["out_model_output_step0"].shape == (2, 4, 1, SIZE // 8, SIZE // 8)


def test_same_seed_same_image_other_seed_other_image(pipe, first):
    ref, pose = _images()
    again = pipe.generate(ref, pose, seed=7, steps=2)
    assert np.array_equal(again.image, first[0].image)
    other = pipe.generate(ref, pose, seed=8, steps=2)
    assert not np.array_equal(other.trace["out_latents_step1"], first[0].trace["out_latents_step1"])


def test_guidance_combines_uncond_and_cond(first):
    t = first[0].trace
    mo = t["out_model_output_step0"]
    assert np.allclose(t["out_noise_pred_step0"], mo[:1] + 3.5 * (mo[1:] - mo[:1]), atol=1e-6)


def test_pose_and_reference_both_matter(pipe, first):
    ref, pose = _images()
    moved = np.roll(pose, 12, axis=1)
    a = pipe.generate(ref, moved, seed=7, steps=2).trace["out_model_output_step0"]
    b = pipe.generate(255 - ref, pose, seed=7, steps=2).trace["out_model_output_step0"]
    base = first[0].trace["out_model_output_step0"]
    assert np.abs(a - base).max() > 1e-3 and np.abs(b - base).max() > 1e-3


def test_pose_condition_keeps_the_upstream_uint8_range():
    pose = np.full((8, 8, 3), 255, np.uint8)
    cond = reference.pose_condition(pose)
    assert cond.shape == (1, 3, 1, 8, 8) and cond.max() == 509.0


@pytest.mark.parametrize("steps,guidance,match", [(0, 3.5, "steps"), (10_000, 3.5, "steps"), (2, float("nan"), "guidance"),
                                                   (2, -1.0, "guidance")])
def test_bad_controls(pipe, steps, guidance, match):
    ref, pose = _images()
    with pytest.raises(ValueError, match=match):
        pipe.generate(ref, pose, steps=steps, guidance=guidance)


def test_bad_images(pipe):
    ref, pose = _images()
    with pytest.raises(ValueError, match="uint8"):
        pipe.generate(ref.astype(np.float32), pose, steps=1)
    with pytest.raises(ValueError, match="multiples of 8"):
        pipe.generate(ref[:60, :60], pose[:60, :60], steps=1)
    with pytest.raises(ValueError, match="differ"):
        pipe.generate(ref, np.zeros((SIZE + 8, SIZE, 3), np.uint8), steps=1)

"""FSRT networks vs the upstream reference outputs (parity fixtures, synthetic rule-v2 weights)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from export.common import fixtures, parity
from export.fsrt import FAMILY, reference

torch.set_num_threads(2)
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "parity" / "fsrt" / "public"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no parity fixtures at {FIXTURES}")


@pytest.fixture(scope="module")
def nets():
    return reference.build()


@pytest.fixture(scope="module")
def rules():
    return fixtures.find_manifest(FIXTURES)["tolerance"]["suggested"]


@pytest.mark.slow
@needs_fixtures
def test_every_output_within_tolerance():
    """`python -m export parity fsrt ../shared/parity/fsrt/public`: two full 65,536-pixel decodes (~40 s here)."""
    lines = []
    ok = parity.run(FAMILY, FIXTURES, out=lines.append)
    report = "\n".join(lines)
    assert ok, report
    # kp_detector 5 + expression_encoder 2 + encoder 2 + decoder 4 + chain 10 outputs, none missing
    assert "23/23 outputs within tolerance" in report, report


@needs_fixtures
@pytest.mark.parametrize("net", ["kp_detector", "expression_encoder", "encoder"])
def test_source_side_networks(net, nets, rules):
    refs = fixtures.load(FIXTURES / f"{net}.npz")
    ins = [refs[k] for k in refs if k.startswith("in_")]
    runner = {"kp_detector": reference.run_kp_detector, "expression_encoder": reference.run_expression_encoder,
              "encoder": reference.run_encoder}[net]
    got = runner(nets, *ins)
    outs = sorted(k for k in refs if k.startswith("out_"))
    assert sorted(got) == outs
    for k in outs:
        c = fixtures.check(f"{net}/{k}", got[k], refs, rules[f"{net}/{k}"])
        assert c.ok, c


@needs_fixtures
def test_decoder_on_pixel_subsets_and_taps(nets, rules):
    """Query pixels are independent, so a subset of the fixture frame checks the decoder in a fraction of the
    time: every 32nd pixel (in uneven chunks) against out_pixels, and pixels 0, 128, ... with all three taps."""
    refs = fixtures.load(FIXTURES / "decoder.npz")
    z, px, kp, ex = refs["in_z"], refs["in_pixels"], refs["in_keypoints"], refs["in_expression_vector"]
    got = reference.run_decoder(nets, z, px[:, ::32], kp[:, ::32], ex, chunk=700)
    err = np.abs(got["out_pixels"] - refs["out_pixels"][:, ::32]).max()
    assert err <= rules["decoder/out_pixels"]["atol"], err
    got = reference.run_decoder(nets, z, px[:, ::128], kp[:, ::128], ex, tap_stride=1)
    for name in ("queries", "input_mlp", "transformer"):
        key = f"decoder/out_tap_{name}_s128"
        c = fixtures.check(key, got[f"out_tap_{name}_s128"], refs, rules[key])
        assert c.ok, c


@needs_fixtures
def test_recipe_reproduces_fixture_inputs():
    chain = fixtures.load(FIXTURES / "chain.npz")
    imgs = reference.recipe_images(0)
    for name in ("source", "driving", "driving_initial"):
        assert np.array_equal(imgs[name], chain[f"in_{name}"]), name


@needs_fixtures
def test_down_weight_is_loaded_not_recomputed(nets):
    """Upstream builds a Gaussian in __init__, but the checkpoint's buffer wins (random under the rule)."""
    w = nets.kp_detector.down.weight
    assert w.shape == (3, 1, 13, 13)
    assert (w < 0).any()  # a Gaussian has no negative taps: this is the loaded (synthetic) buffer
    assert "down.weight" in nets.kp_detector.state_dict()

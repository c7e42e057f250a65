"""LivePortrait: our networks with rule-v2 synthetic weights reproduce the upstream reference outputs."""
from pathlib import Path

import pytest
import torch

from export.common import family, parity

SHARED = Path(__file__).resolve().parents[2] / "shared"
PUBLIC = SHARED / "parity" / "liveportrait" / "public"

torch.set_num_threads(2)


@pytest.mark.slow
def test_public_fixtures_pass():
    if not PUBLIC.is_dir():
        pytest.fail(f"{PUBLIC} is missing: the parity fixtures live in ../shared beside the checkout")
    lines = []
    assert parity.run(family.get("liveportrait"), PUBLIC, out=lines.append), "\n".join(lines)
    assert lines[-1] == "40/40 outputs within tolerance", lines[-1]


@pytest.mark.slow
def test_repose_to_frontal_is_the_fixture_chain():
    """The public re-pose entry point (pose 0/0/0, no stitching) reproduces the chain fixture's image."""
    from export.common import fixtures
    from export.liveportrait.reference import Pipeline
    chain = fixtures.load(PUBLIC / "chain.npz")
    image = Pipeline().repose(chain["in_source_image"], pitch=0, yaw=0, roll=0, mode="absolute", stitch=False)
    assert abs(image - chain["out_image_out"]).max() < 2e-3

"""AniPortrait: our networks with rule-v2 synthetic weights reproduce the upstream reference outputs (full size)."""
from pathlib import Path

import pytest
import torch

from export.common import family, fixtures, parity

SHARED = Path(__file__).resolve().parents[2] / "shared"
PUBLIC = SHARED / "parity" / "aniportrait" / "public"

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def public() -> Path:
    if not PUBLIC.is_dir():
        pytest.fail(f"{PUBLIC} is missing: the parity fixtures live in ../shared beside the checkout")
    return PUBLIC


def test_small_networks_match_fixtures(public, tmp_path):
    """The cheap full-size networks (pose guider 168 M, VAE 84 M params) on their fixture files."""
    from export.aniportrait.reference import run_fixtures
    for name in ("pose_guider.npz", "vae.npz"):
        (tmp_path / name).symlink_to(public / name)
    rules = fixtures.find_manifest(public)["tolerance"]["suggested"]
    produced = run_fixtures(tmp_path)
    assert set(produced) == {"pose_guider", "vae"}
    checks = []
    for net, outs in produced.items():
        refs = fixtures.load(public / f"{net}.npz")
        for out in (k for k in refs if k.startswith("out_")):
            checks.append(fixtures.check(f"{net}/{out}", outs[out], refs, rules[f"{net}/{out}"]))
    assert len(checks) == 11 and all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.slow
def test_public_fixtures_pass(public):
    """Every file, the 2-step chain included: ~3 CPU-minutes, peak RSS ~6 GB (one network in memory at a time)."""
    lines = []
    assert parity.run(family.get("aniportrait"), public, out=lines.append), "\n".join(lines)
    assert lines[-1] == "46/46 outputs within tolerance", lines[-1]


@pytest.mark.slow
def test_generate_is_the_fixture_chain(public):
    """The public pose-to-image entry point, from the chain's inputs, returns the chain's video (2 steps)."""
    import numpy as np

    from export.aniportrait.reference import Pipeline
    chain = fixtures.load(public / "chain.npz")
    res = Pipeline().generate(chain["in_ref_image_u8"], chain["in_pose_u8"], steps=2, guidance=3.5,
                              init_noise=chain["in_init_noise"])
    assert np.abs(res.trace["out_video"] - chain["out_video"]).max() < 1e-4
    expected = (chain["out_video"][0, :, 0].transpose(1, 2, 0) * 255).round()
    assert np.abs(res.image.astype(np.float64) - expected).max() <= 1

"""FFWM networks vs the upstream reference outputs (parity fixtures, synthetic rule-v2 weights)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from export.common import parity
from export.ffwm import FAMILY, reference

torch.set_num_threads(2)
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "parity" / "ffwm" / "public"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no parity fixtures at {FIXTURES}")


@needs_fixtures
def test_every_output_within_tolerance():
    lines = []
    ok = parity.run(FAMILY, FIXTURES, out=lines.append)
    report = "\n".join(lines)
    assert ok, report
    # flowNetF 3 + netG 7 + chain 12 outputs, none missing
    assert "22/22 outputs within tolerance" in report, report


@needs_fixtures
def test_recipe_reproduces_fixture_input():
    from export.common import fixtures
    assert np.array_equal(reference.recipe_image(0), fixtures.load(FIXTURES / "chain.npz")["in_img_S"])

"""PyTorch reference for the scaleway generator: build, load weights, run (the numbers the served engine must match)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..common import fixtures
from ..common.synthetic import fill_
from .network import CODE_INDEX, LOGITS_INDEX, Generator


def build(weights: Path | None = None) -> Generator:
    """Generator in eval mode with real weights from `weights` or, when None, rule-v2 synthetic weights.

    Eval mode (running BatchNorm statistics) is what we serve. Upstream's test script never calls .eval(), so its
    published pictures were most likely made with batch-statistics BatchNorm.
    """
    g = Generator()
    if weights is None:
        return fill_(g)
    from .weights import load_state_dict
    g.load_state_dict(load_state_dict(weights), strict=True)
    return g.eval()


@torch.no_grad()
def run_with_taps(g: Generator, profile: np.ndarray) -> dict[str, np.ndarray]:
    taps = {}
    hooks = [g.main[CODE_INDEX].register_forward_hook(lambda m, i, o: taps.__setitem__("code", o)),
             g.main[LOGITS_INDEX].register_forward_hook(lambda m, i, o: taps.__setitem__("logits", o))]
    try:
        frontal = g(torch.from_numpy(np.ascontiguousarray(profile, dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return {"out_frontal": frontal.numpy(), "out_tap_code": taps["code"].numpy(), "out_tap_logits": taps["logits"].numpy()}


def run_fixtures(fixture_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    refs = fixtures.load(Path(fixture_dir) / "G.npz")
    return {"G": run_with_taps(build(), refs["in_profile"])}

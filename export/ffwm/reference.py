"""PyTorch reference for FFWM: build both networks, load weights, run upstream's test path (the numbers the served
engine must match).

The test path (upstream `FFWMModel.test_forward`, minus the guided filter that needs the ground-truth frontal image):
    f128, f64, f32 = flow_net(img)
    img_warp = warp(img, f128)                                # only for display
    fake32, fake64, fake128, att = generator(img, [f32, f64, f128])
    att_mean = att[:, :64].mean(1, keepdim=True)              # only for display
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from ..common import fixtures
from ..common.synthetic import synthetic_state_dict
from .network import FlowEstimator, WarpGenerator, warp


@functools.lru_cache(maxsize=1)
def _synthetic() -> dict[str, dict[str, torch.Tensor]]:
    # filling 68 M values takes seconds; the dicts are never mutated (load_state_dict copies)
    return {"flowNetF": synthetic_state_dict(FlowEstimator()), "netG": synthetic_state_dict(WarpGenerator())}


def build(weights: Path | None = None) -> tuple[FlowEstimator, WarpGenerator]:
    """(flow net, generator) in eval mode, with real weights from the directory `weights` or, when None, rule-v2
    synthetic weights. Eval mode matters twice: BatchNorm uses running statistics, and spectral norm uses the
    stored u, v without a power iteration (in train mode it would update them)."""
    flow_net, generator = FlowEstimator(), WarpGenerator()
    if weights is None:
        sds = _synthetic()
    else:
        from .weights import load_state_dicts
        sds = load_state_dicts(weights)
    flow_net.load_state_dict(sds["flowNetF"], strict=True)
    generator.load_state_dict(sds["netG"], strict=True)
    return flow_net.eval(), generator.eval()


def _upsample_linear(a: np.ndarray, n: int) -> np.ndarray:
    """CxHxW -> Cxnxn, separable linear interpolation (align-corners style), rows first, then columns."""
    def along_last(x):
        src = np.arange(x.shape[-1])
        pos = np.arange(n) * (x.shape[-1] - 1) / (n - 1)
        return np.apply_along_axis(lambda r: np.interp(pos, src, r), -1, x)
    rows = np.swapaxes(along_last(np.swapaxes(a, 1, 2)), 1, 2)
    return along_last(rows)


def recipe_image(seed: int, size: int = 128) -> np.ndarray:
    """1x3xHxW RGB in [0,1]: the parity fixtures' input recipe (smooth random colour fields). Seed 0 reproduces
    the public fixture input bit for bit; other seeds give further test images."""
    rng = np.random.default_rng(seed)
    low9, low33 = rng.random((3, 9, 9)), rng.random((3, 33, 33))
    img = np.clip(0.75 * _upsample_linear(low9, size) + 0.25 * _upsample_linear(low33, size), 0, 1)
    return img.astype(np.float32)[None]


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


@torch.no_grad()
def run_flow(flow_net: FlowEstimator, img: torch.Tensor) -> dict[str, torch.Tensor]:
    f128, f64, f32 = flow_net(img)
    return {"out_flow_F128": f128, "out_flow_F64": f64, "out_flow_F32": f32}


@torch.no_grad()
def run_generator(generator: WarpGenerator, img: torch.Tensor, f32, f64, f128) -> dict[str, torch.Tensor]:
    """Generator outputs plus the pre-sigmoid logits of the three image heads (forward hooks on rec{i}[0]).
    Under synthetic weights the images are saturated to 0/1; the logits carry the numeric signal."""
    taps: dict[str, torch.Tensor] = {}
    hooks = [getattr(generator, f"rec{i}")[0].register_forward_hook(
        lambda m, inp, out, i=i: taps.__setitem__(f"out_tap_rec{i}_logits", out)) for i in range(3)]
    try:
        fake32, fake64, fake128, att = generator(img, (f32, f64, f128))
    finally:
        for h in hooks:
            h.remove()
    return {"out_fake_F32": fake32, "out_fake_F64": fake64, "out_fake_F128": fake128, "out_att": att, **taps}


@torch.no_grad()
def run_chain(flow_net: FlowEstimator, generator: WarpGenerator, img: torch.Tensor) -> dict[str, torch.Tensor]:
    out = run_flow(flow_net, img)
    out["out_img_S_warp"] = warp(img, out["out_flow_F128"])
    out.update(run_generator(generator, img, out["out_flow_F32"], out["out_flow_F64"], out["out_flow_F128"]))
    out["out_att_mean"] = out["out_att"][:, :64].mean(1, keepdim=True)
    return out


def _numpy(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in d.items()}


def run_fixtures(fixture_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Outputs for every fixture file present in `fixture_dir` (flowNetF, netG, chain), from its own in_* arrays."""
    fixture_dir = Path(fixture_dir)
    flow_net, generator = build()
    out: dict[str, dict[str, np.ndarray]] = {}
    if (fixture_dir / "flowNetF.npz").is_file():
        refs = fixtures.load(fixture_dir / "flowNetF.npz")
        out["flowNetF"] = _numpy(run_flow(flow_net, _tensor(refs["in_img_S"])))
    if (fixture_dir / "netG.npz").is_file():
        refs = fixtures.load(fixture_dir / "netG.npz")
        ins = [_tensor(refs[k]) for k in ("in_img_S", "in_flow_F32", "in_flow_F64", "in_flow_F128")]
        out["netG"] = _numpy(run_generator(generator, *ins))
    if (fixture_dir / "chain.npz").is_file():
        refs = fixtures.load(fixture_dir / "chain.npz")
        out["chain"] = _numpy(run_chain(flow_net, generator, _tensor(refs["in_img_S"])))
    return out

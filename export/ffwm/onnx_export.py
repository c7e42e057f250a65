"""Export FFWM as ONE ONNX graph (flow estimator + generator) and check it against PyTorch with onnxruntime.

    input  `input`  Bx3x128x128 RGB in [0,1] (dynamic batch)
    output `output` Bx3x128x128 in [0,1] = fake_F128 (the flows, warped image and attention stay internal)

Spectral norm and BatchNorm are folded into the conv weights first (fold.py), opset 17 (GridSample is native
from opset 16 and in TensorRT 10). The graph is checked with onnx.checker and with the TensorRT-10 op list.

Why the ORT check uses two weight sets. Under the synthetic rule-v2 weights the generator saturates: its image
logits reach ~1e9, so `output` is exactly 0 or 1 and a max-abs comparison of `output` only tests the signs of huge
numbers. So `check()` does two things:
  1. served graph, rule-v2 weights: every pixel whose PyTorch logit is outside the band |logit| < 1e-3 max|logit|
     must match exactly (the band is where fp32 rounding may flip a pixel, as in the parity fixtures);
  2. reduced-gain graph: the same folded network, with each generator conv rescaled on one calibration image so
     that its output has unit standard deviation (a data-dependent rescale in the spirit of LSUV, Mishkin & Matas,
     ICLR 2016). Every op, the final sigmoid included, then works in its unsaturated range, and `output` is
     compared by max abs error. This is what catches a small numeric error (a wrong resize or grid_sample
     convention, a bad fold) that check 1 would round away.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common import onnx_tools, trt_ops
from . import reference
from .fold import fold
from .network import Frontalizer

INPUT, OUTPUT = "input", "output"
OPSET = 17
BAND_REL = 1e-3  # as the parity fixtures' masked_by_logits rule


def servable(weights_dir: Path | None = None) -> Frontalizer:
    """The folded image -> frontal network that is exported (synthetic rule-v2 weights when weights_dir is None)."""
    flow_net, generator = reference.build(weights_dir)
    return Frontalizer(fold(flow_net), fold(generator)).eval()


def export_onnx(out_path: Path, weights_dir: Path | None = None, module: Frontalizer | None = None) -> Path:
    """Write the ONNX graph to `out_path` and return it; raises if it is not TensorRT-10-native."""
    module = servable(weights_dir) if module is None else module
    example = torch.from_numpy(reference.recipe_image(0))
    path = onnx_tools.export(module, (example,), Path(out_path), [INPUT], [OUTPUT], opset=OPSET, dynamic_batch=True)
    trt_ops.assert_supported(path)
    return path


@torch.no_grad()
def reduce_gain_(module: Frontalizer, image: torch.Tensor) -> Frontalizer:
    """Rescale every generator conv (weight and bias) so its output on `image` has unit std, in execution order
    (each layer is calibrated on the already-rescaled outputs of the layers before it). Test-only weights."""
    def hook(conv, _inp, out):
        s = out.std()
        conv.weight.div_(s)
        conv.bias.div_(s)
        return out / s
    convs = [m for m in module.generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [c.register_forward_hook(hook) for c in convs]
    try:
        module(image)
    finally:
        for h in handles:
            h.remove()
    return module


@torch.no_grad()
def compare(path: Path, module: Frontalizer, images: np.ndarray) -> dict:
    """ORT `output` vs PyTorch `module` on the same batch. Keys: max_abs (all pixels), max_abs_outside_band
    (pixels whose PyTorch logit is not within BAND_REL of max |logit|), n_band (pixels inside it), n_differ
    (pixels that differ by > 0.5, i.e. flipped), frac_unsaturated (PyTorch output in (0.01, 0.99))."""
    logits = {}
    h = module.generator.rec2[0].register_forward_hook(lambda m, i, o: logits.__setitem__("x", o))
    try:
        want = module(torch.from_numpy(images)).numpy()
    finally:
        h.remove()
    got = onnx_tools.run(path, {INPUT: images})[0]
    lg = logits["x"].abs().numpy()
    keep = lg >= BAND_REL * lg.max()
    d = np.abs(got.astype(np.float64) - want)
    return {"batch": int(images.shape[0]), "max_abs": float(d.max()), "max_abs_outside_band": float(d[keep].max()),
            "n_band": int((~keep).sum()), "n_differ": int((d > 0.5).sum()),
            "frac_unsaturated": float(((want > 0.01) & (want < 0.99)).mean()), "logit_absmax": float(lg.max()),
            # how much the output depends on the input: rms difference between the first two images' outputs
            "rms_between_images": float(np.sqrt(np.mean((want[0] - want[-1]) ** 2)))}


def check(work_dir: Path, weights_dir: Path | None = None) -> dict:
    """Both ORT checks described in the module docstring, on a batch of 2 recipe images (dynamic batch). Leaves
    the two graphs in `work_dir` (ffwm.onnx, ffwm_reduced_gain.onnx); each result has its graph's `path`."""
    work_dir = Path(work_dir)
    images = np.concatenate([reference.recipe_image(0), reference.recipe_image(1)])
    served = servable(weights_dir)
    path = export_onnx(work_dir / "ffwm.onnx", module=served)
    result = {"served": {"path": path, **compare(path, served, images)}}
    reduced = reduce_gain_(served, torch.from_numpy(images[:1]))  # in place: `served` is not used again
    path = export_onnx(work_dir / "ffwm_reduced_gain.onnx", module=reduced)
    result["reduced_gain"] = {"path": path, **compare(path, reduced, images)}
    return result


@torch.no_grad()
def time_per_image(path: Path, weights_dir: Path | None = None, threads: int = 2, reps: int = 5) -> dict:
    """Median seconds per image at batch 1: ORT on `path` vs eager PyTorch (reference network with spectral-norm
    hooks and BatchNorm, and the folded one), all in this process on `threads` threads."""
    torch.set_num_threads(threads)
    x_np = reference.recipe_image(0)
    x = torch.from_numpy(x_np)
    sess = onnx_tools.session(path, threads=threads)
    flow_net, generator = reference.build(weights_dir)
    eager = Frontalizer(flow_net, generator).eval()
    folded = servable(weights_dir)

    runs = {"ort_s": lambda: sess.run(None, {INPUT: x_np}), "torch_eager_s": lambda: eager(x),
            "torch_folded_s": lambda: folded(x)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up
        fn()
    for _ in range(reps):  # interleaved, so a busy shared machine slows all three alike
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {"threads": threads, "reps": reps, **{k: statistics.median(v) for k, v in times.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.ffwm.onnx_export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="ONNX file to write")
    p.add_argument("--weights", type=Path, default=None, help="directory with latest_net_{flowNetF,netG}.pth "
                   "(default: synthetic rule-v2 weights)")
    p.add_argument("--check", action="store_true", help="also run the two onnxruntime checks")
    p.add_argument("--time", action="store_true", help="also time ORT vs eager PyTorch (batch 1, 2 threads)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    path = export_onnx(args.out, args.weights)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.check:
        with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
            for name, r in check(Path(tmp), args.weights).items():
                print(f"{name}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in r.items() if k != "path"))
    if args.time:
        t = time_per_image(path, args.weights)
        print(f"per image, batch 1, {t['threads']} threads, median of {t['reps']}: ORT {t['ort_s'] * 1e3:.0f} ms, "
              f"eager PyTorch {t['torch_eager_s'] * 1e3:.0f} ms (folded {t['torch_folded_s'] * 1e3:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time FSRT's networks and one frame on this CPU: eager PyTorch vs onnxruntime, same inputs, same thread count.

    python -m export.fsrt.speed [--threads 2] [--reps 3] [--chunk 8192] [--size 256] [--onnx-dir DIR]

Per network: median of `reps` calls at batch 1 (decoder: one chunk of `chunk` query pixels), PyTorch and
onnxruntime calls interleaved (the machines are shared: load changes hit both alike). Frame: the work
per output frame once the source is encoded (driver keypoints + expression, then the decoder over size x size
pixels in chunks), and the source encoding that is paid once per photo. Without --onnx-dir the four graphs
are exported to a temporary folder first (about a minute). Synthetic weights unless --weights.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..common import onnx_tools
from . import export_spec, reference
from .scene import DEFAULT_CHUNK, pixel_grid


def _pair(torch_fn, ort_fn, reps: int, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each, the two calls interleaved so that a shared machine's load hits both alike."""
    if warmup:  # first-call allocations, ORT arena
        torch_fn()
        ort_fn()
    times: dict[str, list[float]] = {"torch_s": [], "ort_s": []}
    for _ in range(reps):
        for key, fn in (("torch_s", torch_fn), ("ort_s", ort_fn)):
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(onnx_dir: Path, nets: reference.Networks, threads: int = 2, reps: int = 3, chunk: int = DEFAULT_CHUNK,
            size: int = 256) -> dict[str, dict[str, float]]:
    """{row: {"torch_s": ..., "ort_s": ...}} for each network, the frame and the source encoding."""
    torch.set_num_threads(threads)
    sess = {net: onnx_tools.session(onnx_dir / spec.folder / "1" / "model.onnx", threads)
            for net, spec in export_spec.NETWORKS.items()}
    ins = {net: export_spec.example_inputs(net, batch=1, pixels=chunk, nets=nets) for net in export_spec.NETWORKS}
    mods = {net: spec.module(nets).eval() for net, spec in export_spec.NETWORKS.items()}
    rows: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for net in export_spec.NETWORKS:
            t_in = [torch.from_numpy(v) for v in ins[net].values()]
            label = f"decoder ({chunk} px)" if net == "decoder" else net
            rows[label] = _pair(lambda m=mods[net], a=t_in: m(*a), lambda s=sess[net], a=ins[net]: s.run(None, a),
                                reps)

        image = ins["kp_detector"]["image"]
        grid = pixel_grid(size).reshape(1, -1, 2).numpy()
        z = ins["decoder"]["z"]

        def frame_torch():
            kp, fm, hm = nets.kp_detector(torch.from_numpy(image))
            e = nets.expression_encoder(fm, hm)
            return nets.decoder(torch.from_numpy(z), torch.from_numpy(grid), kp, e, chunk=chunk)

        def frame_ort():
            kp, fm, hm = sess["kp_detector"].run(None, {"image": image})
            (e,) = sess["expression_encoder"].run(None, {"feature_map": fm, "heatmap": hm})
            return np.concatenate([sess["decoder"].run(None, {"z": z, "pixels": grid[:, i:i + chunk],
                                                                "keypoints": kp, "expression": e})[0]
                                   for i in range(0, grid.shape[1], chunk)], 1)

        def source_torch():
            kp, fm, hm = nets.kp_detector(torch.from_numpy(image))
            return nets.encoder(torch.from_numpy(image), kp, nets.expression_encoder(fm, hm))

        def source_ort():
            kp, fm, hm = sess["kp_detector"].run(None, {"image": image})
            (e,) = sess["expression_encoder"].run(None, {"feature_map": fm, "heatmap": hm})
            return sess["encoder"].run(None, {"image": image, "keypoints": kp, "expression": e})

        a, b = frame_torch(), frame_ort()  # also the warm-up of the frame rows
        rows["check: frame ORT vs torch max abs"] = {"max_abs": float(np.abs(a.numpy() - b).max())}
        frame_reps = max(1, reps // 3)
        rows[f"frame {size}x{size} (driver + decoder, chunks of {chunk})"] = _pair(frame_torch, frame_ort,
                                                                                 frame_reps, warmup=False)
        rows["source encoding (once per photo)"] = _pair(source_torch, source_ort, reps)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.fsrt.speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="decoder query pixels per call")
    p.add_argument("--size", type=int, default=256, choices=reference.OUTPUT_SIZES, help="output frame size")
    p.add_argument("--onnx-dir", type=Path, help="a repository folder holding fsrt_*/1/model.onnx (default: export)")
    p.add_argument("--weights", type=Path, help="directory with kp_detector.pt and vox256.pt (default: synthetic)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    nets = reference.build(args.weights)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = args.onnx_dir
        if onnx_dir is None:
            onnx_dir = Path(tmp)
            export_spec.export(onnx_dir, args.weights, log=lambda s: None)
        rows = measure(onnx_dir, nets, args.threads, args.reps, args.chunk, args.size)
    print(f"FSRT on CPU, {args.threads} threads, batch 1, {nets.weights} weights, median of {args.reps} "
          f"(frames: of {max(1, args.reps // 3)})")
    print(f"{'what':52s} {'eager PyTorch s':>16s} {'onnxruntime s':>14s} {'speed-up':>9s}")
    for name, r in rows.items():
        if "torch_s" in r:
            print(f"{name:52s} {r['torch_s']:16.3f} {r['ort_s']:14.3f} {r['torch_s'] / r['ort_s']:8.2f}x")
        else:
            print(f"{name:52s} {r['max_abs']:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

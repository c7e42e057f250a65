"""python -m bench.gpu --out DIR: LivePortrait frontalization speed and fidelity with PyTorch on a device.

In-process: every mode (eager32, tf32, fp16, compile, graphs16) at each batch size: frames/s and ms/frame, and
fidelity of each mode against eager32 on the same inputs (max/mean abs, rel L2, PSNR on the 512x512 output).
With --triton (needs the nvidia-pytriton wheel's tritonserver): the same path inside Triton's python backend
(model bench/gpu/triton_model.py, one model per mode), driven over HTTP by 1 and 8 concurrent clients.
Synthetic weights (the parity rule): speed is that of the real networks; pictures are not faces.

examples:
  python -m bench.gpu --out out/gpu                       # on a CUDA machine
  python -m bench.gpu --out out/gpu --device cpu --modes eager32 --batches 1 --iters 1   # smoke test here
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from .harness import MODES, Frontalizer, fidelity, recipe_images, time_frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--batches", default="1,4,8")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--samplers", default="grid_sample_5d",
                   help="W's 3-D sampling, comma-separated (grid_sample_5d, gather_8, planar_4d); fidelity is always "
                        "against eager32 with the first one")
    p.add_argument("--triton", action="store_true", help="also measure inside tritonserver's python backend")
    p.add_argument("--triton-modes", default="eager32,fp16,graphs16")
    p.add_argument("--triton-requests", type=int, default=64)
    p.add_argument("--budget-s", type=float, default=420, help="stop starting new measurements after this")
    args = p.parse_args(argv)
    t_start = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    results = {"device": args.device, "torch": torch.__version__, "python": platform.python_version(),
               "weights": "synthetic (parity rule v2)", "modes": {}, "errors": {}}
    if args.device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name(0)
    out_json = args.out / "gpu_liveportrait.json"

    def save():
        out_json.write_text(json.dumps(results, indent=2) + "\n")

    batches = [int(b) for b in args.batches.split(",")]
    print("[gpu] building networks (synthetic weights) ...", flush=True)
    t = time.monotonic()
    from export.liveportrait.reference import build
    base = {n: build(n) for n in "FMWGS"}
    results["build_s"] = round(time.monotonic() - t, 1)
    images = recipe_images(max(batches))
    ref_out = None
    samplers = args.samplers.split(",")
    for sampler in samplers:
        for mode in args.modes.split(","):
            key = mode if sampler == samplers[0] and len(samplers) == 1 else f"{mode}/{sampler}"
            if time.monotonic() - t_start > args.budget_s:
                results["errors"][key] = "skipped: time budget"
                continue
            print(f"[gpu] mode {key} ...", flush=True)
            try:
                t = time.monotonic()
                f = Frontalizer(args.device, mode, base, sampler=sampler)
                first = f(images[:1])
                entry = {"sampler": sampler, "setup_s": round(time.monotonic() - t, 1), "speed": []}
                for b in batches:
                    entry["speed"].append(time_frames(f, images[:b], args.iters, args.warmup, args.device))
                    print(f"[gpu]   {key} batch {b}: {entry['speed'][-1]}", flush=True)
                out = f(images[:2])
                if mode == "eager32" and sampler == samplers[0]:
                    ref_out = out
                if ref_out is not None:
                    entry["fidelity_vs_eager32"] = fidelity(out, ref_out)
                entry["output_range"] = [float(first.min()), float(first.max())]
                results["modes"][key] = entry
                if args.device.startswith("cuda"):
                    entry["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                del f
                if args.device.startswith("cuda"):
                    torch.cuda.empty_cache()
            except Exception as e:  # one failing mode must not lose the others' numbers
                results["errors"][key] = f"{type(e).__name__}: {e}"[:2000]
                print(f"[gpu]   {key} failed: {results['errors'][key][:300]}", flush=True)
            save()
    if args.triton:
        from .triton_run import measure
        try:
            results["triton"] = measure(args, budget_end=t_start + args.budget_s + 120)
        except Exception as e:
            results["errors"]["triton"] = f"{type(e).__name__}: {e}"[:3000]
            print(f"[gpu] triton failed: {results['errors']['triton'][:500]}", flush=True)
    results["total_s"] = round(time.monotonic() - t_start, 1)
    save()
    print(json.dumps({k: v for k, v in results.items() if k != "modes"}, indent=1)[:3000])
    print(f"[gpu] wrote {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

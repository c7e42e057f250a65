"""CPU timing of the full-size PyTorch reference at the fixture size (256 px, latent 32x32), synthetic weights:
seconds per denoising-UNet call (batch 2 = [uncond, cond]) and per 2-step pose-to-image call, and peak RSS.

    python -m export.aniportrait.timing [--calls 3] [--steps 2] [--threads 2]

The pipeline is timed as a one-shot call (each network built, used, freed in turn: ~6 GB peak); its time is split
into building (synthetic fill) and running.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np
import torch

from . import reference
from .weights import build


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


@torch.no_grad()
def unet_call(calls: int = 3, size: int = 256) -> dict:
    t0 = time.perf_counter()
    unet = build("denoising_unet")
    built = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    h = size // 8
    names = unet.bank_names()
    chans = {"down_0": 320, "up_3": 320, "down_1": 640, "up_2": 640, "down_2": 1280, "up_1": 1280, "mid": 1280}
    div = {"down_0": 1, "up_3": 1, "down_1": 2, "up_2": 2, "down_2": 4, "up_1": 4, "mid": 8}

    def n(*s):
        return torch.from_numpy(rng.standard_normal(s).astype(np.float32))

    bank = [n(2, (h // div[k.rsplit("_", 1)[0]]) ** 2, chans[k.rsplit("_", 1)[0]]) for k in names]
    fea = [n(2, 320, 1, h, h), n(2, 320, 1, h // 2, h // 2), n(2, 640, 1, h // 4, h // 4),
           n(2, 1280, 1, h // 8, h // 8), n(2, 1280, 1, h // 8, h // 8)]
    args = (n(2, 4, 1, h, h), torch.tensor(999), n(2, 1, 768), fea, bank, torch.tensor([0.0, 1.0]))
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        unet(*args)
        times.append(time.perf_counter() - t)
    return {"build_s": built, "call_min_s": min(times), "call_median_s": statistics.median(times), "calls": times}


def pipeline(steps: int = 2, size: int = 256) -> dict:
    rng = np.random.default_rng(0)
    ref = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    pose = np.zeros((size, size, 3), np.uint8)
    pose[size // 4: 3 * size // 4, size // 2 - 2: size // 2 + 2] = (10, 200, 10)

    class Timed(reference.Pipeline):
        build_s = 0.0

        def net(self, name):
            t = time.perf_counter()
            fresh = name not in self._nets
            module = super().net(name)
            if fresh:
                Timed.build_s += time.perf_counter() - t
            return module

    t = time.perf_counter()
    Timed().generate(ref, pose, seed=0, steps=steps)
    total = time.perf_counter() - t
    return {"steps": steps, "total_s": total, "build_s": Timed.build_s, "run_s": total - Timed.build_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.aniportrait.timing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = {"threads": a.threads, "size": 256, "denoising_unet_batch2": unet_call(a.calls)}
    out["peak_rss_gb_after_unet"] = _peak_gb()
    out["pipeline"] = pipeline(a.steps)
    out["peak_rss_gb"] = _peak_gb()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

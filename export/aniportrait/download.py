"""Fetch the released AniPortrait weights and the two base models into the `--weights` layout (weights.py).

The four AniPortrait files come from the authors' Hugging Face repository; the VAE is stabilityai/sd-vae-ft-mse
and the image encoder the one of lambdalabs/sd-image-variations-diffusers. Stable Diffusion 1.5's UNet is not
fetched: the released denoising_unet.pth and reference_unet.pth hold every UNet weight (weights.py reads SD1.5's
only when a denoising file lacks keys). Licences: AniPortrait code Apache-2.0; the UNets derive from SD1.5, whose
CreativeML OpenRAIL-M use restrictions carry over; sd-vae-ft-mse MIT.
"""
from __future__ import annotations

from pathlib import Path

from ..common.download import fetch
from .weights import BASE_DIRS, RELEASE_FILES, SHA256, resolve

RELEASE_HOST = "https://huggingface.co/ZJYang/AniPortrait/resolve/main"
BASE_URLS = {
    "vae": "https://huggingface.co/stabilityai/sd-vae-ft-mse/resolve/main/diffusion_pytorch_model.safetensors",
    "image_encoder": "https://huggingface.co/lambdalabs/sd-image-variations-diffusers/resolve/main/"
                     "image_encoder/pytorch_model.bin",
}


def files() -> dict[str, tuple[str, str, str | None]]:
    """{name: (url, path relative to the weights folder, pinned sha256 or None)}."""
    out = {name: (f"{RELEASE_HOST}/{rel}", rel, SHA256[name]) for name, rel in RELEASE_FILES.items()}
    for name, url in BASE_URLS.items():
        out[name] = (url, f"{BASE_DIRS[name][0]}/{url.rsplit('/', 1)[1]}", None)
    return out


def download(dest_dir: Path) -> Path:
    """Download whatever is missing into `dest_dir` (default weights/aniportrait/), about 9 GB; return the folder.
    Raises WeightsError (one line, no partial file left) when the host cannot be reached or a file is bad."""
    root = Path(dest_dir)
    for url, rel, sha in files().values():
        target = root / rel
        if not target.is_file():
            fetch(url, target, sha, timeout=60.0)
    return resolve(root)

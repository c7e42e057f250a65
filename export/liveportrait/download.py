"""Fetch the released LivePortrait weights from the authors' Hugging Face repository into the official layout."""
from __future__ import annotations

from pathlib import Path

from ..common.download import WeightsError, fetch
from .weights import FILES, SHA256, resolve

# The authors' model repository; it has also been published under the KlingTeam organisation name.
HOSTS = ("https://huggingface.co/KwaiVGI/LivePortrait/resolve/main/liveportrait",
         "https://huggingface.co/KlingTeam/LivePortrait/resolve/main/liveportrait")


def url(net: str, host: str = HOSTS[0]) -> str:
    return f"{host}/{FILES[net]}"


def download(dest_dir: Path) -> Path:
    """Download whatever of the five files is missing into `dest_dir` (base_models/, retargeting_models/; default
    weights/liveportrait/); return it. Raises WeightsError, one line, when no host answers or a file does not verify."""
    root = Path(dest_dir)
    for net, rel in FILES.items():
        target = root / rel
        if target.is_file():
            continue
        error: WeightsError | None = None
        for host in HOSTS:
            try:
                fetch(url(net, host), target, SHA256[net], timeout=60.0)
                error = None
                break
            except WeightsError as e:
                error = e
        if error is not None:
            raise error
    return resolve(root)

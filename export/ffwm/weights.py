"""Load and verify the released FFWM checkpoints from a directory (`--weights DIR`).

DIR holds the two files upstream writes to checkpoints/ffwm/: plain state_dicts saved with
torch.save(net.cpu().state_dict()), no "module." prefix. They are read with torch.load(weights_only=True), so a
file that needs arbitrary pickle code is refused, and checked key by key and shape by shape against our networks.

    python -m export.ffwm.weights --weights DIR      verify and print the sha256 of both files
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from facefront.artifact import sha256_file

from ..common.by_hand import one_line_cli, print_verified
from ..common.download import WeightsError
from ..common.state_dict import match
from .network import FlowEstimator, WarpGenerator

FILES = {"flowNetF": "latest_net_flowNetF.pth", "netG": "latest_net_netG.pth"}

# Upstream publishes no checksums (the files sit in a Google Drive folder and a BaiduNetDisk share), so no hash is
# pinned: "unknown" means the file is accepted on strict key, shape and dtype checks alone. Put the hex digest
# here once someone has a copy whose provenance is known.
SHA256 = {"latest_net_flowNetF.pth": "unknown", "latest_net_netG.pth": "unknown"}

_ARCH = {"flowNetF": FlowEstimator, "netG": WarpGenerator}


@functools.lru_cache(maxsize=None)
def _expected(net: str) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """{key: (shape, dtype)} of our network's state_dict, in order."""
    return {k: (tuple(t.shape), t.dtype) for k, t in _ARCH[net]().state_dict().items()}


def load_file(path: Path, net: str) -> dict[str, torch.Tensor]:
    """One checkpoint as a plain {key: tensor} dict, checked against network `net`; WeightsError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: missing (FFWM needs {FILES[net]} in the --weights directory)")
    pinned = SHA256.get(path.name, "unknown")
    if pinned != "unknown" and sha256_file(path) != pinned:
        raise WeightsError(f"{path}: sha256 does not match the pinned value {pinned} (corrupt or a different file)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many types (IndexError, UnpicklingError, RuntimeError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a loadable torch state_dict ({first[:160]})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        kind = type(sd).__name__ if not isinstance(sd, dict) else "a dict with non-tensor values"
        raise WeightsError(f"{path}: expected a plain state_dict of tensors, got {kind}")
    # dict() drops _metadata, as upstream's loader does; spectral_norm keys then load as the current format
    return match(sd, _expected(net), str(path), f"FFWM {net}")


def load_state_dicts(weights_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """{"flowNetF": state_dict, "netG": state_dict} from `weights_dir`, verified; WeightsError otherwise.
    One of the two files may be given instead of the directory (its folder is used)."""
    weights_dir = Path(weights_dir)
    if weights_dir.is_file() and weights_dir.name in FILES.values():
        weights_dir = weights_dir.parent
    if not weights_dir.is_dir():
        need = " and ".join(FILES.values())
        raise WeightsError(f"{weights_dir}: not a directory (pass --weights DIR holding {need})")
    return {net: load_file(weights_dir / name, net) for net, name in FILES.items()}


def main(argv=None) -> int:
    def verify(args):
        load_state_dicts(args.weights)
        print_verified(args.weights, FILES.values(), SHA256)
    return one_line_cli("python -m export.ffwm.weights", __doc__, lambda p: p.add_argument(
        "--weights", type=Path, required=True, help="directory holding " + " and ".join(FILES.values())), verify, argv)


if __name__ == "__main__":
    raise SystemExit(main())

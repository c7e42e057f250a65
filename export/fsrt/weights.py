"""Load and verify the released FSRT checkpoints from a directory (`--weights DIR`).

DIR holds the two files upstream's demo reads from `fsrt_checkpoints/`:

    kp_detector.pt   plain KPDetector state_dict (73 keys, the anti-aliasing filter `down.weight` included)
    vox256.pt        {'encoder': ..., 'decoder': ..., 'expression_encoder': ...} state_dicts (written by
                     upstream's Checkpoint.save; training extras such as 'optimizer' or 'it' may be present and
                     are ignored). No 'module.' prefixes.

Files are read with torch.load(weights_only=True): no pickled code runs. Numpy scalars, which a training
checkpoint may hold (e.g. loss_val_best), are allowed through the loader's safe-globals list. Every network's
keys, shapes and dtypes must match ours exactly (upstream's loader only warns when a sub-dict is missing; we
refuse), and any problem is a one-line WeightsError.

    python -m export.fsrt.weights --weights DIR      verify and print the sha256 of both files
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facefront.artifact import sha256_file

from ..common.by_hand import one_line_cli, print_verified
from ..common.download import WeightsError
from ..common.state_dict import match

KP_FILE, MODEL_FILE = "kp_detector.pt", "vox256.pt"
FILES = {"kp_detector": KP_FILE, "expression_encoder": MODEL_FILE, "encoder": MODEL_FILE, "decoder": MODEL_FILE}
NETWORKS = tuple(FILES)

# Upstream publishes the checkpoints only in a Google Drive folder and states no checksums; "unknown" = accepted on
# the strict key/shape/dtype checks alone. Pin the hex digest here once a copy of known provenance is at hand.
SHA256 = {KP_FILE: "unknown", MODEL_FILE: "unknown"}


def constructors() -> dict[str, type[nn.Module]]:
    from .keypoints import ExpressionEncoder, KeypointDetector
    from .scene import PixelDecoder, SceneEncoder
    return {"kp_detector": KeypointDetector, "expression_encoder": ExpressionEncoder, "encoder": SceneEncoder,
            "decoder": PixelDecoder}


@functools.lru_cache(maxsize=None)
def expected(net: str) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """{key: (shape, dtype)} of our network's state_dict, in order."""
    with torch.device("meta"):  # shapes only: no 60 M parameters allocated
        module = constructors()[net]()
    return {k: (tuple(t.shape), t.dtype) for k, t in module.state_dict().items()}


def _numpy_safe_globals() -> list:
    """Types a pickled numpy scalar needs (torch's weights_only unpickler refuses them unless listed)."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2 (1.26 has it too)
    except ImportError:
        from numpy.core.multiarray import scalar
    return [np.dtype, scalar] + [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]


def _torch_load(path: Path):
    pinned = SHA256.get(path.name, "unknown")
    if pinned != "unknown" and sha256_file(path) != pinned:
        raise WeightsError(f"{path}: sha256 does not match the pinned value {pinned} (corrupt or a different file)")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a loadable torch checkpoint ({first[:160]})") from None


def check_state_dict(sd, net: str, where: str) -> dict[str, torch.Tensor]:
    """`sd` as a plain {key: tensor} dict verified against network `net`; WeightsError naming `where` otherwise."""
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        kind = type(sd).__name__ if not isinstance(sd, dict) else "a dict with non-tensor values"
        raise WeightsError(f"{where}: expected a state_dict of tensors for FSRT {net}, got {kind}")
    return match(sd, expected(net), where, f"FSRT {net}")


def resolve(weights: Path) -> Path:
    """The directory holding kp_detector.pt and vox256.pt (one of the two files may be given instead)."""
    weights = Path(weights)
    if weights.is_file() and weights.name in (KP_FILE, MODEL_FILE):
        weights = weights.parent
    if not weights.is_dir():
        raise WeightsError(f"{weights}: not a directory (pass --weights DIR holding {KP_FILE} and {MODEL_FILE})")
    return weights


def load_state_dicts(weights: Path) -> dict[str, dict[str, torch.Tensor]]:
    """{net: state_dict} for the four networks from `weights` (a directory), verified; WeightsError otherwise."""
    d = resolve(weights)
    for name in (KP_FILE, MODEL_FILE):
        if not (d / name).is_file():
            raise WeightsError(f"{d / name}: missing (FSRT needs {KP_FILE} and {MODEL_FILE} in the --weights "
                               f"directory; see `python -m export download fsrt`)")
    out = {"kp_detector": check_state_dict(_torch_load(d / KP_FILE), "kp_detector", str(d / KP_FILE))}
    ckpt = _torch_load(d / MODEL_FILE)
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{d / MODEL_FILE}: expected a dict with encoder/decoder/expression_encoder, "
                           f"got {type(ckpt).__name__}")
    for net in ("expression_encoder", "encoder", "decoder"):
        if net not in ckpt:
            have = ", ".join(sorted(map(str, ckpt))[:6]) or "nothing"
            raise WeightsError(f"{d / MODEL_FILE}: no '{net}' state_dict (has {have}); is it an FSRT checkpoint?")
        out[net] = check_state_dict(ckpt[net], net, f"{d / MODEL_FILE}['{net}']")
    return out


def sha256s(weights: Path) -> str:
    d = resolve(weights)
    return ",".join(sha256_file(d / f) for f in (KP_FILE, MODEL_FILE))


def main(argv=None) -> int:
    def verify(args):
        load_state_dicts(args.weights)
        print_verified(resolve(args.weights), (KP_FILE, MODEL_FILE), SHA256)
    return one_line_cli("python -m export.fsrt.weights", __doc__, lambda p: p.add_argument(
        "--weights", type=Path, required=True, help=f"directory holding {KP_FILE} and {MODEL_FILE}"), verify, argv)


if __name__ == "__main__":
    raise SystemExit(main())

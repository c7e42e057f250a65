"""FFWM (csyxwei/FFWM): flow-based feature warping, 128x128 profile RGB in [0,1] -> frontal, no pose control."""
from pathlib import Path

from ..common.family import Family
from . import export_spec, reference


def _download(dest: Path) -> Path:
    # imported here so `python -m export.ffwm.download` / `.weights` run without a double-import warning
    from .download import download
    return download(dest)


FAMILY = Family(
    name="ffwm",
    summary="FFWM flow estimator + warping generator (68.6 M params, 128 px, no pose control)",
    run_fixtures=reference.run_fixtures,
    download=_download,
    export=export_spec.export,
    networks=[export_spec.NETWORK],
    weights_file="latest_net_netG.pth",  # with latest_net_flowNetF.pth beside it (weights.FILES)
)

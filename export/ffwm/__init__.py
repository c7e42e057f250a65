"""FFWM (csyxwei/FFWM): flow-based feature warping, 128x128 profile RGB in [0,1] -> frontal, no pose control."""
from pathlib import Path

from ..common.family import Family, InProcess, Install
from . import export_spec, reference


def _download(dest: Path) -> Path:
    # imported here so `python -m export.ffwm.download` / `.weights` run without a double-import warning
    from .download import download
    return download(dest)


def _eager():
    from .export_spec import ServingFFWM
    from .onnx_export import servable
    return ServingFFWM(servable()).eval()


FAMILY = Family(
    name="ffwm",
    summary="FFWM flow estimator + warping generator (68.6 M params, 128 px, no pose control)",
    run_fixtures=reference.run_fixtures,
    download=_download,
    export=export_spec.export,
    networks=[export_spec.NETWORK],
    weights_file="latest_net_netG.pth",  # with latest_net_flowNetF.pth beside it (weights.FILES)
    reference=InProcess(_eager, export_spec.NETWORK, 128),
    install=Install(
        extra_packages=("torch", "onnx"),
        params_m=68.6,
        weights="checkpoints/ffwm/latest_net_flowNetF.pth + latest_net_netG.pth (Google Drive / Baidu; manual)",
        commands=("git clone ... && cd facefront", "make setup", "(fetch the FFWM checkpoints by hand into weights/ffwm/)",
                  "make export MODELS=ffwm", "make serve", "python -m client frontalize photo.jpg -o out --model ffwm"),
        upstream={"repo": "csyxwei/FFWM", "source": "README.md, requirements.txt",
                  "states": "python 3.7, pytorch 1.5.0 + torchvision 0.6.0, CUDA (cudatoolkit 9.2), custom CUDA "
                            "extensions built with setup.sh; requirements.txt: opencv-python==4.3.0.36, dominate, "
                            "tensorboardX, tqdm"}),
)

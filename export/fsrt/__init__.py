"""FSRT (andrerochow/fsrt, Rochow et al., CVPR 2024): transformer face reenactment, driven by mesh3d's render of
the same person at the requested pose (reference.frontalize), so it gains a pose control.

Four networks: keypoint detector and expression encoder (on the source and the driver), scene encoder (once
per source photo) and per-pixel decoder (run in chunks of query pixels). Weights: `kp_detector.pt` and
`vox256.pt` in one folder (weights.py).

Importing this package stays light (no torch): the networks load on first use.
"""
from ..common.family import Family, Install

# model_repository leaf folder of each network (export_spec.NETWORKS holds the graph interfaces)
NETWORKS = ["fsrt_kp_detector", "fsrt_expression_encoder", "fsrt_encoder", "fsrt_decoder"]


def _run_fixtures(*args, **kwargs):
    from . import reference
    return reference.run_fixtures(*args, **kwargs)


def _export(*args, **kwargs):
    from . import export_spec
    return export_spec.export(*args, **kwargs)


_NETS = {}


def _end_to_end(rgb):
    """Whole photo -> uint8 face in-process, as the served ensemble does it (its crop, mesh3d driver, frontal, the
    CPU flavour's 128 px): bench fidelity compares the served answer with this."""
    import numpy as np

    from facefront.fsrt import stages

    from . import reference
    if "nets" not in _NETS:
        _NETS["nets"] = reference.build()
    crop, landmarks = stages.face_crop(rgb)
    out = reference.frontalize(crop, landmarks=landmarks, nets=_NETS["nets"], size=128)
    return np.asarray(stages.to_uint8(out.raw))


def _download(*args, **kwargs):
    from . import download
    return download.download(*args, **kwargs)


FAMILY = Family(
    name="fsrt",
    summary="FSRT keypoints + expression + scene encoder + per-pixel decoder (61.8 M params, 256 px, "
            "pose via a mesh3d-rendered driver)",
    run_fixtures=_run_fixtures,
    download=_download,
    export=_export,
    end_to_end=_end_to_end,
    networks=NETWORKS,
    weights_file="vox256.pt",  # with kp_detector.pt beside it (weights.FILES)
    install=Install(
        extra_packages=("torch", "onnx", "scipy"),   # export only; serving runs onnxruntime
        params_m=61.8,
        weights="kp_detector.pt + vox256.pt from the authors' Google Drive folder (manual; no licence stated)",
        commands=("git clone ... && cd facefront", "make setup", "(fetch kp_detector.pt, vox256.pt by hand into "
                  "weights/fsrt/)", "make export MODELS=fsrt", "make serve",
                  "python -m client frontalize photo.jpg -o out --model fsrt --timeout 600"),
        upstream={"repo": "andrerochow/fsrt", "source": "../shared/parity/fsrt/README.md (the run that made the "
                                                         "fixtures)",
                  "states": "PyTorch with einops, pyyaml and scipy; checkpoints on Google Drive; no licence file"}),
)

"""LivePortrait (KwaiVGI): implicit-keypoint portrait animation; here it re-poses a face (frontalize = pose 0/0/0).

Five networks: appearance F, motion M, warping W, SPADE generator G, stitching/retargeting S. The served path is
F + M on the source crop, keypoint math (facefront/liveportrait/kinematics.py, the runtime) to the target pose, then W + G.

Importing this package stays light (no torch): `python -m export list` reads FAMILY without building networks.
"""
from ..common.family import Family, Install

# network -> repository leaf folder: the one list (export_spec and bench read it from here). S is not a leaf: the
# liveportrait_keypoints python stage runs it.
_LEAVES = {"F": "liveportrait_appearance", "M": "liveportrait_motion", "W": "liveportrait_warping",
           "G": "liveportrait_generator"}
LEAVES = dict(_LEAVES)


def _run_fixtures(*args, **kwargs):
    from . import reference
    return reference.run_fixtures(*args, **kwargs)


def _download(*args, **kwargs):
    from . import download
    return download.download(*args, **kwargs)


def _export(*args, **kwargs):
    from . import export_spec
    return export_spec.export_to_repository(*args, **kwargs)


FAMILY = Family(
    name="liveportrait",
    summary="LivePortrait F/M/W/G/S (~130 M params, 256 px in, 512 px out, pose and expression control)",
    run_fixtures=_run_fixtures,
    download=_download,
    export=_export,
    networks=list(_LEAVES.values()),
    weights_file="base_models",  # weights/liveportrait/{base_models,retargeting_models}/ (weights.FILES)
    # no single-network reference: its in-process chain is reference.Pipeline, measured by `python -m bench lpspeed`
    # and compared with the served ensemble in tests/test_liveportrait_serving.py
    install=Install(
        extra_packages=("torch", "onnx"),
        params_m=130.0,
        weights="five .pth files (appearance, motion, warping, SPADE, stitching) from KwaiVGI/LivePortrait on HF",
        commands=("git clone ... && cd facefront", "make setup", "python -m export download liveportrait",
                  "make export MODELS=liveportrait", "make serve",
                  "python -m client frontalize photo.jpg -o out --model liveportrait"),
        upstream={"repo": "KwaiVGI/LivePortrait", "source": "requirements_base.txt",
                  "states": "torch==2.3.0 + torchvision==0.18.0 + torchaudio==2.3.0 (cu118 index), numpy 1.26.4, "
                            "opencv-python, scipy, imageio, lmdb, tqdm, rich, ffmpeg-python, onnx 1.16.1, "
                            "scikit-image, albumentations, matplotlib, imageio-ffmpeg, tyro, gradio 4.37.1, "
                            "pykalman, transformers 4.22.0, timm 0.9.7, addict, yapf (25 pins); plus "
                            "onnxruntime-gpu/insightface for its face detector"}),
)

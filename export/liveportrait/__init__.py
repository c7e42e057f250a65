"""LivePortrait (KwaiVGI): implicit-keypoint portrait animation; here it re-poses a face (frontalize = pose 0/0/0).

Five networks: appearance F, motion M, warping W, SPADE generator G, stitching/retargeting S. The served path is
F + M on the source crop, keypoint math (kinematics.py) to the target pose, then W + G.

Importing this package stays light (no torch): the serving stages import `export.liveportrait.kinematics`.
"""
from ..common.family import Family


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
    networks=["liveportrait_appearance", "liveportrait_motion", "liveportrait_warping", "liveportrait_generator"],
    pose_control=True,
    weights_file="base_models",  # weights/liveportrait/{base_models,retargeting_models}/ (weights.FILES)
)

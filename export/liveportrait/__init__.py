"""LivePortrait (KwaiVGI): implicit-keypoint portrait animation; here it re-poses a face (frontalize = pose 0/0/0).

Five networks: appearance F, motion M, warping W, SPADE generator G, stitching/retargeting S. The served path is
F + M on the source crop, keypoint math (kinematics.py) to the target pose, then W + G.
"""
from ..common.family import Family
from . import download, reference

FAMILY = Family(
    name="liveportrait",
    summary="LivePortrait F/M/W/G/S (~130 M params, 256 px in, 512 px out, pose and expression control)",
    run_fixtures=reference.run_fixtures,
    download=download.download,
    pose_control=True,
    weights_file="base_models",  # weights/liveportrait/{base_models,retargeting_models}/ (weights.FILES)
)

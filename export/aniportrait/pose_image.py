"""The pose image AniPortrait is conditioned on (468 FaceMesh landmarks drawn as upstream draws its landmark images,
re-posed for frontalization). The drawing is the runtime's (facefront/aniportrait/pose_image.py), the one copy that
both the served loop and this PyTorch reference use."""
from facefront.aniportrait.pose_image import (  # noqa: F401  (re-exported for the reference and tests)
    CANVAS,
    EDGE_GROUPS,
    THICKNESS,
    draw,
    edges,
    pose_image,
    repose,
    to_crop,
)

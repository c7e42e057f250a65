"""mesh3d: facefront's weight-free 3-D geometric frontalization (after Hassner et al., CVPR 2015).

It has no networks of its own: the runtime (`facefront.face.mesh3d`) fits the face's own 468 landmarks and
re-renders them at the requested pose, served as the python model `mesh3d_frontalize`. It registers here like
every family so that the benchmarks and the report find it the same way.
"""
from ..common.family import Family, Install


def _frontalize(rgb):
    from facefront.face.mesh3d import frontalize
    return frontalize(rgb, size=256)


FAMILY = Family(
    name="mesh3d",
    summary="mesh3d geometric frontalization (no weights: the face's own 468 landmarks, 256 px, pose control)",
    weights_note="none (weight-free: geometry from the face's own landmarks)",
    end_to_end=_frontalize,
    demo_synthetic=True,   # nothing synthetic about it: it has no weights
    install=Install(
        params_m=0.0,
        weights="none: geometric (MediaPipe's face models, inside the mediapipe wheel of the base)",
        commands=("git clone ... && cd facefront", "make setup", "make serve",
                  "python -m client frontalize photo.jpg -o out --model mesh3d"),
        upstream={"repo": "(none: facefront's own method, after Hassner et al., CVPR 2015)", "source": "-",
                  "states": "-"}),
)

"""scaleway/frontalization: a small GAN generator, 128x128 profile -> 128x128 frontal face."""
from ..common.family import Family
from . import export_spec, reference, weights

FAMILY = Family(
    name="scaleway",
    summary="scaleway/frontalization GAN generator (5.6 M params, 128 px, no pose control)",
    run_fixtures=reference.run_fixtures,
    export=export_spec.export,
    download=weights.download,
    networks=[export_spec.NETWORK],
    weights_file=weights.FILENAME,
)

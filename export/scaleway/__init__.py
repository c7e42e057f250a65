"""scaleway/frontalization: a small GAN generator, 128x128 profile -> 128x128 frontal face."""
from ..common.family import Family, InProcess, Install
from . import export_spec, reference, weights


def _eager():
    from .export_spec import ServingGenerator
    return ServingGenerator(reference.build()).eval()


FAMILY = Family(
    name="scaleway",
    summary="scaleway/frontalization GAN generator (5.6 M params, 128 px, no pose control)",
    run_fixtures=reference.run_fixtures,
    export=export_spec.export,
    download=weights.download,
    networks=[export_spec.NETWORK],
    weights_file=weights.FILENAME,
    reference=InProcess(_eager, export_spec.NETWORK, 128),
    demo_synthetic=True,   # cheap enough to show the whole chain even with synthetic weights (labelled so)
    install=Install(
        extra_packages=("torch", "onnx"),  # export only; serving runs onnxruntime
        params_m=5.6,
        weights="generator_v0.pt from the upstream repository (pretrained/)",
        commands=("git clone ... && cd facefront", "make setup", "python -m export download scaleway",
                  "make export MODELS=scaleway", "make serve",
                  "python -m client frontalize photo.jpg -o out --model scaleway"),
        upstream={"repo": "scaleway/frontalization", "source": "README.md",
                  "states": "PyTorch; NVIDIA DALI for training-data loading; a GPU instance in its tutorial; no "
                            "requirements file. Weights: pretrained/generator_v0.pt"}),
)

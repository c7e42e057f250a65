"""AniPortrait (Wei et al., 2024): Stable-Diffusion-1.5 pose-to-image; frontalization = the photo's own landmarks
re-posed to frontal, drawn as a pose image, and denoised into that person in that pose.

Five networks: VAE, CLIP image encoder, reference UNet (returns its attention bank), 3-D denoising UNet with motion
modules (takes the bank), pose guider; DDIM with v-prediction and zero-SNR. 2.73 B parameters at full size.

Importing this package stays light (no torch, no diffusers): everything heavy is imported on first use.
"""
from ..common.family import Family, Install


def _run_fixtures(*args, **kwargs):
    from . import reference
    return reference.run_fixtures(*args, **kwargs)


def _export(repository, weights=None, log=print, full: bool = False):
    # without real weights this writes nothing unless asked (`--synthetic-full`): full-size synthetic graphs are
    # ~11 GB and take tens of minutes, so `make export` / `make test` say so in one line and go on
    from . import export_spec
    return export_spec.export(repository, weights, log=log, full=full)


def _download(*args, **kwargs):
    from . import download
    return download.download(*args, **kwargs)


FAMILY = Family(
    name="aniportrait",
    summary="AniPortrait pose-to-image on SD1.5 (2.73 B params, reference UNet + 3-D denoising UNet, DDIM; "
            "256 px on CPU, 512 px on GPU; pose control)",
    run_fixtures=_run_fixtures,
    download=_download,
    export=_export,
    networks=["aniportrait_vae_encoder", "aniportrait_vae_decoder", "aniportrait_image_encoder",
              "aniportrait_reference_unet", "aniportrait_denoising_unet", "aniportrait_pose_guider"],
    weights_file="denoising_unet.pth",  # weights/aniportrait/ layout: see weights.py
    install=Install(
        params_m=2727.4,
        weights="huggingface.co/ZJYang/AniPortrait (denoising_unet, reference_unet, pose_guider, motion_module .pth) "
                "+ stabilityai/sd-vae-ft-mse + lambdalabs/sd-image-variations-diffusers image_encoder",
        commands=("python -m export download aniportrait", "python -m export parity aniportrait "
                  "../shared/parity/aniportrait/public"),
    ),
)

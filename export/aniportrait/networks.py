"""The five AniPortrait networks: constructors (on the meta device: no memory, no random init) and thin wrappers
that give each one the inputs/outputs the pipeline and the exported graphs use.

pose_guider, reference_unet, denoising_unet are our modules (pose_guider.py, unet.py); the VAE is diffusers'
AutoencoderKL and the image encoder transformers' CLIPVisionModelWithProjection, both key-compatible with the
published checkpoints.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import FULL, AniPortraitConfig
from .pose_guider import PoseGuider
from .unet import DenoisingUNet, ReferenceUNet

NETWORKS = ("pose_guider", "vae", "image_encoder", "reference_unet", "denoising_unet")
LATENT_SCALE = 0.18215  # SD1.5's VAE scaling factor, hard-coded upstream


def make_vae(cfg: AniPortraitConfig = FULL) -> nn.Module:
    from diffusers import AutoencoderKL
    v = cfg.vae
    n = len(v.block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=v.block_out_channels,
                         layers_per_block=v.layers_per_block, act_fn="silu", latent_channels=v.latent_channels,
                         norm_num_groups=v.norm_groups, sample_size=256)


def make_image_encoder(cfg: AniPortraitConfig = FULL) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    c = cfg.clip
    conf = CLIPVisionConfig(hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                            num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                            patch_size=c.patch_size, image_size=c.image_size, projection_dim=c.projection_dim,
                            hidden_act="quick_gelu", layer_norm_eps=1e-5)
    return CLIPVisionModelWithProjection(conf)


CONSTRUCTORS = {
    "pose_guider": lambda cfg: PoseGuider(cfg.pose_guider),
    "vae": make_vae,
    "image_encoder": make_image_encoder,
    "reference_unet": lambda cfg: ReferenceUNet(cfg.unet),
    "denoising_unet": lambda cfg: DenoisingUNet(cfg.unet),
}


def construct(net: str, cfg: AniPortraitConfig = FULL) -> nn.Module:
    """The network with uninitialised (meta) tensors; fill it with weights.materialize()."""
    if net not in CONSTRUCTORS:
        raise ValueError(f"unknown AniPortrait network {net!r}; known: {', '.join(NETWORKS)}")
    with torch.device("meta"):
        return CONSTRUCTORS[net](cfg)


class VaeEncoder(nn.Module):
    """image B x3xHxW in [-1, 1] -> (latent mean, log-variance clamped to [-30, 20]); the pipeline uses
    mean * 0.18215 (no sampling)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.encoder, self.quant_conv = vae.encoder, vae.quant_conv

    def forward(self, image):
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(image)), 2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0)


class VaeDecoder(nn.Module):
    """scaled latents B x4xhxw -> decoded sample B x3xHxW (about [-1, 1], unclamped)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.post_quant_conv, self.decoder = vae.post_quant_conv, vae.decoder

    def forward(self, latents):
        return self.decoder(self.post_quant_conv(1 / LATENT_SCALE * latents))


class ImageEncoder(nn.Module):
    """CLIP pixel values B x3x224x224 -> (image_embeds B x D, last_hidden_state before post_layernorm)."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values):
        out = self.clip(pixel_values=pixel_values, return_dict=True)
        return out.image_embeds, out.last_hidden_state

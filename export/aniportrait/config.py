"""Network sizes: the released (full) configuration and a reduced one of the same code for fast tests.

Full values are the published configs the parity manifest names: Stable Diffusion 1.5's UNet, sd-vae-ft-mse, the
CLIP ViT-L/14 image encoder of sd-image-variations, AniPortrait's PoseGuider(320, use_ca=True) and motion modules
(inference_v2.yaml). The reduced configuration keeps every structural feature (four resolution levels, the
pose-feature channel ladder c, c, 2c, 4c, 4c, cross-attention, motion modules, GEGLU) at a few % of the cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UNetConfig:
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    heads: int = 8                      # SD1.5 "attention_head_dim 8" = 8 heads of C/8
    cross_attention_dim: int = 768
    norm_groups: int = 32
    in_channels: int = 4
    out_channels: int = 4
    # motion modules (AnimateDiff "Vanilla" temporal modules of the denoising UNet)
    motion_heads: int = 8
    motion_max_len: int = 32


@dataclass(frozen=True)
class PoseGuiderConfig:
    noise_latent_channels: int = 320    # = UNet block_out_channels[0]
    heads: int = 16                     # its own Transformer2DModel: 16 heads x 88 = 1408
    head_dim: int = 88
    norm_groups: int = 32


@dataclass(frozen=True)
class VaeConfig:
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_groups: int = 32


@dataclass(frozen=True)
class ClipConfig:
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    patch_size: int = 14
    image_size: int = 224
    projection_dim: int = 768           # = UNet cross_attention_dim


@dataclass(frozen=True)
class AniPortraitConfig:
    name: str = "full"
    unet: UNetConfig = field(default_factory=UNetConfig)
    pose_guider: PoseGuiderConfig = field(default_factory=PoseGuiderConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)


FULL = AniPortraitConfig()

REDUCED = AniPortraitConfig(
    name="reduced",
    unet=UNetConfig(block_out_channels=(32, 64, 128, 128), layers_per_block=1, heads=4, cross_attention_dim=32,
                    norm_groups=8, motion_heads=4),
    pose_guider=PoseGuiderConfig(noise_latent_channels=32, heads=2, head_dim=16, norm_groups=8),
    vae=VaeConfig(block_out_channels=(32, 32, 64, 64), layers_per_block=1, norm_groups=8),
    clip=ClipConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    projection_dim=32),
)

CONFIGS = {"full": FULL, "reduced": REDUCED}

"""Appearance feature extractor F: a 256x256 RGB source image -> a 32x16x64x64 feature volume.

Two stride-2 stages bring the image to 64x64 with 512 channels; those channels are read as 32 channels x 16 depth
slices, and six 3-D residual blocks refine the volume (LivePortrait paper, Sec. 3.1 / Fig. 2, "F").
"""
from __future__ import annotations

from torch import nn

from .layers import ConvBnAct2d, ConvBnPool2d, PreActResidual3d


class AppearanceFeatureExtractor(nn.Module):
    def __init__(self, image_channel: int = 3, block_expansion: int = 64, num_down_blocks: int = 2,
                 max_features: int = 512, reshape_channel: int = 32, reshape_depth: int = 16,
                 num_resblocks: int = 6):
        super().__init__()
        self.volume_channels = reshape_channel
        self.volume_depth = reshape_depth
        self.first = ConvBnAct2d(image_channel, block_expansion)
        widths = [min(max_features, block_expansion * 2 ** i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(ConvBnPool2d(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.second = nn.Conv2d(widths[-1], max_features, 1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", PreActResidual3d(reshape_channel))

    def forward(self, source_image):
        x = self.first(source_image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, _, h, w = x.shape
        return self.resblocks_3d(x.reshape(b, self.volume_channels, self.volume_depth, h, w))

"""FFWM (Wei et al., "Learning Flow-based Feature Warping for Face Frontalization with Illumination Inconsistent
Supervision", ECCV 2020): a flow estimator and a flow-warping generator, 128x128 profile RGB in [0,1] -> frontal.

Attribute names and layer indices follow the released checkpoints (`latest_net_flowNetF.pth`,
`latest_net_netG.pth`), so both load with strict keys; facts in ../shared/notes/models-scaleway-ffwm.md.

* `FlowEstimator` (upstream FlowNet(64)): a 7-level conv encoder and a coarse-to-fine decoder that predicts a tanh
  flow at every level. The flows are absolute sampling grids in grid_sample's normalised coordinates (NCHW).
* `WarpGenerator` (upstream FFWM(num_layers=3, isflip=True, sn=True)): a 4-level encoder; at each decoder level
  the encoder feature of the same size is warped by the flow, concatenated with its horizontal mirror, gated by an
  attention map, and merged with the upsampled decoder feature (and the previous level's image, after TP-GAN).
  Every conv carries torch.nn.utils.spectral_norm.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

LEAK = 0.2
IMAGE_SIZE = 128


# ---------------------------------------------------------------------------------------------- flow estimator

def _conv_bn_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.BatchNorm2d(cout), nn.LeakyReLU(LEAK))


def _upconv_bn_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=True), nn.BatchNorm2d(cout), nn.LeakyReLU(LEAK))


def _flow_head(cin: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, 2, 3, 1, 1, bias=True), nn.Tanh())


class FlowEstimator(nn.Module):
    """image Bx3xHxW -> flows at H, H/2, H/4 (Bx2xhxw, tanh): the sampling grids for the generator."""

    LEVELS = 7  # encoder levels 0..6; level k has stride 2**k

    def __init__(self, ngf: int = 64, in_channels: int = 3):
        super().__init__()
        # level k >= 1: a stride-2 conv (enc[k-1] -> mid[k]) then a stride-1 conv (mid[k] -> enc[k])
        enc = [ngf * m for m in (1, 2, 2, 4, 8, 8, 16)]
        mid = [0] + [ngf * m for m in (1, 2, 4, 8, 8, 16)]
        self.conv0 = _conv_bn_act(in_channels, enc[0])
        for k in range(1, self.LEVELS):
            setattr(self, f"conv{k}", _conv_bn_act(enc[k - 1], mid[k], stride=2))
            setattr(self, f"conv{k}_1", _conv_bn_act(mid[k], enc[k]))

        # Decoder level l (5..0) sees the merged feature of level l+1 and upsamples it; levels 5..3 also merge the
        # encoder feature of their size, levels 2..0 do not.
        dec = {5: ngf * 8, 4: ngf * 4, 3: ngf * 2, 2: ngf, 1: ngf // 2, 0: ngf // 4}
        merged = {6: enc[6]}
        for lvl in range(5, -1, -1):
            skip = enc[lvl] if lvl >= 3 else 0
            merged[lvl] = skip + dec[lvl] + 2
            setattr(self, f"deconv{lvl}", _upconv_bn_act(merged[lvl + 1], dec[lvl]))
        for lvl in range(5, -1, -1):
            setattr(self, f"inter_conv{lvl}", _conv_bn_act(merged[lvl], dec[lvl]))
        # Present in the released checkpoint (an occlusion branch) but never used by forward().
        for lvl in range(5, -1, -1):
            setattr(self, f"inter_conv_occ{lvl}", _conv_bn_act(merged[lvl] - 1, dec[lvl]))
        self.predict_flow6 = _flow_head(enc[6])
        for lvl in range(5, -1, -1):
            setattr(self, f"predict_flow{lvl}", _flow_head(dec[lvl]))
        for lvl in range(5, -1, -1):
            setattr(self, f"upsampled_flow{lvl + 1}_to_{lvl}", nn.ConvTranspose2d(2, 2, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = [self.conv0(x)]
        for k in range(1, self.LEVELS):
            down = getattr(self, f"conv{k}")(feats[-1])
            feats.append(getattr(self, f"conv{k}_1")(down))
        merged = feats[6]
        flow = self.predict_flow6(merged)
        flows = {}
        for lvl in range(5, -1, -1):
            up_flow = getattr(self, f"upsampled_flow{lvl + 1}_to_{lvl}")(flow)
            up_feat = getattr(self, f"deconv{lvl}")(merged)
            parts = ([feats[lvl]] if lvl >= 3 else []) + [up_feat, up_flow]
            merged = torch.cat(parts, 1)
            flow = getattr(self, f"predict_flow{lvl}")(getattr(self, f"inter_conv{lvl}")(merged))
            flows[lvl] = flow
        return flows[0], flows[1], flows[2]


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `features` at the absolute grid `flow` (Bx2xHxW, x then y in [-1, 1]); bilinear, zero padding,
    align_corners=False (the PyTorch default the checkpoints were trained with)."""
    return F.grid_sample(features, flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


# ------------------------------------------------------------------------------------------------- generator

def _sn_conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, stride, pad))


class ResBlock(nn.Module):
    """act(two 3x3 conv-BN with a LeakyReLU between + a 1x1 projection of the input)."""

    def __init__(self, cin: int, cout: int | None = None, final: str = "lrelu"):
        super().__init__()
        cout = cin if cout is None else cout
        self.input = _sn_conv(cin, cout, 1)
        self.blocks = nn.Sequential(_sn_conv(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(LEAK),
                                    _sn_conv(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout))
        self.final = nn.Sigmoid() if final == "sigmoid" else nn.LeakyReLU(LEAK)

    def forward(self, x):
        return self.final(self.blocks(x) + self.input(x))


def _encoder_stage(cin: int, cout: int, k: int, stride: int, pad: int, bn: bool = True) -> nn.Sequential:
    layers = [_sn_conv(cin, cout, k, stride, pad)] + ([nn.BatchNorm2d(cout)] if bn else [])
    return nn.Sequential(*layers, nn.LeakyReLU(LEAK), ResBlock(cout))


def _upsample_stage(cin: int, cout: int) -> nn.Sequential:
    """2x upsampling by sub-pixel convolution: conv to 4*cout channels, PixelShuffle, BN, LeakyReLU."""
    return nn.Sequential(_sn_conv(cin, cout * 4, 3, 1, 1), nn.PixelShuffle(2), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(LEAK))


def _attention(c: int) -> nn.Sequential:
    conv_bn_act = nn.Sequential(_sn_conv(c, c, 3, 1, 1), nn.BatchNorm2d(c), nn.LeakyReLU(LEAK))
    return nn.Sequential(conv_bn_act, ResBlock(c, c, final="sigmoid"))


def _to_image(c: int) -> nn.Sequential:
    """3-channel image head; index 0 is the conv whose output are the pre-sigmoid logits."""
    return nn.Sequential(_sn_conv(c, 3, 3, 1, 1), nn.Sigmoid())


class WarpGenerator(nn.Module):
    """(image Bx3x128x128, flows [f32, f64, f128]) -> (fake32, fake64, fake128 in [0,1], last attention map)."""

    LEVELS = 3

    def __init__(self):
        super().__init__()
        enc = [64, 64, 128, 256]
        dec = [128, 64, 64]  # channels after the upsampling stage of decoder level i
        self.e0 = _encoder_stage(3, enc[0], 7, 1, 3, bn=False)
        for i in range(1, 4):
            setattr(self, f"e{i}", _encoder_stage(enc[i - 1], enc[i], 4, 2, 1))
        # Decoder level i warps encoder level 2-i (its size), mirrors it (x2 channels) and merges with the
        # upsampled decoder feature; levels 1 and 2 also get the previous level's image (+3).
        merged = []
        for i in range(self.LEVELS):
            merged.append(2 * enc[2 - i] + dec[i] + (3 if i else 0))
        ups_in = [enc[3]] + merged[:-1]
        for i in range(self.LEVELS):
            setattr(self, f"d{i}", _upsample_stage(ups_in[i], dec[i]))
        for i in range(self.LEVELS):
            setattr(self, f"dres{i}", nn.Sequential(ResBlock(merged[i]), ResBlock(merged[i])))
        for i in range(self.LEVELS):
            setattr(self, f"rec{i}", _to_image(merged[i]))
        for i in range(self.LEVELS):
            setattr(self, f"att{i}", _attention(2 * enc[2 - i]))

    def forward(self, x: torch.Tensor, flows: list[torch.Tensor] | tuple[torch.Tensor, ...]):
        feats = [self.e0(x)]
        for i in range(1, 4):
            feats.append(getattr(self, f"e{i}")(feats[-1]))
        hidden = feats[3]
        images: list[torch.Tensor] = []
        gate = None
        for i in range(self.LEVELS):
            up = getattr(self, f"d{i}")(hidden)
            warped = warp(feats[2 - i], flows[i])
            # the frontal face is roughly symmetric: the mirrored warp fills in the self-occluded half
            both = torch.cat((warped, torch.flip(warped, (3,))), 1)
            gate = getattr(self, f"att{i}")(both)
            parts = [both * gate, up]
            if images:
                parts.append(F.interpolate(images[-1], scale_factor=2, mode="bilinear", align_corners=False))
            hidden = getattr(self, f"dres{i}")(torch.cat(parts, 1))
            images.append(getattr(self, f"rec{i}")(hidden))
        return images[0], images[1], images[2], gate


class Frontalizer(nn.Module):
    """The served graph: image Bx3x128x128 RGB in [0,1] -> frontal Bx3x128x128 in [0,1] (fake_F128)."""

    def __init__(self, flow_net: FlowEstimator, generator: WarpGenerator):
        super().__init__()
        self.flow_net = flow_net
        self.generator = generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f128, f64, f32 = self.flow_net(image)
        return self.generator(image, (f32, f64, f128))[2]

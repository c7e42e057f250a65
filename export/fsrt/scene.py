"""FSRT's scene encoder and per-pixel decoder (Rochow et al., CVPR 2024; SRT/OSRT architecture).

Encoder (once per source photo): per pixel, cat([RGB 3, keypoint PE 160, pixel PE 64, expression 256]) = 483
channels -> 3 conv blocks (3x3 no bias, ReLU; the second conv stride 2) 483-96-192-192-384-384-768 (32x32) ->
1x1 conv -> 1024 tokens (row-major) -> 5 self-attention blocks -> z [B, 1024, 768].

Decoder (per output pixel, every pixel independent): query = cat([driving keypoint PE 160, pixel PE 64,
driving expression 256]) = 480 -> input MLP 480-720-480 -> 2 cross-attention blocks over z -> render MLP
480-1536x4-3 (no output activation: the raw value is the colour, clamped to [0, 1] by the caller).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import PositionalEncoding, Transformer

NUM_KP = 10
EXPRESSION = 256
TOKENS = 1024            # 32x32 patches of a 256x256 source
DIM = 768
PIX_OCTAVES, PIX_START = 16, -1
KP_OCTAVES, KP_START = 4, -1
QUERY_DIM = 2 * 2 * PIX_OCTAVES + 2 * 2 * NUM_KP * KP_OCTAVES + EXPRESSION   # 64 + 160 + 256 = 480
GRID = 256               # the source resolution the encoder was trained at
DEFAULT_CHUNK = 8192     # query pixels per decoder call: ~1 GiB of attention scratch at most (eager, fp32)


def pixel_grid(size: int = 256) -> torch.Tensor:
    """[size, size, 2] fp32 pixel centres (x from the column, y from the row) in (-1, 1):
    ((2j + 1 - size) / size, (2i + 1 - size) / size); for 256 this is upstream's (j + 0.5 - 128) / 128, exact."""
    c = (2 * torch.arange(size, dtype=torch.float64) + 1 - size) / size
    c = c.float()
    return torch.stack([c.view(1, size).expand(size, size), c.view(size, 1).expand(size, size)], -1).contiguous()


class PoseEncoding(nn.Module):
    """The two positional encodings: keypoints on the 20-vector (x0, y0, x1, y1, ...), pixels on (x, y).
    Both run in fp32 (see PositionalEncoding); `export_spec.fp32_layers` lists their graph nodes."""

    def __init__(self):
        super().__init__()
        self.kp_encoding = PositionalEncoding(KP_OCTAVES, KP_START)
        self.pix_encoding = PositionalEncoding(PIX_OCTAVES, PIX_START)


class SceneEncoder(nn.Module):
    """Keys: `conv_blocks.{0,1,2}.layers.{0,2}.weight`, `per_patch_linear.*`, `transformer.layers.*`."""

    def __init__(self, num_conv_blocks: int = 3, num_att_blocks: int = 5):
        super().__init__()
        self.positional = PoseEncoding()
        cin, hidden = 3 + 4 * PIX_OCTAVES + 4 * NUM_KP * KP_OCTAVES + EXPRESSION, 96
        blocks = []
        for _ in range(num_conv_blocks):
            blocks.append(_ConvBlock(cin, hidden, 2 * hidden))
            cin, hidden = 2 * hidden, 2 * hidden
        self.conv_blocks = nn.Sequential(*blocks)
        self.per_patch_linear = nn.Conv2d(cin, DIM, 1)
        self.transformer = Transformer(DIM, num_att_blocks, mlp_dim=2 * DIM)
        # the 256 grid's pixel encoding, 64x256x256, computed once by the same fp32 ops: an exported graph then
        # holds it as a constant instead of running sin/cos at 5e4 rad (not in the state_dict)
        self.register_buffer("grid_encoding", self.positional.pix_encoding(pixel_grid(GRID)).permute(2, 0, 1),
                             persistent=False)

    def tokens(self, image: torch.Tensor, keypoints: torch.Tensor, expression: torch.Tensor,
               pixels: torch.Tensor | None = None) -> torch.Tensor:
        """Bx768x32x32 patch features (before the transformer) of one source image per batch entry.
        image Bx3xHxW, keypoints Bx10x2, expression Bx256, pixels HxWx2 or BxHxWx2 (default: pixel_grid(H))."""
        b, _, h, w = image.shape
        pe = self.positional
        if pixels is None:  # the fixed grid: its encoding is precomputed, broadcast over the batch
            enc = self.grid_encoding if (h, w) == (GRID, GRID) else \
                pe.pix_encoding(pixel_grid(h).to(image.device)).permute(2, 0, 1)
            pix = enc.unsqueeze(0).expand(b, enc.shape[0], h, w)
        else:
            pix = pe.pix_encoding(pixels if pixels.dim() == 4 else pixels.unsqueeze(0).expand(b, h, w, 2))
            pix = pix.permute(0, 3, 1, 2)                                        # Bx64xHxW
        kp = pe.kp_encoding(keypoints.reshape(b, 2 * NUM_KP))                    # Bx160
        x = torch.cat([image, kp[:, :, None, None].expand(b, kp.shape[1], h, w), pix,
                       expression[:, :, None, None].expand(b, expression.shape[1], h, w)], 1)
        return self.per_patch_linear(self.conv_blocks(x))

    def forward(self, image, keypoints, expression, pixels=None):
        """-> z Bx1024x768 (tokens row-major over the 32x32 patches)."""
        t = self.tokens(image, keypoints, expression, pixels)
        return self.transformer(t.flatten(2).transpose(1, 2))


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(cin, hidden, 3, padding=1, bias=False), nn.ReLU(),
                                    nn.Conv2d(hidden, cout, 3, stride=2, padding=1, bias=False), nn.ReLU())

    def forward(self, x):
        return self.layers(x)


class _QueryTransformer(nn.Module):
    """Checkpoint prefix `allocation_transformer.`: the input MLP and the cross-attention blocks."""

    def __init__(self, num_att_blocks: int):
        super().__init__()
        self.positional = PoseEncoding()
        self.input_mlp = nn.Sequential(nn.Linear(QUERY_DIM, 720), nn.ReLU(), nn.Linear(720, QUERY_DIM))
        self.transformer = Transformer(QUERY_DIM, num_att_blocks, mlp_dim=2 * DIM, kv_dim=DIM)


class PixelDecoder(nn.Module):
    """Keys: `allocation_transformer.{input_mlp,transformer}.*`, `render_mlp.{0,2,4,6,8}.*`."""

    def __init__(self, num_att_blocks: int = 2):
        super().__init__()
        self.allocation_transformer = _QueryTransformer(num_att_blocks)
        layers: list[nn.Module] = [nn.Linear(QUERY_DIM, 1536)]
        for _ in range(3):
            layers += [nn.ReLU(), nn.Linear(1536, 1536)]
        self.render_mlp = nn.Sequential(*layers, nn.ReLU(), nn.Linear(1536, 3))

    def queries(self, pixels: torch.Tensor, keypoints: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """BxPx480 query features. keypoints Bx10x2 (one set per image) or BxPx10x2 (upstream's per-pixel copy)."""
        b, p = pixels.shape[:2]
        pe = self.allocation_transformer.positional
        if keypoints.dim() == 4:
            kp = pe.kp_encoding(keypoints.reshape(b, p, 2 * NUM_KP))
        else:  # the same 160 values for every pixel: encode once, broadcast (elementwise ops: same numbers)
            kp = pe.kp_encoding(keypoints.reshape(b, 1, 2 * NUM_KP)).expand(b, p, 4 * NUM_KP * KP_OCTAVES)
        return torch.cat([kp, pe.pix_encoding(pixels), expression[:, None, :].expand(b, p, expression.shape[-1])],
                         -1)

    def keys_values(self, z: torch.Tensor):
        return self.allocation_transformer.transformer.keys_values(z)

    def decode(self, queries: torch.Tensor, kvs, taps: dict | None = None) -> torch.Tensor:
        """BxPx480 queries -> BxPx3 raw colours; `taps` (a dict) receives input_mlp and transformer outputs."""
        at = self.allocation_transformer
        x = at.input_mlp(queries)
        if taps is not None:
            taps["input_mlp"] = x
        x = at.transformer(x, kvs)
        if taps is not None:
            taps["transformer"] = x
        return self.render_mlp(x)

    def forward(self, z, pixels, keypoints, expression, chunk: int | None = None):
        """z Bx1024x768, pixels BxPx2, keypoints Bx10x2 (or BxPx10x2), expression Bx256 -> rgb BxPx3.

        `chunk`: decode at most this many query pixels at a time (bounded memory). Pixels are independent, so
        the result equals the unchunked one up to float rounding; the keys/values of z are computed once."""
        kvs = self.keys_values(z)
        p = pixels.shape[1]
        if not chunk or chunk >= p:
            return self.decode(self.queries(pixels, keypoints, expression), kvs)
        parts = []
        for i in range(0, p, chunk):
            kp = keypoints[:, i:i + chunk] if keypoints.dim() == 4 else keypoints
            parts.append(self.decode(self.queries(pixels[:, i:i + chunk], kp, expression), kvs))
        return torch.cat(parts, 1)

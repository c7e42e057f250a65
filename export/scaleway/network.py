"""scaleway/frontalization generator G: 128x128 profile in [-1, 1] -> 128x128 frontal face (tanh).

Layer indices match the released checkpoint's `main.<idx>.*` keys (facts: ../shared/notes/models-scaleway-ffwm.md):
an encoder of six stride-2 convs down to 2x2, a max-pool to a 512-d code, and six transposed convs back up.
"""
from __future__ import annotations

from torch import nn

ENC = [3, 16, 32, 64, 128, 256, 512]
DEC = [512, 256, 128, 64, 32, 16]


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(ENC[:-1], ENC[1:])):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=True))
            if i < 5:  # the last encoder conv has no norm/activation
                layers += [nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers.append(nn.MaxPool2d(2))  # 2x2 -> 1x1, index 16: the 512-d code
        for i, (cin, cout) in enumerate(zip(DEC[:-1], DEC[1:])):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(DEC[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


CODE_INDEX = 16    # MaxPool output
LOGITS_INDEX = 32  # last ConvTranspose2d, before tanh

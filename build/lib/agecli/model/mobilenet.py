"""MobileNetV2 (width 1.0) in plain torch, with torchvision's parameter names
(`features.0.0.weight`, `features.1.conv.0.0.weight`, ..., `features.18.1.running_var`)
so a user's torchvision `mobilenet_v2` state dict loads through `--pretrained PATH`."""
from __future__ import annotations

import torch
from torch import nn

from .layers import conv_bn_act, init_weights

# (expand ratio, out channels, repeats, first stride) per stage, as in the MobileNetV2 paper.
V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when ratio is 1), 3x3 depthwise, linear 1x1 project; skip when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_act(cin, mid, 1, act=nn.ReLU6))
        layers += [conv_bn_act(mid, mid, 3, stride, groups=mid, act=nn.ReLU6),
                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """Feature extractor: image -> 1280-d pooled features (`num_features`)."""

    num_features = 1280

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, 32, 3, 2, act=nn.ReLU6)]
        cin = 32
        for expand, cout, repeats, stride in V2_STAGES:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(conv_bn_act(cin, self.num_features, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)

"""Compact backbones made for age estimation: fast on CPU and small enough to train from scratch.

- thin_age / tiny_age: ThinAgeNet and TinyAgeNet from DLDL-v2 ("Age Estimation Using
  Expectation of Label Distribution Learning", Gao et al., IJCAI 2018): VGG-style 3x3
  conv+BN+ReLU stacks with five 2x2 max-pools and global average pooling instead of
  fully connected layers.
- c3ae: the plain model of C3AE ("C3AE: Exploring the Limits of Compact Model for Age
  Estimation", Zhang et al., CVPR 2019) for 64x64 input: unpadded 3x3 convs of 32
  channels with BN+ReLU+2x2 average pooling, then a 1x1 conv; globally pooled here so
  any input from ~48 px up works.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import conv_bn_act, init_weights

POOL = "M"
THIN_AGE_WIDTHS: tuple[int | str, ...] = (32, 32, POOL, 64, 64, POOL, 128, 128, 128, POOL,
                                          256, 256, 256, POOL, 256, 256, 256, POOL)
TINY_AGE_WIDTHS: tuple[int | str, ...] = tuple(w if w == POOL else w // 2 for w in THIN_AGE_WIDTHS)


class VGGAgeNet(nn.Module):
    """Feature extractor from a width list (ints: 3x3 conv+BN+ReLU, "M": 2x2 max-pool),
    then global average pooling; `num_features` is the last width."""

    def __init__(self, widths: tuple[int | str, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for w in widths:
            if w == POOL:
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(conv_bn_act(cin, int(w), 3))
                cin = int(w)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = cin
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def thin_age() -> VGGAgeNet:
    return VGGAgeNet(THIN_AGE_WIDTHS)


def tiny_age() -> VGGAgeNet:
    return VGGAgeNet(TINY_AGE_WIDTHS)


class C3AE(nn.Module):
    """C3AE plain model: at 64 px, 64 -> 62/31 -> 29/14 -> 12/6 -> 4 (conv/pool), 1x1 conv,
    global average pool -> 32 features."""

    num_features = 32

    def __init__(self) -> None:
        super().__init__()
        c = self.num_features
        layers: list[nn.Module] = []
        for cin in (3, c, c):
            layers += [conv_bn_act(cin, c, 3, padding=0), nn.AvgPool2d(2, 2)]
        layers += [conv_bn_act(c, c, 3, padding=0), nn.Conv2d(c, c, 1)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def c3ae() -> C3AE:
    return C3AE()

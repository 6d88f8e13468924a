"""ResNet-18/34/50 and SE-ResNeXt-50 (32x4d) in plain torch.

Parameter names follow the checkpoints users already have, so `--pretrained PATH` loads
them by name and shape: torchvision for the ResNets (`conv1`, `bn1`, `layer1.0.conv1`,
`downsample.0/.1`), Cadene's `pretrainedmodels` for SE-ResNeXt (`layer0.conv1`,
`layerN.M.se_module.fc1`). One bottleneck class serves both: ResNeXt is a grouped,
wider bottleneck and SE is an optional channel gate on its output.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .layers import init_weights


class SEModule(nn.Module):
    """Squeeze-and-excitation: rescale channels by a gate computed from their global means."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc2(self.relu(self.fc1(self.avg_pool(x)))).sigmoid()


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """1x1 conv + BN on the shortcut when the block changes shape, else None (identity)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut: ResNet-18/34."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + skip)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, optionally grouped), 1x1 expand x4, optional SE gate.

    groups=1, base_width=64 is the ResNet-50 block (stride on the 3x3, "v1.5");
    groups=32, base_width=4 is ResNeXt-50 32x4d; se_reduction=16 adds the SE gate.
    """

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 se_reduction: int = 0) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.se_module = SEModule(cout, se_reduction) if se_reduction else None
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.se_module is not None:
            y = self.se_module(y)
        return self.relu(y + skip)


class ResNet(nn.Module):
    """Feature extractor: image -> pooled features (`num_features` = 512 x block expansion).

    `cadene_layout` names the stem `layer0.{conv1,bn1}` (with a ceil-mode max-pool) as
    the `pretrainedmodels` SE-ResNeXt checkpoints do; otherwise torchvision's names.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], depths: tuple[int, int, int, int],
                 cadene_layout: bool = False, **block_kw: int) -> None:
        super().__init__()
        self.num_features = 512 * block.expansion
        stem = OrderedDict(conv1=nn.Conv2d(3, 64, 7, 2, 3, bias=False), bn1=nn.BatchNorm2d(64),
                           relu=nn.ReLU(inplace=True),
                           maxpool=nn.MaxPool2d(3, 2, padding=0 if cadene_layout else 1, ceil_mode=cadene_layout))
        self.cadene_layout = cadene_layout
        if cadene_layout:
            self.layer0 = nn.Sequential(stem)
        else:
            for name, module in stem.items():
                self.add_module(name, module)
        cin = 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, planes, 2 if i > 0 and j == 0 else 1, **block_kw))
                cin = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cadene_layout:
            x = self.layer0(x)
        else:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x).flatten(1)


def resnet18() -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2))


def resnet34() -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3))


def resnet50() -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3))


def se_resnext50_32x4d() -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), cadene_layout=True, groups=32, base_width=4, se_reduction=16)

"""Small building blocks shared by the plain-torch backbones.

`conv_bn_act` returns an `nn.Sequential(conv, bn, act)` so its parameters are named
`.0.weight` / `.1.weight` like torchvision's `Conv2dNormActivation`; that keeps
torchvision checkpoints loadable by name.
"""
from __future__ import annotations

from torch import nn


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU, padding: int | None = None) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + activation; `padding` defaults to "same" for odd kernels."""
    pad = kernel // 2 if padding is None else padding
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


def init_weights(net: nn.Module) -> nn.Module:
    """He init for convs (fan-out, as torchvision does), BN to identity, small linear weights.

    The non-EfficientNet backbones usually train from scratch, where this init
    converges noticeably better than PyTorch's default uniform one.
    """
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return net

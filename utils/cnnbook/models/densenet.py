"""DenseNet (Huang, Liu, van der Maaten and Weinberger, 2016): every layer sees all before it.

Inside a dense block, layer ``l`` receives the concatenation of the block input and the
outputs of all earlier layers, and adds ``growth_rate`` (k) new channels: after L layers
a block with C_in input channels outputs ``C_in + L * k``. Each layer is
BN-ReLU-1x1 conv (to ``bn_size * k`` channels, the "bottleneck" of DenseNet-B) then
BN-ReLU-3x3 conv (to k channels). Features are reused rather than recomputed, so the
layers can be narrow (k = 32 in DenseNet-121).

Between blocks a transition layer (BN-ReLU-1x1 conv, then 2x2 average pooling) halves
the resolution and, with compression 0.5, the channels. ``densenet121()`` assembles
blocks of 6, 12, 24 and 16 layers: 7,978,856 parameters, as torchvision's model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnbook._checks import check_int

__all__ = ["DenseBlock", "DenseLayer", "DenseNet", "Transition", "densenet121"]


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv-BN-ReLU-3x3 conv. x: (N, C_in, H, W) -> new features (N, k, H, W)."""

    def __init__(self, C_in: int, growth_rate: int, bn_size: int = 4):
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        growth_rate = check_int("growth_rate", growth_rate, minimum=1)
        bn_size = check_int("bn_size", bn_size, minimum=1)
        C_mid = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(C_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(C_in, C_mid, 1, bias=False)  # caps the 3x3's input at 4k
        self.norm2 = nn.BatchNorm2d(C_mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(C_mid, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))  # (N, bn_size * k, H, W)
        return self.conv2(self.relu2(self.norm2(out)))  # (N, k, H, W)


class DenseBlock(nn.Module):
    """num_layers dense layers. x: (N, C_in, H, W) -> (N, C_in + num_layers * k, H, W).

    The output is the input followed by every layer's new channels, in order.
    """

    def __init__(self, num_layers: int, C_in: int, growth_rate: int, bn_size: int = 4):
        super().__init__()
        num_layers = check_int("num_layers", num_layers, minimum=1)
        C_in = check_int("C_in", C_in, minimum=1)
        growth_rate = check_int("growth_rate", growth_rate, minimum=1)
        self.layers = nn.ModuleList(
            DenseLayer(C_in + i * growth_rate, growth_rate, bn_size) for i in range(num_layers)
        )
        self.out_channels = C_in + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # sees everything so far
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv-2x2 avg pool. x: (N, C_in, H, W) -> (N, C_out, H/2, W/2)."""

    def __init__(self, C_in: int, C_out: int):
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(C_in),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(C_in, C_out, 1, bias=False),
                pool=nn.AvgPool2d(2, stride=2),
            )
        )


class DenseNet(nn.Module):
    """DenseNet-BC for images. x: (N, 3, H, W) -> logits (N, num_classes).

    block_config: layers per dense block; growth_rate: k; C_stem: channels after the
    7x7 stem; compression: the fraction of channels a transition keeps.
    """

    def __init__(
        self,
        block_config: Sequence[int] = (6, 12, 24, 16),
        *,
        growth_rate: int = 32,
        C_stem: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        num_classes: int = 1000,
    ):
        super().__init__()
        if not isinstance(block_config, (list, tuple)) or not block_config:
            raise TypeError(f"block_config must be a non-empty list of ints, got {block_config!r}")
        if isinstance(compression, bool) or not isinstance(compression, (int, float)):
            raise TypeError(f"compression must be a float, got {type(compression).__name__}")
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        C_stem = check_int("C_stem", C_stem, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        layers = OrderedDict(
            conv0=nn.Conv2d(3, C_stem, 7, stride=2, padding=3, bias=False),  # 224 -> 112
            norm0=nn.BatchNorm2d(C_stem),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(3, stride=2, padding=1),  # 112 -> 56
        )
        C = C_stem
        for i, n in enumerate(block_config):
            n = check_int(f"block_config[{i}]", n, minimum=1)
            block = DenseBlock(n, C, growth_rate, bn_size)
            layers[f"block{i + 1}"] = block
            C = block.out_channels
            if i < len(block_config) - 1:
                C_out = int(C * compression)
                layers[f"transition{i + 1}"] = Transition(C, C_out)
                C = C_out
        layers["norm5"] = nn.BatchNorm2d(C)  # pre-activation layers need a final BN-ReLU
        layers["relu5"] = nn.ReLU(inplace=True)
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))  # (N, C, 1, 1)
        return self.classifier(torch.flatten(x, 1))


def densenet121(num_classes: int = 1000) -> DenseNet:
    """DenseNet-121: blocks of 6, 12, 24, 16 layers, k = 32; 7,978,856 parameters."""
    return DenseNet((6, 12, 24, 16), growth_rate=32, C_stem=64, num_classes=num_classes)

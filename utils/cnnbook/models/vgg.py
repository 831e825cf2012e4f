"""VGG (Simonyan and Zisserman, 2014): depth from stacks of 3x3 convolutions.

Every convolution is 3x3 with padding 1 (the size stays), every pooling is 2x2 max
with stride 2 (the size halves), and the number of filters doubles after each pool
from 64 up to 512. Two stacked 3x3 convolutions see a 5x5 window and three see 7x7,
with fewer weights and more non-linearities than one big kernel. The classifier is
three fully connected layers (4096, 4096, classes) on the 512 x 7 x 7 map, which hold
most of the parameters: 138,357,544 in all for VGG-16.

A configuration lists the layers: an int is a 3x3 convolution with that many filters
(+ ReLU), ``"M"`` a max pool. ``CONFIGS`` holds the paper's columns A (VGG-11),
B (VGG-13), D (VGG-16) and E (VGG-19).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnbook._checks import check_int, check_probability

__all__ = ["CONFIGS", "VGG", "make_features", "vgg11", "vgg16"]

CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")
    + (512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M")
    + (512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def _check_config(config: object) -> tuple[int | str, ...]:
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"config must be one of {tuple(CONFIGS)} or a list, got {config!r}")
        return CONFIGS[config]
    if not isinstance(config, (list, tuple)) or not config:
        raise TypeError(f"config must be a name or a non-empty list, got {config!r}")
    for i, item in enumerate(config):
        if item != "M":
            check_int(f"config[{i}]", item, minimum=1)
    if not any(item != "M" for item in config):
        raise ValueError("config must contain at least one convolution")
    return tuple(config)


def make_features(
    config: Sequence[int | str], *, in_channels: int = 3, batch_norm: bool = False
) -> nn.Sequential:
    """The convolutional part. x: (N, in_channels, H, W) -> (N, last width, H / 2^pools, ...)."""
    config = _check_config(config)
    in_channels = check_int("in_channels", in_channels, minimum=1)
    layers: list[nn.Module] = []
    C_in = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, stride=2))  # halves H and W
            continue
        layers.append(nn.Conv2d(C_in, item, 3, padding=1))  # keeps H and W
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        C_in = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG. x: (N, in_channels, H, W) -> logits (N, num_classes).

    config: a name in ``CONFIGS`` or a list of widths and "M"; batch_norm: add
    BatchNorm after every convolution (the later "VGG-BN" variants); dropout: before
    fc7 and fc8. An adaptive average pool brings the last map to 7 x 7, as at 224 x 224.
    """

    def __init__(
        self,
        config: str | Sequence[int | str] = "vgg16",
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
    ):
        super().__init__()
        config = _check_config(config)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        if not isinstance(batch_norm, bool):
            raise TypeError(f"batch_norm must be a bool, got {type(batch_norm).__name__}")
        dropout = check_probability("dropout", dropout)
        C_last = [item for item in config if item != "M"][-1]
        self.features = make_features(config, in_channels=in_channels, batch_norm=batch_norm)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(C_last * 7 * 7, 4096),  # fc6: 25,088 -> 4,096 for VGG-16
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),  # fc8
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))  # (N, C_last, 7, 7)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)


def _init_weights(model: nn.Module) -> None:
    """He init for convolutions (ReLU), small Gaussian for linear layers, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)  # the paper's N(0, 0.01^2)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def vgg11(num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-11 (configuration A): 8 convolutions + 3 FC layers; 132,863,336 parameters."""
    return VGG("vgg11", num_classes=num_classes, **kwargs)


def vgg16(num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-16 (configuration D): 13 convolutions + 3 FC layers; 138,357,544 parameters."""
    return VGG("vgg16", num_classes=num_classes, **kwargs)

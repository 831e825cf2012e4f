"""A small, fast ResNet for 32x32 images (CIFAR-10), in the style of "ResNet-9".

The network is a short stack of stages. Each stage is one 3x3 convolution that changes the
width, a 2x2 max pool that halves the resolution, and zero or more residual blocks (two
3x3 convolutions and a skip connection) at that width:

    x (N, 3, 32, 32) in [0, 1], standardised inside the model
    stem     conv3x3(3 -> w0), BN, ReLU                      (N, w0, 32, 32)
    stage 1  conv3x3(w0 -> w1), BN, ReLU, maxpool, blocks[0]  (N, w1, 16, 16)
    stage 2  conv3x3(w1 -> w2), BN, ReLU, maxpool, blocks[1]  (N, w2, 8, 8)
    stage 3  conv3x3(w2 -> w3), BN, ReLU, maxpool, blocks[2]  (N, w3, 4, 4)
    head     global max pool, linear(w3 -> classes) * scale   (N, classes)

With ``widths=(64, 128, 256, 512)`` and ``blocks=(1, 0, 1)`` this is the well-known
ResNet-9 of the fast CIFAR-10 training races (about 6.6 million parameters). Narrower
widths give the CPU-sized networks of chapter 10. Few, wide layers and early
downsampling are what make it fast: most arithmetic happens at 16x16 and below.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnbook._checks import check_int

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "RESNET9_BLOCKS",
    "RESNET9_WIDTHS",
    "ConvBN",
    "CifarResNet",
    "ResidualBlock",
    "Stage",
    "cifar_resnet",
    "resnet9",
]

RESNET9_WIDTHS = (64, 128, 256, 512)
RESNET9_BLOCKS = (1, 0, 1)
# Per-channel mean and standard deviation of the CIFAR-10 training images (RGB, in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class ConvBN(nn.Sequential):
    """conv3x3 (no bias: BatchNorm's shift replaces it), BatchNorm, ReLU.

    x: (N, C_in, H, W) -> (N, C_out, H, W).
    """

    def __init__(self, C_in: int, C_out: int) -> None:
        super().__init__(
            nn.Conv2d(C_in, C_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """x + F(x), where F is two ConvBN layers at the same width. x: (N, C, H, W) -> same."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(C, C)
        self.conv2 = ConvBN(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class Stage(nn.Sequential):
    """ConvBN(C_in -> C_out), 2x2 max pool, then ``n_blocks`` residual blocks.

    x: (N, C_in, H, W) -> (N, C_out, H // 2, W // 2). Pooling after the width change
    keeps the costly convolution at the larger size small in number (one per stage).
    """

    def __init__(self, C_in: int, C_out: int, n_blocks: int) -> None:
        layers: list[nn.Module] = [ConvBN(C_in, C_out), nn.MaxPool2d(2)]
        layers += [ResidualBlock(C_out) for _ in range(n_blocks)]
        super().__init__(*layers)


class CifarResNet(nn.Module):
    """A ResNet-9-style classifier. x: (N, in_channels, H, W) in [0, 1] -> logits (N, classes).

    widths: four channel counts (stem, stage 1, stage 2, stage 3).
    blocks: residual blocks after each of the three stages (ResNet-9: (1, 0, 1)).
    head_scale: the logits are multiplied by this constant. A small value (ResNet-9 uses
        0.125) keeps the early softmax soft, which lets a high learning rate work.
    mean, std: per-channel statistics; the model standardises its input itself, so it
        takes images in [0, 1] (and a checkpoint carries the statistics with it).
    Any H, W divisible by 8 works; the global max pool makes the head size-independent.
    """

    def __init__(
        self,
        widths: Sequence[int] = RESNET9_WIDTHS,
        blocks: Sequence[int] = RESNET9_BLOCKS,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        head_scale: float = 0.125,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
    ) -> None:
        super().__init__()
        widths = _check_ints("widths", widths, 4, minimum=1)
        blocks = _check_ints("blocks", blocks, 3, minimum=0)
        num_classes = check_int("num_classes", num_classes, minimum=2)
        in_channels = check_int("in_channels", in_channels, minimum=1)
        if isinstance(head_scale, bool) or not isinstance(head_scale, int | float):
            raise TypeError(f"head_scale must be a number, got {head_scale!r}")
        if not head_scale > 0:
            raise ValueError(f"head_scale must be > 0, got {head_scale}")
        self.widths, self.blocks = widths, blocks
        mean_t = _channel_stats("mean", mean, in_channels)
        std_t = _channel_stats("std", std, in_channels)
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be > 0 in every channel, got {tuple(std)}")
        self.register_buffer("mean", mean_t)  # (1, C, 1, 1): broadcasts over N, H, W
        self.register_buffer("std", std_t)
        self.stem = ConvBN(in_channels, widths[0])
        self.stages = nn.Sequential(*(Stage(widths[i], widths[i + 1], blocks[i]) for i in range(3)))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes, bias=False)
        self.head_scale = float(head_scale)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1] -> (N, widths[3]) pooled features."""
        x = (x - self.mean) / self.std
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)) * self.head_scale


def _check_ints(name: str, value: object, length: int, *, minimum: int) -> tuple[int, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of {length} ints, got {value!r}")
    if len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}: {value!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value))


def _channel_stats(name: str, value: object, C: int) -> torch.Tensor:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of {C} numbers, got {value!r}")
    if len(value) != C:
        raise ValueError(f"{name} must have one value per input channel ({C}), got {value!r}")
    return torch.tensor([float(v) for v in value]).view(1, C, 1, 1)


def resnet9(num_classes: int = 10) -> CifarResNet:
    """The full-size ResNet-9: widths (64, 128, 256, 512), blocks (1, 0, 1)."""
    return CifarResNet(RESNET9_WIDTHS, RESNET9_BLOCKS, num_classes=num_classes)


def cifar_resnet(width: int = 64, blocks: Sequence[int] = RESNET9_BLOCKS, **kwargs) -> CifarResNet:
    """ResNet-9's shape scaled by ``width``: widths (width, 2 width, 4 width, 8 width).

    ``cifar_resnet(64)`` is ``resnet9()``; ``cifar_resnet(16)`` has 1/16 of its weights.
    """
    width = check_int("width", width, minimum=1)
    return CifarResNet((width, 2 * width, 4 * width, 8 * width), blocks, **kwargs)

"""ResNet (He, Zhang, Ren and Sun, 2015): residual blocks and the ImageNet networks.

A residual block computes ``y = relu(F(x) + shortcut(x))``: the layers ``F`` only learn
what to *add* to their input. The shortcut is the identity when shapes agree, and a
1x1 convolution + BatchNorm (the paper's "projection shortcut", option B) when the block
changes the number of channels or the resolution.

- ``BasicBlock`` (ResNet-18/34): two 3x3 convolutions.
- ``Bottleneck`` (ResNet-50 and deeper): 1x1 reduces the channels to ``width``, 3x3 works
  there, 1x1 expands to ``expansion * width``; cheaper than two 3x3 at full width.
- ``ResNet``: a 7x7 stride-2 stem and a 3x3 stride-2 max pool (224 -> 56), then stages of
  blocks, each after the first halving the resolution and doubling the width, then
  global average pooling and one linear layer.

Both blocks take ``residual=False`` to drop the shortcut: the paper's "plain" baselines,
the same layers without the addition. The downsampling bottleneck strides its 3x3
convolution ("ResNet v1.5", as torchvision and most modern code); ``stride_in_1x1=True``
strides the first 1x1 as in the paper, which skips 3 of every 4 positions before any
3x3 sees them. Parameters are the same either way, outputs are not.

Tensors are registered in the same order as torchvision's ResNets, so
``cnnbook.models.weights.load_by_position`` loads their weights into these models.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnbook._checks import check_bool, check_int

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "conv1x1",
    "conv3x3",
    "resnet18",
    "resnet34",
    "resnet50",
]


def conv3x3(C_in: int, C_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (the BatchNorm after it has one)."""
    return nn.Conv2d(C_in, C_out, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(C_in: int, C_out: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias: mixes channels at each position, nothing spatial."""
    return nn.Conv2d(C_in, C_out, kernel_size=1, stride=stride, bias=False)


def _projection(C_in: int, C_out: int, stride: int) -> nn.Sequential:
    """The shortcut when shapes change: 1x1 conv with the block's stride, then BatchNorm."""
    return nn.Sequential(conv1x1(C_in, C_out, stride), nn.BatchNorm2d(C_out))


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers and a shortcut. x: (N, C_in, H, W) -> (N, C_out, H/s, W/s).

    ``stride`` (1 or more) applies to the first convolution and to the projection
    shortcut, which is used whenever ``stride != 1`` or ``C_in != C_out``.
    ``residual=False`` removes the shortcut entirely (a plain network's block).
    """

    expansion = 1  # output channels = expansion * C_out

    def __init__(self, C_in: int, C_out: int, stride: int = 1, *, residual: bool = True):
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        stride = check_int("stride", stride, minimum=1)
        self.residual = check_bool("residual", residual)
        self.out_channels = C_out
        self.conv1 = conv3x3(C_in, C_out, stride)
        self.bn1 = nn.BatchNorm2d(C_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(C_out, C_out)
        self.bn2 = nn.BatchNorm2d(C_out)
        needs_projection = residual and (stride != 1 or C_in != C_out)
        self.shortcut = _projection(C_in, C_out, stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))  # F(x)
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))  # F(x) + x
        return self.relu(out)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that ends F(x); its weight scales the residual branch."""
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, each + BN, and a shortcut.

    x: (N, C_in, H, W) -> (N, expansion * width, H/s, W/s). The 3x3 works on ``width``
    channels; the block outputs ``expansion * width`` (4x in ResNet-50). ``stride``
    goes to the 3x3 conv (v1.5) or, with ``stride_in_1x1=True``, to the first 1x1 (v1).
    """

    expansion = 4

    def __init__(
        self,
        C_in: int,
        width: int,
        stride: int = 1,
        *,
        expansion: int = 4,
        residual: bool = True,
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        width = check_int("width", width, minimum=1)
        stride = check_int("stride", stride, minimum=1)
        self.expansion = check_int("expansion", expansion, minimum=1)
        self.residual = check_bool("residual", residual)
        stride_in_1x1 = check_bool("stride_in_1x1", stride_in_1x1)
        C_out = width * self.expansion
        self.out_channels = C_out
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(C_in, width, s1)  # reduce: C_in -> width
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3)  # the only spatial layer
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, C_out)  # expand: width -> expansion * width
        self.bn3 = nn.BatchNorm2d(C_out)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = residual and (stride != 1 or C_in != C_out)
        self.shortcut = _projection(C_in, C_out, stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, width, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (N, width, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (N, expansion * width, H/s, W/s) = F(x)
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(out)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that ends F(x); its weight scales the residual branch."""
        return self.bn3


class ResNet(nn.Module):
    """A ResNet for images: stem, stages of residual blocks, global pool, linear classifier.

    block: ``BasicBlock`` or ``Bottleneck`` (or a subclass); layers: blocks per stage,
    e.g. ``(2, 2, 2, 2)`` for ResNet-18; widths: the blocks' ``C_out``/``width`` per
    stage (default 64, 128, 256, 512; the stem has ``widths[0]`` channels).
    x: (N, in_channels, H, W) -> logits (N, num_classes). At 224 x 224 the stages run at
    56, 28, 14 and 7 pixels. ``residual=False`` builds the matching plain network;
    ``zero_init_residual=True`` starts every block's last BatchNorm scale at 0, so each
    block begins as the identity (Goyal et al., 2017). ``stride_in_1x1=True`` (Bottleneck
    only) strides the first 1x1 of each downsampling block, as the original paper (v1)
    does, instead of its 3x3 (v1.5, torchvision's layout).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        residual: bool = True,
        zero_init_residual: bool = False,
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        if not (isinstance(block, type) and issubclass(block, (BasicBlock, Bottleneck))):
            raise TypeError(f"block must be BasicBlock or Bottleneck, got {block!r}")
        layers = _int_sequence("layers", layers)
        widths = _int_sequence("widths", widths)
        if len(widths) != len(layers):
            raise ValueError(
                f"widths must give one width per stage ({len(layers)}), got {len(widths)}"
            )
        num_classes = check_int("num_classes", num_classes, minimum=1)
        in_channels = check_int("in_channels", in_channels, minimum=1)
        check_bool("residual", residual)
        check_bool("zero_init_residual", zero_init_residual)
        check_bool("stride_in_1x1", stride_in_1x1)
        options = {"residual": residual}
        if stride_in_1x1:
            if not issubclass(block, Bottleneck):
                raise ValueError("stride_in_1x1=True needs Bottleneck blocks (ResNet-50 and up)")
            options["stride_in_1x1"] = True

        self.stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
                bn=nn.BatchNorm2d(widths[0]),
                relu=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, stride=2, padding=1),  # 224 -> 112 -> 56
            )
        )
        C_in, stages = widths[0], []
        for i, (n_blocks, width) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if i == 0 else 2  # the stem already downsampled by 4
            stages.append(_make_stage(block, C_in, width, n_blocks, stride, options))
            C_in = width * block.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(C_in, num_classes)
        _init_weights(self, zero_init_residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, widths[0], H/4, W/4)
        x = self.stages(x)  # (N, C_last, H/32, W/32) for four stages
        return self.fc(self.flatten(self.pool(x)))  # (N, num_classes)


def _int_sequence(name: str, value: object) -> list[int]:
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"{name} must be a non-empty list or tuple of ints, got {value!r}")
    return [check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(value)]


def _make_stage(block, C_in: int, width: int, n_blocks: int, stride: int, options: dict):
    """n_blocks blocks; only the first changes resolution (stride) and channel count."""
    blocks = [block(C_in, width, stride, **options)]
    C_out = width * block.expansion
    blocks += [block(C_out, width, 1, **options) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


def _init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """He (Kaiming) normal init for convolutions, BN scale 1 and shift 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            # fan_out keeps the variance of the gradients steady in the backward pass
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.last_bn.weight)


def resnet18(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-18: BasicBlocks (2, 2, 2, 2); 11,689,512 parameters with 1000 classes."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, **kwargs)


def resnet34(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-34: BasicBlocks (3, 4, 6, 3); 21,797,672 parameters with 1000 classes."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes=num_classes, **kwargs)


def resnet50(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-50: Bottlenecks (3, 4, 6, 3); 25,557,032 parameters with 1000 classes.

    ``stride_in_1x1=True`` gives the paper's v1 layout (same parameters, other outputs).
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, **kwargs)

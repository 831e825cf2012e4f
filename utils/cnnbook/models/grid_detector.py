"""The single-stage anchor detector of chapter 15: a grid of anchors on one feature map.

A tiny convolutional backbone turns a ``(3, S, S)`` image into a ``(2C, S/8, S/8)`` feature
map; every cell of that grid owns ``A`` anchor boxes (``cnnbook.detection.make_anchors``);
two 3x3-convolution heads predict, for every anchor, one logit per object class (sigmoid,
background = "no class fires") and four box offsets relative to the anchor. Its training
targets, loss and decoding are in ``cnnbook.detector``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cnnbook._checks import check_int
from cnnbook.detection import make_anchors

__all__ = ["STRIDE", "GridDetector", "conv_bn_relu"]

STRIDE = 8  # pixels per grid cell: the backbone halves the resolution three times


def conv_bn_relu(C_in: int, C_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (no bias: BatchNorm has one), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(C_in, C_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(C_out),
        nn.ReLU(inplace=True),
    )


class GridDetector(nn.Module):
    """Single-stage anchor detector for square images of side ``image_size``.

    x: (N, 3, S, S) -> (cls_logits (N, G, num_classes), box_offsets (N, G, 4)), where
    G = (S/8)^2 * A anchors, A = len(anchor_sizes) * len(aspect_ratios), in the order of
    ``self.anchors`` (G, 4) xyxy (row, column, anchor). ``width`` scales the channels.
    The class bias starts at log(prior / (1 - prior)), so every anchor first predicts
    "object" with probability ``prior``: the RetinaNet initialisation that keeps the huge
    number of background anchors from swamping the first updates.
    """

    def __init__(
        self,
        num_classes: int = 3,
        image_size: int = 64,
        anchor_sizes: Sequence[float] = (12.0, 20.0, 32.0),
        aspect_ratios: Sequence[float] = (1.0,),
        width: int = 32,
        prior: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.image_size = check_int("image_size", image_size, minimum=STRIDE)
        if image_size % STRIDE:
            raise ValueError(f"image_size must be a multiple of {STRIDE}, got {image_size}")
        width = check_int("width", width, minimum=4)
        if not 0 < prior < 1:
            raise ValueError(f"prior must be in (0, 1), got {prior}")
        grid = image_size // STRIDE
        self.register_buffer("anchors", make_anchors(grid, STRIDE, anchor_sizes, aspect_ratios))
        self.num_anchors = len(anchor_sizes) * len(aspect_ratios)  # A, per cell
        C = width
        self.backbone = nn.Sequential(
            conv_bn_relu(3, C // 2, stride=2),  # (N, C/2, S/2, S/2)
            conv_bn_relu(C // 2, C),
            conv_bn_relu(C, 3 * C // 2, stride=2),  # (N, 3C/2, S/4, S/4)
            conv_bn_relu(3 * C // 2, 3 * C // 2),
            conv_bn_relu(3 * C // 2, 2 * C, stride=2),  # (N, 2C, S/8, S/8)
            conv_bn_relu(2 * C, 2 * C),
        )
        self.cls_head = nn.Sequential(
            conv_bn_relu(2 * C, 2 * C),
            nn.Conv2d(2 * C, self.num_anchors * num_classes, 3, padding=1),
        )
        self.box_head = nn.Sequential(
            conv_bn_relu(2 * C, 2 * C), nn.Conv2d(2 * C, self.num_anchors * 4, 3, padding=1)
        )
        nn.init.constant_(self.cls_head[-1].bias, math.log(prior / (1 - prior)))
        nn.init.zeros_(self.box_head[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)  # (N, 2C, S/8, S/8)
        N = x.shape[0]
        # (N, A*K, H, W) -> (N, H, W, A*K) -> (N, H*W*A, K): the order of self.anchors.
        cls = self.cls_head(features).permute(0, 2, 3, 1).reshape(N, -1, self.num_classes)
        box = self.box_head(features).permute(0, 2, 3, 1).reshape(N, -1, 4)
        return cls, box

"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012): the network that started the deep era.

Five convolutions (11x11 stride 4, then 5x5, then three 3x3) with max pooling, and three
fully connected layers with dropout. What was new: ReLU instead of tanh (several times
faster to train), dropout in the classifier, heavy data augmentation, and training on
two GPUs, each holding half the filters.

``AlexNet()`` is the single-GPU variant of Krizhevsky's 2014 "one weird trick" paper
(64, 192, 384, 256, 256 filters), which torchvision also uses: 61,100,840 parameters
with 1000 classes. ``AlexNet(two_gpu=True)`` follows the 2012 paper instead: 96, 256,
384, 384 and 256 filters, where conv2, conv4 and conv5 only see the half of the
channels that lives on their own GPU (``groups=2``), and local response normalisation
after conv1 and conv2: 60,965,224 parameters, the paper's "60 million".

An adaptive average pool brings the last map to 6 x 6, so any input of at least
63 x 63 pixels works (224 x 224 is the usual size).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnbook._checks import check_int, check_probability

__all__ = ["AlexNet"]


def _features(two_gpu: bool) -> nn.Sequential:
    """The convolutional part: (N, 3, 224, 224) -> (N, 256, 6, 6)."""
    widths = (96, 256, 384, 384, 256) if two_gpu else (64, 192, 384, 256, 256)
    groups = (1, 2, 1, 2, 2) if two_gpu else (1, 1, 1, 1, 1)
    c1, c2, c3, c4, c5 = widths
    g1, g2, g3, g4, g5 = groups
    layers = OrderedDict()
    layers["conv1"] = nn.Conv2d(3, c1, 11, stride=4, padding=2, groups=g1)  # (N, c1, 55, 55)
    layers["relu1"] = nn.ReLU(inplace=True)
    if two_gpu:  # the paper's brightness normalisation across neighbouring channels
        layers["norm1"] = nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
    layers["pool1"] = nn.MaxPool2d(3, stride=2)  # overlapping pooling: (N, c1, 27, 27)
    layers["conv2"] = nn.Conv2d(c1, c2, 5, padding=2, groups=g2)
    layers["relu2"] = nn.ReLU(inplace=True)
    if two_gpu:
        layers["norm2"] = nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
    layers["pool2"] = nn.MaxPool2d(3, stride=2)  # (N, c2, 13, 13)
    layers["conv3"] = nn.Conv2d(c2, c3, 3, padding=1, groups=g3)
    layers["relu3"] = nn.ReLU(inplace=True)
    layers["conv4"] = nn.Conv2d(c3, c4, 3, padding=1, groups=g4)
    layers["relu4"] = nn.ReLU(inplace=True)
    layers["conv5"] = nn.Conv2d(c4, c5, 3, padding=1, groups=g5)
    layers["relu5"] = nn.ReLU(inplace=True)
    layers["pool5"] = nn.MaxPool2d(3, stride=2)  # (N, 256, 6, 6)
    return nn.Sequential(layers)


class AlexNet(nn.Module):
    """AlexNet. x: (N, 3, H, W), H, W >= 63 -> logits (N, num_classes).

    dropout: probability of zeroing each input of fc6 and fc7 during training (0.5 in
    the paper). two_gpu: the 2012 paper's layout (see the module docstring).
    """

    def __init__(self, num_classes: int = 1000, *, dropout: float = 0.5, two_gpu: bool = False):
        super().__init__()
        num_classes = check_int("num_classes", num_classes, minimum=1)
        dropout = check_probability("dropout", dropout)
        if not isinstance(two_gpu, bool):
            raise TypeError(f"two_gpu must be a bool, got {type(two_gpu).__name__}")
        self.features = _features(two_gpu)
        self.pool = nn.AdaptiveAvgPool2d(6)  # any input size -> (N, 256, 6, 6)
        self.classifier = nn.Sequential(
            OrderedDict(
                drop6=nn.Dropout(dropout),
                fc6=nn.Linear(256 * 6 * 6, 4096),
                relu6=nn.ReLU(inplace=True),
                drop7=nn.Dropout(dropout),
                fc7=nn.Linear(4096, 4096),
                relu7=nn.ReLU(inplace=True),
                fc8=nn.Linear(4096, num_classes),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))  # (N, 256, 6, 6)
        return self.classifier(torch.flatten(x, 1))  # (N, 9216) -> (N, num_classes)

"""LeNet-5 (LeCun et al., 1998) in the modern form chapter 7 derives: ReLU and max pooling.

x: (N, 1, 32 - 2 * padding, 32 - 2 * padding) -> logits (N, 10). With the default
``padding=2`` a 28 x 28 MNIST digit behaves like LeNet's 32 x 32 input. Chapter 7 builds
the same network in its cells and checks it equal to this one; the time-to-accuracy
benchmark trains this one (its classic baseline with ``activation="sigmoid"``,
``pool="avg"``).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnbook._checks import check_bool, check_choice, check_int

__all__ = ["LeNet"]

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet(nn.Sequential):
    """LeNet-5: two 5x5 convolutions, each with an activation and 2x2 pooling, then three
    fully connected layers (400 -> 120 -> 84 -> 10). 61,706 parameters by default.

    Children, in order: conv1, relu1, pool1, conv2, relu2, pool2, flatten, fc1, relu3, fc2,
    relu4, fc3 (the activations are named after ``activation``, e.g. sigmoid1).
    ``batchnorm=True`` puts a BatchNorm2d (bn1, bn2) between each convolution and its
    activation and drops the convolution's bias, which BatchNorm's shift replaces.
    """

    def __init__(
        self,
        padding: int = 2,
        *,
        activation: str = "relu",
        pool: str = "max",
        batchnorm: bool = False,
    ) -> None:
        padding = check_int("padding", padding, minimum=0)
        check_choice("activation", activation, tuple(ACTIVATIONS))
        check_choice("pool", pool, tuple(POOLS))
        batchnorm = check_bool("batchnorm", batchnorm)
        act, pooling = ACTIVATIONS[activation], POOLS[pool]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (C_in, C_out, pad) in enumerate(((1, 6, padding), (6, 16, 0)), start=1):
            layers[f"conv{i}"] = nn.Conv2d(
                C_in, C_out, kernel_size=5, padding=pad, bias=not batchnorm
            )
            if batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm2d(C_out)
            layers[f"{activation}{i}"] = act()
            layers[f"pool{i}"] = pooling(2)  # conv1: (N, 6, 28, 28) -> (N, 6, 14, 14)
        layers["flatten"] = nn.Flatten()  # (N, 16 * 5 * 5)
        layers["fc1"] = nn.Linear(16 * 5 * 5, 120)
        layers[f"{activation}3"] = act()
        layers["fc2"] = nn.Linear(120, 84)
        layers[f"{activation}4"] = act()
        layers["fc3"] = nn.Linear(84, 10)  # (N, 10)
        super().__init__(layers)

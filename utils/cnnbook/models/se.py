"""Squeeze-and-Excitation (Hu, Shen and Sun, 2017): let the network reweight its channels.

A convolution treats every channel of its input the same, whatever the image. An SE
block computes one weight per channel from the image itself:

1. **squeeze**: global average pooling summarises each channel by one number, (N, C);
2. **excitation**: a small MLP, C -> C / r -> C with ReLU then sigmoid, turns those
   numbers into gates in (0, 1);
3. **scale**: each channel of the input is multiplied by its gate.

It adds ``2 * C^2 / r + C / r + C`` parameters (r = 16 in the paper) and almost no
computation, and fits after any block (in SE-ResNet, on the residual branch before the
addition).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbook._checks import check_int

__all__ = ["SqueezeExcitation"]


class SqueezeExcitation(nn.Module):
    """x: (N, C, H, W) -> x * gates, gates: (N, C, 1, 1) in (0, 1).

    The hidden layer has ``max(1, C // reduction)`` units.
    """

    def __init__(self, C: int, reduction: int = 16):
        super().__init__()
        C = check_int("C", C, minimum=1)
        reduction = check_int("reduction", reduction, minimum=1)
        hidden = max(1, C // reduction)
        self.fc1 = nn.Linear(C, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, C)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """The channel weights. x: (N, C, H, W) -> (N, C, 1, 1)."""
        s = x.mean(dim=(2, 3))  # squeeze: (N, C)
        s = torch.sigmoid(self.fc2(self.relu(self.fc1(s))))  # excitation: (N, C)
        return s[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gates(x)  # scale: broadcast over H and W

"""Embedding networks for metric learning (chapter 17 and project P6).

``EmbeddingNet`` maps images to points on the unit sphere; ``SiameseNet`` applies one
encoder to two inputs. Their losses, samplers and evaluation are in
``cnnbook.metric_learning``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnbook._checks import check_int

__all__ = ["EmbeddingNet", "SiameseNet"]


class EmbeddingNet(nn.Module):
    """A small CNN that maps x: (N, C_in, 28, 28) to unit-length embeddings z: (N, dim).

    Three 3x3 conv + ReLU stages (the first two followed by 2x2 max pooling), average
    pooling to a pool x pool grid (which keeps a coarse layout: where the strokes are
    matters for digits) and a linear layer. No BatchNorm: the two branches of a Siamese
    network may then run as two separate calls and still compute exactly one function.
    """

    def __init__(self, dim: int = 32, C_in: int = 1, width: int = 16, pool: int = 3) -> None:
        super().__init__()
        pool = check_int("pool", pool, minimum=1)
        dim = check_int("dim", dim, minimum=1)
        C_in = check_int("C_in", C_in, minimum=1)
        width = check_int("width", width, minimum=1)
        self.features = nn.Sequential(
            nn.Conv2d(C_in, width, 3, padding=1),  # (N, width, H, W)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, width, H/2, W/2)
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 2 width, H/4, W/4)
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(pool),  # (N, 2 width, pool, pool)
            nn.Flatten(),  # (N, 2 width pool^2)
        )
        self.head = nn.Linear(2 * width * pool * pool, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On the unit sphere distances lie in [0, 2], so one margin suits every run.
        return F.normalize(self.head(self.features(x)), dim=1)


class SiameseNet(nn.Module):
    """Two branches, one encoder: ``forward(x1, x2) -> (encoder(x1), encoder(x2))``.

    Sharing is not a constraint to enforce: there is only one set of weights, and the
    gradients from both branches add up in it.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be an nn.Module, got {type(encoder).__name__}")
        self.encoder = encoder

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x1), self.encoder(x2)

"""Argument checks and a mode guard shared by the torch modules of the library.

Kept apart from ``_checks`` so that the NumPy-only chapters never import torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def check_model(model: object) -> nn.Module:
    """Return ``model`` if it is an ``nn.Module``; TypeError naming ``model`` otherwise."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_images(name: str, x: object, channels: int | None = None) -> torch.Tensor:
    """``x`` must be a floating-point tensor of shape (N, C, H, W), with ``channels`` C if given."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must hold floats (e.g. torch.float32), got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")
    return x


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm uses its running statistics, Dropout is off), then restore."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)

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


def check_labels(
    name: str,
    value: object,
    num_classes: int | None = None,
    *,
    ndim: int | None = 1,
    n: int | None = None,
) -> torch.Tensor:
    """Integer class labels as int64: shape ``(N,)`` by default (``ndim=None``: any shape).

    Raises TypeError for a non-tensor or non-integer dtype, ValueError for a wrong shape,
    a wrong count ``n`` or a label outside ``0..num_classes-1``; every message names ``name``.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of integer labels, got {type(value).__name__}"
        )
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        shape = "(N,)" if ndim == 1 else f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    if n is not None and value.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries, got {value.shape[0]}")
    if num_classes is not None and value.numel():
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name} holds labels outside 0..{num_classes - 1} (min {low}, max {high}) "
                f"for num_classes={num_classes}"
            )
    return value.long()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm uses its running statistics, Dropout is off), then restore.

    Restores the mode of every submodule, not only the top-level flag: a model whose
    backbone was frozen in eval mode while its head trains comes back exactly as it was.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, was_training in modes:
            module.training = was_training

"""Random flips and translations of a whole batch at once, on the batch's device.

The augmentation of chapter 10's fast trainer: instead of transforming one image at a
time in a DataLoader worker, draw the random numbers for the whole batch and apply them
with a few tensor operations (a ``torch.where`` for the flips, one ``gather`` for the
translations), on the GPU when the batch is there.

- ``random_flips(n)``, ``random_shifts(n, pad)``: the random numbers, drawn separately so
  that a distributed run can draw them for a whole epoch and give each rank its share;
- ``apply_augment(x, flips, shifts, pad)``: apply given flips and shifts;
- ``augment_batch(x, pad=2, flip=True)``: draw and apply in one call.

(The per-image transforms of chapter 8 are ``cnnbook.augment``.)
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbook._checks import check_bool, check_int

__all__ = ["apply_augment", "augment_batch", "random_flips", "random_shifts"]


def random_flips(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n,) bool: which images to mirror, each with probability 1/2."""
    n = check_int("n", n, minimum=0)
    return torch.rand(n, generator=generator) < 0.5


def random_shifts(n: int, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 2) int64 in [-pad, pad]: vertical and horizontal shift of each image."""
    n = check_int("n", n, minimum=0)
    pad = check_int("pad", pad, minimum=0)
    return torch.randint(-pad, pad + 1, (n, 2), generator=generator)


def apply_augment(
    x: torch.Tensor, flips: torch.Tensor | None, shifts: torch.Tensor | None, pad: int
) -> torch.Tensor:
    """Flip and translate each image of x: (N, C, H, W); returns (N, C, H, W), same order.

    flips: (N,) bool or None. shifts: (N, 2) ints in [-pad, pad] or None. The image is
    reflect-padded by ``pad`` and the H x W window starting at (pad + dy, pad + dx) is
    cut out, so a shift of (0, 0) returns the image itself. Image i stays at position i,
    so the labels stay aligned.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a (N, C, H, W) tensor, got {_describe(x)}")
    N, _, H, W = x.shape
    pad = check_int("pad", pad, minimum=0)
    if flips is not None:
        if flips.shape != (N,):
            raise ValueError(f"flips must have shape ({N},), got {tuple(flips.shape)}")
        mirrored = x.flip(3)
        x = torch.where(flips.to(x.device).view(N, 1, 1, 1), mirrored, x)
    if shifts is None or pad == 0:
        return x
    if shifts.shape != (N, 2):
        raise ValueError(f"shifts must have shape ({N}, 2), got {tuple(shifts.shape)}")
    if N and int(shifts.abs().max()) > pad:
        raise ValueError(f"shifts must lie in [-pad, pad] = [-{pad}, {pad}]")
    if pad >= min(H, W):
        raise ValueError(f"pad must be smaller than the image (H={H}, W={W}), got {pad}")
    source = x.float() if x.dtype == torch.uint8 else x  # reflect-padding needs floats
    padded = nn.functional.pad(source, (pad,) * 4, mode="reflect")  # (N, C, H + 2p, W + 2p)
    W_padded = W + 2 * pad
    shifts = shifts.to(x.device)
    # One gather for the whole batch: the flat index (row * W_padded + column) in the
    # padded image of every pixel of every image's window.
    rows = (pad + shifts[:, 0]).view(N, 1, 1) + torch.arange(H, device=x.device).view(1, H, 1)
    cols = (pad + shifts[:, 1]).view(N, 1, 1) + torch.arange(W, device=x.device).view(1, 1, W)
    index = (rows * W_padded + cols).view(N, 1, H * W).expand(-1, x.shape[1], -1)
    out = padded.flatten(2).gather(2, index)  # (N, C, H * W)
    return out.view(x.shape).to(x.dtype)


def augment_batch(
    x: torch.Tensor, *, pad: int = 2, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random flips and translations of x: (N, C, H, W) -> (N, C, H, W), labels aligned."""
    pad = check_int("pad", pad, minimum=0)
    check_bool("flip", flip)
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a (N, C, H, W) tensor, got {_describe(x)}")
    N = x.shape[0]
    flips = random_flips(N, generator) if flip else None
    shifts = random_shifts(N, pad, generator) if pad else None
    return apply_augment(x, flips, shifts, pad)


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return type(x).__name__

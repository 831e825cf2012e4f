"""Shared helpers of the NumPy-versus-torch property tests (test_numpy_ops, test_numpy_grad)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st


def max_err(ours: np.ndarray, theirs: torch.Tensor | np.ndarray) -> float:
    """Largest absolute difference; the shapes must agree first."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"shape {ours.shape} != reference {theirs.shape}"
    return float(np.max(np.abs(ours - theirs), initial=0.0))


def as_arg(pair: tuple[int, int]) -> int | tuple[int, int]:
    """Pass equal pairs as a plain int, so both spellings of an argument get exercised."""
    return pair[0] if pair[0] == pair[1] else pair


def pairs(lo: int, hi: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi))


def fitting_size(draw, k: int, padding: int, dilation: int, max_size: int) -> int:
    """An input length in which the dilated kernel fits after padding."""
    lo = max(1, dilation * (k - 1) + 1 - 2 * padding)
    return draw(st.integers(lo, max(lo, max_size)))

"""Shared hypothesis strategies and helpers of the NumPy-versus-torch property tests
(test_numpy_ops, test_numpy_grad)."""

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


@st.composite
def conv_cases(
    draw, max_batch: int = 3, max_size: int = 12, max_kernel: int = 4, max_dilation: int = 3
):
    """A valid random convolution: x (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW),
    bias (C_out,) or None, keyword arguments (stride, padding, dilation, groups) and the
    generator that drew the arrays (for further arrays such as an upstream gradient)."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    k = draw(pairs(1, max_kernel))  # rectangular kernels included
    stride, padding = draw(pairs(1, 3)), draw(pairs(0, 2))
    dilation = draw(pairs(1, max_dilation))
    H = fitting_size(draw, k[0], padding[0], dilation[0], max_size)
    W = fitting_size(draw, k[1], padding[1], dilation[1], max_size)
    N = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, c_in, H, W))
    weight = rng.standard_normal((c_out, c_in // groups, *k))
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    kwargs = dict(
        stride=as_arg(stride), padding=as_arg(padding), dilation=as_arg(dilation), groups=groups
    )
    return x, weight, bias, kwargs, rng


@st.composite
def unfold_cases(draw, max_size: int = 12, max_channels: int = 4):
    """x (N, C, H, W), im2col / unfold keyword arguments that fit it, and the generator."""
    k, stride = draw(pairs(1, 4)), draw(pairs(1, 3))
    padding, dilation = draw(pairs(0, 2)), draw(pairs(1, 3))
    H = fitting_size(draw, k[0], padding[0], dilation[0], max_size)
    W = fitting_size(draw, k[1], padding[1], dilation[1], max_size)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, max_channels)), H, W)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kwargs = dict(
        kernel_size=as_arg(k),
        stride=as_arg(stride),
        padding=as_arg(padding),
        dilation=as_arg(dilation),
    )
    return rng.standard_normal(shape), kwargs, rng


@st.composite
def pool_cases(draw, max_size: int = 12, distinct: bool = False):
    """x (N, C, H, W), pooling keyword arguments that fit it, and the generator. With
    ``distinct``, x's values are all different, so every window has one maximum (no ties
    for max pooling's gradient)."""
    k = draw(pairs(1, 4))
    stride = draw(st.one_of(st.none(), pairs(1, 3).map(as_arg)))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    H = fitting_size(draw, k[0], padding[0], 1, max_size)
    W = fitting_size(draw, k[1], padding[1], 1, max_size)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if distinct:
        x = (rng.permutation(int(np.prod(shape))).reshape(shape) - 10.0) / 7.0
    else:
        x = rng.standard_normal(shape)
    return x, dict(kernel_size=as_arg(k), stride=stride, padding=as_arg(padding)), rng

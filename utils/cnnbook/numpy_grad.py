"""Backward passes of convolution, pooling and ReLU in plain NumPy, plus gradient checking.

Every layer is a pair of functions, in the style of CS231n:

- ``*_forward(...)`` returns ``(out, cache)``: the layer's output and what the backward
  pass will need (the inputs, the chosen window positions, ...);
- ``*_backward(dout, cache)`` takes ``dout = dL/dout``, the gradient of a scalar loss ``L``
  with respect to the output (same shape as ``out``), and returns the gradients with
  respect to the layer's inputs.

The forward passes reuse ``cnnbook.numpy_ops``. The convolution backward rests on two
facts that chapter 6 derives: the weight gradient is a correlation of the input with
``dout`` (a matrix product of ``dout`` with the im2col columns), and the input gradient is
a full convolution of ``dout`` with the flipped kernel (a *transposed convolution*; for a
stride s, ``dout`` first gets s - 1 zeros between its values), which reuses the fast im2col
forward pass. ``col2im``, the adjoint of ``im2col``, adds every column entry back to the
input pixel it was copied from; the pooling backward passes scatter the same way.

``numerical_gradient`` and ``gradient_check`` compare any analytic gradient with central
differences. All arrays are ``(N, C, H, W)``; float32 stays float32, integers become float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from cnnbook._checks import check_array, check_int, check_pair
from cnnbook.arith import _conv_length
from cnnbook.numpy_ops import (
    _check_conv,
    _check_pool,
    _float_dtype,
    _windows,
    conv2d_im2col,
    pad2d,
)

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "gradient_check",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "numerical_gradient",
    "relu_backward",
    "relu_forward",
]

IntOrPair = int | tuple[int, int]


# ----------------------------------------------------------------------------- caches


class ConvCache(NamedTuple):
    """What ``conv2d_backward`` needs: the (dtype-converted) inputs and the arguments."""

    x: np.ndarray  # (N, C_in, H, W)
    weight: np.ndarray  # (C_out, C_in // groups, k_h, k_w)
    has_bias: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    out_shape: tuple[int, int, int, int]  # (N, C_out, H_out, W_out)


class MaxPoolCache(NamedTuple):
    """What ``max_pool2d_backward`` needs: where each window's maximum was."""

    x_shape: tuple[int, int, int, int]  # (N, C, H, W)
    winner: np.ndarray  # (N, C, H_out, W_out): flat index a * k_w + b of the max in its window
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dtype: np.dtype


class AvgPoolCache(NamedTuple):
    """What ``avg_pool2d_backward`` needs: the window geometry and each window's divisor."""

    x_shape: tuple[int, int, int, int]  # (N, C, H, W)
    divisor: np.ndarray  # broadcastable to (N, C, H_out, W_out)
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    out_shape: tuple[int, int, int, int]
    dtype: np.dtype


class ReluCache(NamedTuple):
    """What ``relu_backward`` needs: the input, to know which units were active."""

    x: np.ndarray


# ----------------------------------------------------------------------------- helpers


def _check_cache(cache: object, kind: type, producer: str) -> None:
    if not isinstance(cache, kind):
        raise TypeError(
            f"cache must be the cache returned by {producer}, got {type(cache).__name__}"
        )


def _check_dout(dout: object, expected: tuple[int, ...]) -> np.ndarray:
    """dout must have exactly the shape of the forward output."""
    dout = check_array("dout", dout)
    if dout.shape != tuple(expected):
        raise ValueError(
            f"dout must have the shape of the forward output {tuple(expected)}, got {dout.shape}"
        )
    return dout


def _scatter_windows(
    cols: np.ndarray,
    padded_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Add every window entry back to the padded input position it was read from.

    cols: (N, C, k_h, k_w, H_out, W_out) -> (N, C, H_p, W_p). One strided slice-add per
    kernel offset (a, b): all windows read offset (a, b) from a regular grid of positions,
    so k_h * k_w vectorised adds do the whole scatter; overlapping windows accumulate.
    """
    N, C, k_h, k_w, H_out, W_out = cols.shape
    (s_h, s_w), (d_h, d_w) = stride, dilation
    dxp = np.zeros((N, C, *padded_hw), dtype=cols.dtype)
    for a in range(k_h):
        for b in range(k_w):
            rows = slice(a * d_h, a * d_h + s_h * (H_out - 1) + 1, s_h)
            cols_ = slice(b * d_w, b * d_w + s_w * (W_out - 1) + 1, s_w)
            dxp[:, :, rows, cols_] += cols[:, :, a, b]
    return dxp


def _crop(dxp: np.ndarray, padding: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
    """Drop the padding border: the gradient of the padded zeros goes nowhere."""
    (p_h, p_w), (H, W) = padding, hw
    return np.ascontiguousarray(dxp[:, :, p_h : p_h + H, p_w : p_w + W])


# ----------------------------------------------------------------------------- col2im


def col2im(
    cols: np.ndarray,
    input_shape: tuple[int, int, int, int],
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """The adjoint of ``numpy_ops.im2col``: sum every column entry back into the input.

    cols: (N, C * k_h * k_w, H_out * W_out), rows in im2col's (c, a, b) order
    -> (N, C, H, W) = ``input_shape``. An input pixel that sits in several receptive fields
    receives the sum of all its copies, so ``col2im(im2col(x))`` is ``x`` times the number
    of windows covering each pixel, not ``x``. Equal to ``torch.nn.functional.fold``.
    """
    cols = check_array("cols", cols, ndim=3)
    if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == 4):
        raise ValueError(f"input_shape must be a tuple (N, C, H, W), got {input_shape!r}")
    N, C, H, W = (check_int(f"input_shape[{i}]", v, minimum=1) for i, v in enumerate(input_shape))
    kernel = check_pair("kernel_size", kernel_size, minimum=1)
    stride = check_pair("stride", stride, minimum=1)
    padding = check_pair("padding", padding, minimum=0)
    dilation = check_pair("dilation", dilation, minimum=1)
    H_out = _conv_length(H, kernel[0], stride[0], padding[0], dilation[0], "kernel_size")
    W_out = _conv_length(W, kernel[1], stride[1], padding[1], dilation[1], "kernel_size")
    expected = (N, C * kernel[0] * kernel[1], H_out * W_out)
    if cols.shape != expected:
        raise ValueError(
            f"cols must have shape (N, C * k_h * k_w, H_out * W_out) = {expected} for "
            f"input_shape {tuple(input_shape)}, got {cols.shape}"
        )
    cols = cols.astype(_float_dtype(cols), copy=False)
    windows = cols.reshape(N, C, *kernel, H_out, W_out)
    padded_hw = (H + 2 * padding[0], W + 2 * padding[1])
    return _crop(_scatter_windows(windows, padded_hw, stride, dilation), padding, (H, W))


# ----------------------------------------------------------------------------- convolution


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """2-D convolution (cross-correlation) that remembers its inputs for the backward pass.

    x: (N, C_in, H, W); weight: (C_out, C_in // groups, k_h, k_w); bias: (C_out,) or None
    -> out: (N, C_out, H_out, W_out), equal to ``torch.nn.functional.conv2d``, and a cache.
    """
    a = _check_conv(x, weight, bias, stride, padding, dilation, groups)
    out = conv2d_im2col(a.x, a.weight, a.bias, a.stride, a.padding, a.dilation, a.groups)
    cache = ConvCache(
        a.x, a.weight, a.bias is not None, a.stride, a.padding, a.dilation, a.groups, out.shape
    )
    return out, cache


def conv2d_backward(
    dout: np.ndarray, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of a convolution. dout: (N, C_out, H_out, W_out), cache from conv2d_forward.

    Returns ``dx: (N, C_in, H, W)``, ``dweight: (C_out, C_in // groups, k_h, k_w)`` and
    ``dbias: (C_out,)`` (None if the forward pass had no bias). With K = (C_in/groups) k_h k_w
    and the im2col columns ``cols[n, g]: (K, H_out W_out)`` of group g:

    - ``dbias[o] = sum_{n,i,j} dout[n, o, i, j]`` (the bias is added at every position);
    - ``dweight[g] = sum_n dout[n, g] @ cols[n, g].T``: a correlation of x with dout;
    - ``dx``: the full convolution of dout (with stride - 1 zeros inserted between its
      values) with the flipped kernel, cropped by the padding. It equals
      ``col2im(weight[g].T @ dout[n, g])``, the im2col view of the same sums.
    """
    _check_cache(cache, ConvCache, "conv2d_forward")
    dout = _check_dout(dout, cache.out_shape)
    x, weight, G = cache.x, cache.weight, cache.groups
    dtype = _float_dtype(x, weight, dout)
    dout = dout.astype(dtype, copy=False)
    N, C_in, H, W = x.shape
    C_out, C_in_g, k_h, k_w = weight.shape
    _, _, H_out, W_out = dout.shape
    C_out_g, K, L = C_out // G, C_in_g * k_h * k_w, H_out * W_out

    dbias = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None

    dx = _conv_input_grad(dout, weight, (H, W), cache.stride, cache.padding, cache.dilation, G)

    # weight gradient: every receptive field, weighted by the gradient at its output.
    # One image per GEMM, as in the forward pass: the products are small, stay in cache,
    # and BLAS runs them on one thread, which avoids thread start-up and spin-waiting
    # costs that a second thread does not repay at this size.
    d = dout.reshape(N, G, C_out_g, L)  # a view: each group's gradient maps
    windows = _windows(pad2d(x, cache.padding), (k_h, k_w), cache.stride, cache.dilation)
    windows = windows.reshape(N, G, C_in_g, k_h, k_w, H_out, W_out)  # still a view
    cols = np.empty((G, C_in_g, k_h, k_w, H_out, W_out), dtype=dtype)  # im2col of one image
    cols_t = cols.reshape(G, K, L).transpose(0, 2, 1)  # (G, L, K)
    dweight = np.zeros((G, C_out_g, K), dtype=dtype)
    for n in range(N):
        np.copyto(cols, windows[n])
        dweight += np.matmul(d[n], cols_t)  # (G, C_out/G, L) @ (G, L, K)
    return dx, dweight.reshape(C_out, C_in_g, k_h, k_w), dbias


def _conv_input_grad(dout, weight, hw, stride, padding, dilation, groups) -> np.ndarray:
    """dx of a convolution as a full convolution of dout with the flipped kernel.

    dout: (N, C_out, H_out, W_out) -> dx: (N, C_in, H, W). Input pixel p receives
    ``sum_a weight[a] * dout[i]`` over every output i whose window read p with tap a,
    i.e. ``i * s + a * d = p``. Putting dout back on the stride-1 grid (zeros between
    its values) and correlating with the flipped, dilated kernel padded by d (k - 1) on
    each side computes exactly these sums; it is the forward convolution run backwards,
    a *transposed convolution*, and it reuses the fast im2col forward pass.
    """
    N, C_out, H_out, W_out = dout.shape
    _, C_in_g, k_h, k_w = weight.shape
    G, (H, W) = groups, hw
    (s_h, s_w), (p_h, p_w), (d_h, d_w) = stride, padding, dilation
    if (s_h, s_w) != (1, 1):  # undo the stride: dout on the stride-1 grid, zeros between
        spread = np.zeros((N, C_out, (H_out - 1) * s_h + 1, (W_out - 1) * s_w + 1), dout.dtype)
        spread[:, :, ::s_h, ::s_w] = dout
        dout = spread
    # flipped kernel with input and output channels swapped inside each group:
    # (C_out, C_in/G, k_h, k_w) -> (C_in, C_out/G, k_h, k_w)
    w = weight.reshape(G, C_out // G, C_in_g, k_h, k_w).transpose(0, 2, 1, 3, 4)
    w = np.ascontiguousarray(w[..., ::-1, ::-1]).reshape(G * C_in_g, C_out // G, k_h, k_w)
    full = conv2d_im2col(dout, w, None, 1, (d_h * (k_h - 1), d_w * (k_w - 1)), (d_h, d_w), G)
    # full covers the padded input from its top-left corner; rows and columns that no
    # window reached (when the stride does not divide evenly) get no gradient
    H_f, W_f = full.shape[2:]
    if (H_f, W_f) != (H + 2 * p_h, W + 2 * p_w):
        padded = np.zeros((N, full.shape[1], H + 2 * p_h, W + 2 * p_w), dtype=full.dtype)
        padded[:, :, :H_f, :W_f] = full
        full = padded
    return _crop(full, padding, hw)


# ----------------------------------------------------------------------------- pooling


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> tuple[np.ndarray, MaxPoolCache]:
    """Max pooling that remembers the winner of every window.

    x: (N, C, H, W) -> out: (N, C, H_out, W_out), equal to ``numpy_ops.max_pool2d`` and
    ``torch.nn.functional.max_pool2d``, and a cache. ``stride`` defaults to ``kernel_size``;
    padding is -inf and at most half the kernel. On ties the *first* maximum in row-major
    window order wins, as in PyTorch, so both send the gradient to the same input.
    """
    x, kernel, stride, padding = _check_pool(x, kernel_size, stride, padding)
    windows = _windows(pad2d(x, padding, value=-np.inf), kernel, stride, (1, 1))
    N, C, k_h, k_w, H_out, W_out = windows.shape
    flat = windows.reshape(N, C, k_h * k_w, H_out, W_out)  # one axis per window
    winner = flat.argmax(axis=2)  # argmax returns the first of equal maxima
    out = np.take_along_axis(flat, winner[:, :, None], axis=2)[:, :, 0]
    return out, MaxPoolCache(x.shape, winner, kernel, stride, padding, x.dtype)


def max_pool2d_backward(dout: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """Gradient of max pooling. dout: (N, C, H_out, W_out) -> dx: (N, C, H, W).

    Each window passes its whole gradient to its winner and nothing to the other inputs;
    an input that wins several overlapping windows receives the sum.
    """
    _check_cache(cache, MaxPoolCache, "max_pool2d_forward")
    dout = _check_dout(dout, cache.winner.shape)
    (k_h, k_w), (p_h, p_w) = cache.kernel, cache.padding
    N, C, H, W = cache.x_shape
    H_out, W_out = dout.shape[2:]
    dtype = _float_dtype(dout.dtype, cache.dtype)  # result_type accepts dtypes too
    # one-hot of the winner inside each window, times the window's gradient
    offsets = np.arange(k_h * k_w).reshape(1, 1, -1, 1, 1)
    routed = (offsets == cache.winner[:, :, None]) * dout[:, :, None].astype(dtype, copy=False)
    routed = routed.reshape(N, C, k_h, k_w, H_out, W_out)
    dxp = _scatter_windows(routed, (H + 2 * p_h, W + 2 * p_w), cache.stride, (1, 1))
    return _crop(dxp, cache.padding, (H, W))


def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    count_include_pad: bool = True,
) -> tuple[np.ndarray, AvgPoolCache]:
    """Average pooling with a cache. x: (N, C, H, W) -> out: (N, C, H_out, W_out), cache.

    Same arguments and result as ``numpy_ops.avg_pool2d`` and torch's ``avg_pool2d``.
    """
    if not isinstance(count_include_pad, bool):
        raise TypeError(f"count_include_pad must be a bool, got {type(count_include_pad).__name__}")
    x, kernel, stride, padding = _check_pool(x, kernel_size, stride, padding)
    sums = _windows(pad2d(x, padding), kernel, stride, (1, 1)).sum(axis=(2, 3))
    if count_include_pad:
        divisor = np.full((1, 1, 1, 1), kernel[0] * kernel[1], dtype=x.dtype)
    else:  # the number of real inputs under each window: pool a padded mask of ones
        ones = pad2d(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype), padding)
        divisor = _windows(ones, kernel, stride, (1, 1)).sum(axis=(2, 3))
    out = sums / divisor
    return out, AvgPoolCache(x.shape, divisor, kernel, stride, padding, out.shape, x.dtype)


def avg_pool2d_backward(dout: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    """Gradient of average pooling. dout: (N, C, H_out, W_out) -> dx: (N, C, H, W).

    Every input of a window receives ``dout / divisor`` from that window (the mean is a
    sum with equal weights 1 / divisor); overlapping windows add up.
    """
    _check_cache(cache, AvgPoolCache, "avg_pool2d_forward")
    dout = _check_dout(dout, cache.out_shape)
    (k_h, k_w), (p_h, p_w) = cache.kernel, cache.padding
    N, C, H, W = cache.x_shape
    H_out, W_out = dout.shape[2:]
    share = (dout / cache.divisor).astype(_float_dtype(dout, cache.divisor), copy=False)
    spread = np.broadcast_to(share[:, :, None, None], (N, C, k_h, k_w, H_out, W_out))
    dxp = _scatter_windows(spread, (H + 2 * p_h, W + 2 * p_w), cache.stride, (1, 1))
    return _crop(dxp, cache.padding, (H, W))


# ----------------------------------------------------------------------------- ReLU


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, ReluCache]:
    """ReLU, max(x, 0), element-wise. x: any shape -> out: same shape, cache."""
    x = check_array("x", x)
    x = x.astype(_float_dtype(x), copy=False)
    return np.maximum(x, 0), ReluCache(x)


def relu_backward(dout: np.ndarray, cache: ReluCache) -> np.ndarray:
    """Gradient of ReLU. dout: shape of x -> dx = dout where x > 0, else 0.

    At x = 0 exactly the derivative is taken as 0, as in PyTorch.
    """
    _check_cache(cache, ReluCache, "relu_forward")
    dout = _check_dout(dout, cache.x.shape)
    return np.where(cache.x > 0, dout, 0).astype(_float_dtype(dout, cache.x), copy=False)


# ----------------------------------------------------------------------------- gradient checks


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"eps must be a positive number, got {type(eps).__name__} {eps!r}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


def _scalar(value: object) -> float:
    """The value of f as a float; f must return one number."""
    arr = np.asarray(value)
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"f must return a scalar, got {type(value).__name__} of shape {arr.shape}")
    return float(arr.reshape(()))


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central-difference estimate of the gradient of a scalar function.

    x: any shape -> grad: same shape, float64, with
    ``grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every element i. The error
    is O(eps^2) from truncation plus about 1e-16 |f| / eps from rounding, so eps = 1e-6 suits
    float64. Costs 2 * x.size calls of f. ``f`` receives a float64 copy of ``x`` that is
    perturbed in place (one element at a time), so it must not keep or modify its argument.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    x = check_array("x", x)
    eps = _check_eps(eps)
    x = np.array(x, dtype=np.float64)  # a private copy, perturbed in place below
    grad = np.empty_like(x)
    flat, grad_flat = x.reshape(-1), grad.reshape(-1)  # views of the copies
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        up, x_up = _scalar(f(x)), flat[i]
        flat[i] = original - eps
        down, x_down = _scalar(f(x)), flat[i]
        flat[i] = original
        # divide by the step that was really taken: x + eps is rounded to a float
        grad_flat[i] = (up - down) / (x_up - x_down)
    return grad


def gradient_check(
    f: Callable[[np.ndarray], float], x: np.ndarray, analytic_grad: np.ndarray, eps: float = 1e-6
) -> float:
    """Relative error of an analytic gradient against central differences.

    x, analytic_grad: same shape. Returns ``max|g_a - g_n| / max(max|g_a|, max|g_n|)``: the
    largest element-wise error measured against the size of the gradient (0.0 if both are
    zero). Scaling by the largest entry, not entry by entry, keeps entries that are nearly
    zero, where the rounding error of the difference quotient dominates, from swamping the
    result. A correct gradient in float64 gives about 1e-9 or less; a bug gives about 1.
    """
    x = check_array("x", x)
    analytic_grad = check_array("analytic_grad", analytic_grad)
    if analytic_grad.shape != x.shape:
        raise ValueError(
            f"analytic_grad must have the shape of x {x.shape}, got {analytic_grad.shape}"
        )
    numeric = numerical_gradient(f, x, eps)
    analytic = analytic_grad.astype(np.float64)
    scale = max(float(np.abs(analytic).max(initial=0.0)), float(np.abs(numeric).max(initial=0.0)))
    error = float(np.abs(analytic - numeric).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return error / scale

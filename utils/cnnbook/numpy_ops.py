"""Reference convolution and pooling in plain NumPy.

Two versions of the same 2-D convolution:

- ``conv2d_loops``: explicit Python loops over every output value, the readable definition.
- ``conv2d_im2col``: copy every receptive field into a column (im2col), then do the whole
  layer as big matrix multiplies. Same arithmetic, but BLAS does it, so it runs within a
  small factor of PyTorch (see ``benchmarks/conv_speed.py``).

Both compute cross-correlation with the weight layout of ``torch.nn.functional.conv2d``,
which is what deep-learning libraries call "convolution". ``convolve2d`` and
``correlate2d`` show the textbook difference on a single image: true convolution flips
the kernel first.

Shapes follow the book: ``x: (N, C_in, H, W)``, ``weight: (C_out, C_in // groups, k_h, k_w)``,
output ``(N, C_out, H_out, W_out)`` with
``H_out = conv_output_size(H, k_h, stride, padding, dilation)`` from ``cnnbook.arith``, the
one place for the book's output-size formula.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnbook._checks import check_array, check_choice, check_int, check_pair
from cnnbook.arith import _conv_length

__all__ = [
    "avg_pool2d",
    "conv2d",
    "conv2d_im2col",
    "conv2d_loops",
    "convolve2d",
    "correlate2d",
    "im2col",
    "max_pool2d",
    "pad2d",
]

IntOrPair = int | tuple[int, int]


# ----------------------------------------------------------------------------- helpers


def _float_dtype(*arrays: np.ndarray) -> np.dtype:
    """Common dtype of the inputs; integers are promoted to float64."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def pad2d(x: np.ndarray, padding: IntOrPair, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` with a constant (zero by default).

    x: (..., H, W) -> (..., H + 2 * p_h, W + 2 * p_w); ``padding`` is an int or (p_h, p_w).
    """
    x = check_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (..., H, W), got shape {x.shape}")
    p_h, p_w = check_pair("padding", padding, minimum=0)
    if p_h == 0 and p_w == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(p_h, p_h), (p_w, p_w)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def _windows(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> np.ndarray:
    """Read-only view of every receptive field; nothing is copied.

    xp: (N, C, H_p, W_p), already padded -> (N, C, k_h, k_w, H_out, W_out).
    """
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = kernel, stride, dilation
    span = (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1)
    # (N, C, H_p - span_h + 1, W_p - span_w + 1, span_h, span_w): a window at every position
    view = sliding_window_view(xp, span, axis=(2, 3))
    # keep every stride-th position and every dilation-th tap inside the window
    view = view[:, :, ::s_h, ::s_w, ::d_h, ::d_w]
    return view.transpose(0, 1, 4, 5, 2, 3)


# ----------------------------------------------------------------------------- convolution


class _ConvArgs(NamedTuple):
    """Validated convolution arguments, converted to the computation dtype."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]


def _check_conv(x, weight, bias, stride, padding, dilation, groups) -> _ConvArgs:
    x = check_array("x", x, ndim=4)
    weight = check_array("weight", weight, ndim=4)
    stride = check_pair("stride", stride, minimum=1)
    padding = check_pair("padding", padding, minimum=0)
    dilation = check_pair("dilation", dilation, minimum=1)
    groups = check_int("groups", groups, minimum=1)
    if 0 in weight.shape:
        raise ValueError(f"weight must not have an empty axis, got shape {weight.shape}")

    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_in}")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels C_out={c_out}")
    if weight.shape[1] * groups != c_in:
        raise ValueError(
            f"weight of shape {weight.shape} with groups={groups} expects "
            f"C_in = {weight.shape[1]} * {groups} = {weight.shape[1] * groups} input channels, "
            f"but x has {c_in}"
        )

    arrays = [x, weight]
    if bias is not None:
        bias = check_array("bias", bias)
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {bias.shape}")
        arrays.append(bias)

    (H, W), (k_h, k_w) = x.shape[2:], weight.shape[2:]
    out_hw = (
        _conv_length(H, k_h, stride[0], padding[0], dilation[0], "weight"),
        _conv_length(W, k_w, stride[1], padding[1], dilation[1], "weight"),
    )
    dtype = _float_dtype(*arrays)
    return _ConvArgs(
        x.astype(dtype, copy=False),
        weight.astype(dtype, copy=False),
        None if bias is None else bias.astype(dtype, copy=False),
        stride,
        padding,
        dilation,
        groups,
        out_hw,
    )


def conv2d_loops(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution (cross-correlation) written as loops over every output value.

    x: (N, C_in, H, W); weight: (C_out, C_in // groups, k_h, k_w); bias: (C_out,) or None
    -> (N, C_out, H_out, W_out). Same definition as ``torch.nn.functional.conv2d``:

        out[n, o, i, j] = bias[o] + sum_{c, a, b} weight[o, c, a, b]
                          * x_pad[n, g * C_in/groups + c, i * s_h + a * d_h, j * s_w + b * d_w]

    where ``g = o // (C_out / groups)`` is the group of output channel ``o``.
    Work: O(N C_out H_out W_out C_in/groups k_h k_w) multiply-adds, the same as im2col,
    but each output value costs a Python-level iteration, so use it on small inputs only.
    """
    a = _check_conv(x, weight, bias, stride, padding, dilation, groups)
    N = a.x.shape[0]
    C_out, C_in_g, k_h, k_w = a.weight.shape
    C_out_g = C_out // a.groups
    H_out, W_out = a.out_hw
    (s_h, s_w), (d_h, d_w) = a.stride, a.dilation
    xp = pad2d(a.x, a.padding)

    out = np.zeros((N, C_out, H_out, W_out), dtype=a.x.dtype)
    for n in range(N):
        for o in range(C_out):
            g = o // C_out_g
            channels = slice(g * C_in_g, (g + 1) * C_in_g)  # the inputs this group sees
            for i in range(H_out):
                for j in range(W_out):
                    rows = slice(i * s_h, i * s_h + d_h * (k_h - 1) + 1, d_h)
                    cols = slice(j * s_w, j * s_w + d_w * (k_w - 1) + 1, d_w)
                    patch = xp[n, channels, rows, cols]  # (C_in_g, k_h, k_w)
                    out[n, o, i, j] = np.sum(patch * a.weight[o])
            if a.bias is not None:
                out[n, o] += a.bias[o]
    return out


def im2col(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """Unroll every receptive field of ``x`` into a column.

    x: (N, C, H, W) -> cols: (N, C * k_h * k_w, H_out * W_out). Row ``(c * k_h + a) * k_w + b``
    of column ``i * W_out + j`` holds ``x_pad[n, c, i * s_h + a * d_h, j * s_w + b * d_w]``:
    the same order as ``torch.nn.functional.unfold``, so a convolution becomes
    ``weight.reshape(C_out, -1) @ cols``. Built from a strided view of ``x`` (no Python loop
    over positions); the only copy is the final reshape into columns.
    """
    x = check_array("x", x, ndim=4)
    kernel = check_pair("kernel_size", kernel_size, minimum=1)
    stride = check_pair("stride", stride, minimum=1)
    padding = check_pair("padding", padding, minimum=0)
    dilation = check_pair("dilation", dilation, minimum=1)
    N, C, H, W = x.shape
    H_out = _conv_length(H, kernel[0], stride[0], padding[0], dilation[0], "kernel_size")
    W_out = _conv_length(W, kernel[1], stride[1], padding[1], dilation[1], "kernel_size")
    windows = _windows(pad2d(x, padding), kernel, stride, dilation)
    return windows.reshape(N, C * kernel[0] * kernel[1], H_out * W_out)


def conv2d_im2col(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution (cross-correlation) as im2col followed by matrix multiplies.

    x: (N, C_in, H, W); weight: (C_out, C_in // groups, k_h, k_w); bias: (C_out,) or None
    -> (N, C_out, H_out, W_out), equal to ``torch.nn.functional.conv2d``.

    For each image and group, the receptive fields are copied into a matrix with one row
    per output position (``im2col(x)[n].T``, with each row's values in (k_h, k_w, C) order),
    and the layer becomes one product (H_out * W_out, K) @ (K, C_out/groups), where
    K = k_h * k_w * C_in/groups. Both operands are contiguous, and BLAS splits the long
    axis, H_out * W_out, across its threads.

    Why it is fast: the O(N C_out H_out W_out C_in/groups k_h k_w) multiply-adds are the
    same as in ``conv2d_loops``, but here they form a few big matrix products, which BLAS
    runs with cache blocking, SIMD and threads. The price of im2col is memory: the columns
    hold every input value about k_h * k_w times (for stride 1), so they are built for one
    image at a time, in a buffer that is reused and stays in cache for the multiply.
    """
    a = _check_conv(x, weight, bias, stride, padding, dilation, groups)
    N = a.x.shape[0]
    C_out, C_in_g, k_h, k_w = a.weight.shape
    G, (H_out, W_out) = a.groups, a.out_hw
    C_out_g, K, L = C_out // G, k_h * k_w * C_in_g, H_out * W_out

    # Channels-last memory (N, H_p, W_p, C_in), seen through an (N, C_in, H_p, W_p) view:
    # every receptive field is then k_h * k_w runs of C_in/G contiguous values, so the
    # im2col copy below moves long contiguous runs instead of rows of k_w values.
    xp = pad2d(a.x, a.padding)
    xp = np.ascontiguousarray(xp.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    windows = _windows(xp, (k_h, k_w), a.stride, a.dilation)  # (N, C_in, k_h, k_w, H_out, W_out)
    windows = windows.reshape(N, G, C_in_g, k_h, k_w, H_out, W_out)
    windows = windows.transpose(0, 5, 6, 1, 3, 4, 2)  # (N, H_out, W_out, G, k_h, k_w, C_in/G)
    # weight rows in the same (k_h, k_w, C_in/G) order: (G, K, C_out/G)
    w = a.weight.reshape(G, C_out_g, C_in_g, k_h, k_w).transpose(0, 3, 4, 2, 1)
    w = w.reshape(G, K, C_out_g)

    cols = np.empty(windows.shape[1:], dtype=a.x.dtype)
    out_n = np.empty((G, L, C_out_g), dtype=a.x.dtype)  # one image: positions x channels
    out = np.empty((N, C_out, H_out, W_out), dtype=a.x.dtype)
    # One image per GEMM rather than one GEMM over the whole batch: measured faster on CPU,
    # since the column buffer stays in cache and so does the output that is transposed.
    for n in range(N):
        np.copyto(cols, windows[n])  # im2col of image n: the only big copy
        cols_g = cols.reshape(L, G, K)  # a view: each group's K values are contiguous
        for g in range(G):
            np.matmul(cols_g[:, g], w[g], out=out_n[g])  # (L, K) @ (K, C_out/G): one BLAS call
        out[n].reshape(G, C_out_g, L)[...] = out_n.transpose(0, 2, 1)
    if a.bias is not None:
        out += a.bias.reshape(1, C_out, 1, 1)
    return out


conv2d = conv2d_im2col


# ----------------------------------------------------------------------------- pooling


def _check_pool(x, kernel_size, stride, padding):
    x = check_array("x", x, ndim=4)
    kernel = check_pair("kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else check_pair("stride", stride, minimum=1)
    padding = check_pair("padding", padding, minimum=0)
    for p, k in zip(padding, kernel, strict=True):
        # same rule as torch: a window must never lie entirely in the padding
        if 2 * p > k:
            raise ValueError(
                f"padding {padding} must be at most half of kernel_size {kernel} "
                f"(padding <= kernel_size / 2 in each axis)"
            )
    for size, k, s, p in zip(x.shape[2:], kernel, stride, padding, strict=True):
        _conv_length(size, k, s, p, 1, "kernel_size")  # raises if a window does not fit
    return x.astype(_float_dtype(x), copy=False), kernel, stride, padding


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """Maximum over each k_h x k_w window, like ``torch.nn.functional.max_pool2d``.

    x: (N, C, H, W) -> (N, C, H_out, W_out). ``stride`` defaults to ``kernel_size``;
    the padding is -inf, so it never wins the max. Requires padding <= kernel_size / 2.
    """
    x, kernel, stride, padding = _check_pool(x, kernel_size, stride, padding)
    windows = _windows(pad2d(x, padding, value=-np.inf), kernel, stride, (1, 1))
    return windows.max(axis=(2, 3))


def avg_pool2d(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Mean over each k_h x k_w window, like ``torch.nn.functional.avg_pool2d``.

    x: (N, C, H, W) -> (N, C, H_out, W_out). The padding is zeros; with
    ``count_include_pad=True`` every window is divided by k_h * k_w, otherwise by the number
    of real (non-padding) inputs it covers. Requires padding <= kernel_size / 2.
    """
    if not isinstance(count_include_pad, bool):
        raise TypeError(f"count_include_pad must be a bool, got {type(count_include_pad).__name__}")
    x, kernel, stride, padding = _check_pool(x, kernel_size, stride, padding)
    sums = _windows(pad2d(x, padding), kernel, stride, (1, 1)).sum(axis=(2, 3))
    if count_include_pad:
        return sums / (kernel[0] * kernel[1])
    # count the real inputs under each window by pooling a padded mask of ones
    ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
    counts = _windows(pad2d(ones, padding), kernel, stride, (1, 1)).sum(axis=(2, 3))
    return sums / counts


# ----------------------------------------------------------------------------- single image

MODES = ("valid", "same", "full")


def _correlate_padded(image: np.ndarray, kernel: np.ndarray, mode: str) -> np.ndarray:
    """Cross-correlation of one image with one kernel after the padding ``mode`` asks for."""
    (H, W), (k_h, k_w) = image.shape, kernel.shape
    if mode == "valid":
        if k_h > H or k_w > W:
            raise ValueError(
                f"kernel of shape {kernel.shape} is larger than image of shape {image.shape}; "
                f"mode='valid' needs it to fit (use mode='same' or 'full')"
            )
        pads = (0, 0)
    elif mode == "same":
        if k_h % 2 == 0 or k_w % 2 == 0:
            raise ValueError(
                f"mode='same' needs a kernel with odd height and width, got {kernel.shape}"
            )
        pads = (k_h // 2, k_w // 2)
    else:  # "full": every position where kernel and image overlap at all
        pads = (k_h - 1, k_w - 1)
    dtype = _float_dtype(image, kernel)
    padded = pad2d(image.astype(dtype, copy=False), pads)
    windows = sliding_window_view(padded, (k_h, k_w))  # (H_out, W_out, k_h, k_w)
    return np.tensordot(windows, kernel.astype(dtype, copy=False), axes=([2, 3], [0, 1]))


def _check_image_kernel(image, kernel, mode):
    image = check_array("image", image, ndim=2)
    kernel = check_array("kernel", kernel, ndim=2)
    if 0 in image.shape:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    if 0 in kernel.shape:
        raise ValueError(f"kernel must not be empty, got shape {kernel.shape}")
    check_choice("mode", mode, MODES)
    return image, kernel


def correlate2d(image: np.ndarray, kernel: np.ndarray, mode: str = "valid") -> np.ndarray:
    """Cross-correlation: slide ``kernel`` over ``image`` as it is (what CNN layers do).

    image: (H, W); kernel: (k_h, k_w) -> ``out[i, j] = sum_{a, b} kernel[a, b] *
    image_pad[i + a, j + b]`` with shape (H - k_h + 1, W - k_w + 1) for ``mode="valid"``,
    (H, W) for ``"same"`` (odd kernels, zero padding), (H + k_h - 1, W + k_w - 1) for
    ``"full"``. Matches ``scipy.signal.correlate2d`` for real inputs.
    """
    image, kernel = _check_image_kernel(image, kernel, mode)
    return _correlate_padded(image, kernel, mode)


def convolve2d(image: np.ndarray, kernel: np.ndarray, mode: str = "valid") -> np.ndarray:
    """True convolution: flip ``kernel`` in both axes, then cross-correlate.

    image: (H, W); kernel: (k_h, k_w) -> ``correlate2d(image, kernel[::-1, ::-1], mode)``,
    i.e. ``out[i, j] = sum_{a, b} kernel[a, b] * image[i - a, j - b]`` in ``"full"`` mode
    (zero outside the image), cropped by ``mode`` to the same shapes as ``correlate2d``.
    The flip makes convolution commutative and associative, properties signal processing
    relies on; a CNN learns its kernels, so it can skip the flip. Matches
    ``scipy.signal.convolve2d``.
    """
    image, kernel = _check_image_kernel(image, kernel, mode)
    return _correlate_padded(image, kernel[::-1, ::-1], mode)

"""The upsampling explorer: a transposed convolution as stamped kernels, next to resize + conv.

A transposed convolution (stride ``s``, no padding) adds, for every input pixel ``(i, j)``,
a copy of the kernel scaled by ``x[i, j]`` into the output with its corner at
``(i s, j s)``. The reader picks the kernel size and the stride, steps through the stamps
one input pixel at a time, and sees the *overlap counts* (how many stamps cover each
output pixel): a checkerboard when the kernel size is not a multiple of the stride, holes
(count 0) when the kernel is smaller than the stride. Beside it, *resize, then convolve*
(nearest-neighbour upsampling by ``s``, then a ``k x k`` convolution with zero padding
that keeps the size) reads ``k * k`` pixels everywhere away from the border.

Python computes every number with PyTorch: for each (kernel size, stride) choice the
output of ``torch.nn.functional.conv_transpose2d``, the overlap counts
(``conv_transpose2d`` of ones with a kernel of ones), the running sums after each stamp,
and the resize + conv output and counts. The browser only looks them up and draws.

Example::

    from cnnbook.widgets.upsampling import UpsamplingExplorer
    UpsamplingExplorer()   # last expression of a cell: shows the figure
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from cnnbook._checks import check_int
from cnnbook.widgets._html import StaticFallback, render_widget
from cnnbook.widgets.sliding_kernel import _as_choices, _as_matrix

__all__ = [
    "EXAMPLE_INPUT",
    "MAX_INPUT_SIZE",
    "MAX_KERNEL",
    "MAX_STRIDE",
    "UpsamplingExplorer",
    "overlap_pattern",
    "resize_conv",
    "tent_kernel",
    "transposed_conv",
]

# Small integers, so every sum in the figure is an exact integer.
EXAMPLE_INPUT = np.array([[1, 2, 1], [3, 1, 2], [1, 2, 3]])
MAX_INPUT_SIZE = 4  # the output of a 4 x 4 input, k = 5, s = 4 is 17 x 17: still readable
MAX_KERNEL = 5
MAX_STRIDE = 4
MAX_DECIMALS = 4


def tent_kernel(k: int) -> np.ndarray:
    """(k, k) integer "tent": the outer product of ``1, 2, ..., 2, 1`` with itself.

    k = 3 gives ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]``, the shape of bilinear
    interpolation; k = 1 gives ``[[1]]``.
    """
    k = check_int("k", k, minimum=1)
    ramp = np.minimum(np.arange(k), np.arange(k)[::-1]) + 1  # (k,)
    return np.outer(ramp, ramp).astype(np.int64)


def transposed_conv(image: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """``torch.nn.functional.conv_transpose2d`` (padding 0) of one channel, in float64.

    image: (H, W) or a batch (N, H, W); kernel: (k, k) -> ((H - 1) s + k, (W - 1) s + k),
    with the batch dimension kept.
    """
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(image, dtype=np.float64))
    w = torch.as_tensor(np.asarray(kernel, dtype=np.float64))[None, None]
    batch = x[:, None] if x.ndim == 3 else x[None, None]
    out = F.conv_transpose2d(batch, w, stride=stride)[:, 0]
    return (out if x.ndim == 3 else out[0]).numpy()


def resize_conv(image: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Nearest-neighbour upsampling by ``stride``, then a "same" convolution, in float64.

    image: (H, W); kernel: (k, k) -> (H s, W s). The zero padding is ``(k - 1) // 2``
    before and ``k // 2`` after, as ``torch.nn.functional.conv2d(..., padding="same")``
    places it (spelled out with ``F.pad``, which also works for even ``k`` without a
    warning). Cross-correlation, like every ``conv2d``.
    """
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(image, dtype=np.float64))[None, None]
    w = torch.as_tensor(np.asarray(kernel, dtype=np.float64))[None, None]
    k = w.shape[-1]
    up = F.interpolate(x, scale_factor=stride, mode="nearest")
    padded = F.pad(up, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))
    return F.conv2d(padded, w)[0, 0].numpy()


def overlap_pattern(kernel_size: int, stride: int) -> str:
    """What the stamps' overlap counts look like away from the border.

    "holes": k < s, some output pixels get no stamp; "checkerboard": k is not a multiple
    of s, neighbouring pixels get different counts; "even": k is a multiple of s, every
    interior pixel gets (k / s) ** 2 stamps.
    """
    k = check_int("kernel_size", kernel_size, minimum=1)
    s = check_int("stride", stride, minimum=1)
    if k < s:
        return "holes"
    return "checkerboard" if k % s else "even"


def _counts(values: np.ndarray) -> list[list[int]]:
    """Overlap counts (exact integers in float64) as nested lists of int."""
    rounded = np.rint(values)
    if not np.array_equal(rounded, values):  # a count is a sum of ones: always exact
        raise AssertionError("overlap counts must be whole numbers")
    return rounded.astype(np.int64).tolist()


def _stamps(image: np.ndarray, kernel: np.ndarray, stride: int) -> list[dict]:
    """Every input pixel's stamp, row-major, with the running sums it leaves behind.

    Stamp ``n`` covers the k x k window at ``at`` = (i s, j s); ``values`` = x[i, j] * w.
    ``after`` / ``after_counts``: the output and the counts inside that window once stamps
    0..n are added, computed with ``conv_transpose2d`` on the input with the later pixels
    zeroed (and on a mask of ones). A cell's value after stamp n is that of the last stamp
    <= n covering it, so the browser shows every intermediate state by lookup alone.
    """
    H, W = image.shape
    k = kernel.shape[0]
    ones = np.ones_like(kernel)
    # done[n]: the pixels stamped once stamp n is added (row-major), (H W, H, W)
    done = (np.arange(H * W)[None, :] <= np.arange(H * W)[:, None]).reshape(H * W, H, W)
    partials = transposed_conv(np.where(done, image, 0.0), kernel, stride)  # (H W, H_out, W_out)
    partial_counts = transposed_conv(done.astype(np.float64), ones, stride)
    stamps = []
    for n in range(H * W):
        i, j = divmod(n, W)
        top, left = i * stride, j * stride
        window = (slice(top, top + k), slice(left, left + k))
        stamps.append(
            {
                "src": [i, j],
                "at": [top, left],
                "values": (image[i, j] * kernel).tolist(),
                "after": partials[n][window].tolist(),
                "after_counts": _counts(partial_counts[n][window]),
            }
        )
    return stamps


class UpsamplingExplorer(StaticFallback):
    """Interactive figure: transposed convolution as stamps, its overlap counts, resize + conv.

    image: (H, W) with 1 <= H, W <= 4, default ``EXAMPLE_INPUT`` (3 x 3).
    kernel_sizes / strides: the choices offered (ints in 1..5 and 1..4); kernel_size and
    stride (one of them each) are shown first. kernels: "tent" (``tent_kernel``), "ones",
    or a mapping from every offered kernel size k to a (k, k) array. The figure starts
    with every stamp added; Reset and Step go through them one input pixel at a time.
    Numbers are shown with at most ``decimals`` digits after the point.

    Show it by making it the last expression of a cell (a bundle of the HTML and a PNG of
    its first state, see ``_html.StaticFallback``), or embed ``to_html()`` anywhere HTML is
    accepted. ``data`` holds every number the figure shows; ``config(k, s)`` one choice.
    """

    def __init__(
        self,
        image: np.ndarray | None = None,
        kernel_size: int = 3,
        stride: int = 2,
        kernel_sizes: tuple[int, ...] = (1, 2, 3, 4, 5),
        strides: tuple[int, ...] = (1, 2, 3, 4),
        kernels: str | Mapping[int, np.ndarray] = "tent",
        title: str | None = None,
        decimals: int = 2,
    ) -> None:
        self.image = _as_matrix("image", EXAMPLE_INPUT if image is None else image)
        H, W = self.image.shape
        if H > MAX_INPUT_SIZE or W > MAX_INPUT_SIZE:
            raise ValueError(
                f"image must be at most {MAX_INPUT_SIZE} x {MAX_INPUT_SIZE} (a readable "
                f"figure), got {H} x {W}"
            )
        self.kernel_sizes = _as_choices("kernel_sizes", kernel_sizes, minimum=1, maximum=MAX_KERNEL)
        self.strides = _as_choices("strides", strides, minimum=1, maximum=MAX_STRIDE)
        self.kernel_size = check_int("kernel_size", kernel_size, minimum=1)
        self.stride = check_int("stride", stride, minimum=1)
        if self.kernel_size not in self.kernel_sizes:
            raise ValueError(
                f"kernel_size must be one of kernel_sizes={self.kernel_sizes}, "
                f"got {self.kernel_size}"
            )
        if self.stride not in self.strides:
            raise ValueError(f"stride must be one of strides={self.strides}, got {self.stride}")
        self.kernels = self._check_kernels(kernels)
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.title = title or "Upsampling: transposed convolution as stamps, or resize + conv"
        self.decimals = check_int("decimals", decimals, minimum=0)
        if self.decimals > MAX_DECIMALS:
            raise ValueError(f"decimals must be <= {MAX_DECIMALS}, got {self.decimals}")
        self.data = self._compute()

    def _check_kernels(self, kernels: object) -> dict[int, np.ndarray]:
        if isinstance(kernels, str):
            if kernels == "tent":
                return {k: tent_kernel(k).astype(np.float64) for k in self.kernel_sizes}
            if kernels == "ones":
                return {k: np.ones((k, k)) for k in self.kernel_sizes}
            raise ValueError(f'kernels must be "tent", "ones" or a mapping, got {kernels!r}')
        if not isinstance(kernels, Mapping):
            raise TypeError(
                f'kernels must be "tent", "ones" or a mapping k -> (k, k) array, '
                f"got {type(kernels).__name__}"
            )
        missing = [k for k in self.kernel_sizes if k not in kernels]
        if missing:
            raise ValueError(f"kernels has no kernel for kernel sizes {missing}")
        out = {}
        for k in self.kernel_sizes:
            kernel = _as_matrix(f"kernels[{k}]", kernels[k])
            if kernel.shape != (k, k):
                raise ValueError(f"kernels[{k}] must have shape ({k}, {k}), got {kernel.shape}")
            out[k] = kernel
        return out

    @staticmethod
    def config_key(kernel_size: int, stride: int) -> str:
        """Key of one (kernel size, stride) choice in ``data["configs"]``, e.g. ``"k3s2"``."""
        return f"k{kernel_size}s{stride}"

    def config(self, kernel_size: int | None = None, stride: int | None = None) -> dict:
        """Every number shown for one offered (kernel size, stride) choice."""
        k = self.kernel_size if kernel_size is None else kernel_size
        s = self.stride if stride is None else stride
        key = self.config_key(k, s)
        if key not in self.data["configs"]:
            raise ValueError(
                f"(kernel_size, stride) = ({k}, {s}) is not one of the figure's choices: "
                f"kernel_sizes={self.kernel_sizes}, strides={self.strides}"
            )
        return self.data["configs"][key]

    def _compute(self) -> dict:
        """Every number the figure can show, keyed by (kernel size, stride)."""
        import torch

        # One thread: these tensors are tiny, and on a busy machine a second thread only
        # adds spin-waiting (see receptive_field.measure_erf). Restored afterwards.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            configs = self._configs()
        finally:
            torch.set_num_threads(threads)
        return {
            "title": self.title,
            "decimals": self.decimals,
            "image": self.image.tolist(),
            "kernels": {str(k): self.kernels[k].tolist() for k in self.kernel_sizes},
            "kernel_sizes": list(self.kernel_sizes),
            "strides": list(self.strides),
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "configs": configs,
        }

    def _configs(self) -> dict:
        """``data["configs"]``: the numbers of every (kernel size, stride) choice."""
        configs = {}
        for k in self.kernel_sizes:
            kernel = self.kernels[k]
            ones = np.ones((k, k))
            for s in self.strides:
                out = transposed_conv(self.image, kernel, s)
                counts = transposed_conv(np.ones_like(self.image), ones, s)
                upsampled = np.repeat(np.repeat(self.image, s, axis=0), s, axis=1)
                configs[self.config_key(k, s)] = {
                    "k": k,
                    "s": s,
                    "pattern": overlap_pattern(k, s),
                    "holes": int((counts == 0).sum()),
                    "out": out.tolist(),
                    "counts": _counts(counts),
                    "stamps": _stamps(self.image, kernel, s),
                    "resize": {
                        "upsampled": upsampled.tolist(),
                        "out": resize_conv(self.image, kernel, s).tolist(),
                        "counts": _counts(resize_conv(np.ones_like(self.image), ones, s)),
                        "taps": k * k,
                    },
                }
        return configs

    def to_html(self) -> str:
        """The figure as one self-contained HTML string (inline style, script and data)."""
        return render_widget(
            widget="upsampling",
            data=self.data,
            label=(
                f"{self.title}. Interactive figure: pick a kernel size and a stride, step "
                "through the stamps and compare the overlap counts of both upsamplings."
            ),
            js_file="upsampling.js",
            css_file="upsampling.css",
            entry="mountUpsampling",
            static_png=self.static_png(),
        )

    def _static_figure(self) -> Figure:
        """The first state: input, kernel, both outputs and both overlap-count maps."""
        from cnnbook.widgets.static_upsampling import upsampling_figure

        return upsampling_figure(self.data)

    def __repr__(self) -> str:
        H, W = self.image.shape
        return (
            f"UpsamplingExplorer(image {H}x{W}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, kernel_sizes={self.kernel_sizes}, strides={self.strides})"
        )

"""The sliding-kernel figure: one kernel stepping over a small image, one output at a time.

Python computes, for every (stride, padding) pair the reader may pick, the padded input,
the output map (with ``cnnbook.numpy_ops.conv2d``, i.e. cross-correlation exactly as
``torch.nn.functional.conv2d``) and, for each output position, the window's top-left
corner and the ``k_h * k_w`` element-wise products. The browser only draws these numbers
and moves through them, so the figure needs no kernel and works in the static book.

Example (the chapter's worked example)::

    from cnnbook.widgets.sliding_kernel import EXAMPLE_INPUT, EXAMPLE_KERNEL, SlidingKernel
    SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL)   # last expression of a cell: shows the figure
"""

from __future__ import annotations

import numbers

import numpy as np
from matplotlib.figure import Figure

from cnnbook._checks import check_array, check_int
from cnnbook.numpy_ops import conv2d, pad2d
from cnnbook.widgets._html import StaticFallback, render_widget
from cnnbook.widgets.static import sliding_kernel_figure

__all__ = ["EXAMPLE_INPUT", "EXAMPLE_KERNEL", "MAX_IMAGE_SIZE", "SlidingKernel"]

# A 5 x 5 input and a 3 x 3 kernel whose valid cross-correlation starts with 15:
# the top-left window [[1, 2, 3], [0, 1, 2], [1, 0, 1]] times the kernel, summed, is
# 1 + 4 + 3 + 0 + 1 + 4 + 1 + 0 + 1 = 15.
# Full valid output (stride 1, padding 0): [[15, 18, 10], [8, 15, 14], [5, 8, 14]].
EXAMPLE_INPUT = np.array(
    [
        [1, 2, 3, 0, 1],
        [0, 1, 2, 3, 1],
        [1, 0, 1, 2, 0],
        [2, 1, 0, 1, 3],
        [1, 2, 1, 0, 1],
    ]
)
EXAMPLE_KERNEL = np.array(
    [
        [1, 2, 1],
        [0, 1, 2],
        [1, 0, 1],
    ]
)

MAX_IMAGE_SIZE = 16  # a teaching figure: every number must stay readable
MAX_PADDING = 4
MAX_STRIDE = 8
MAX_DECIMALS = 6


def _as_matrix(name: str, value: object) -> np.ndarray:
    """Accept an ndarray, nested lists or a tensor; return a finite 2-D float64 array."""
    if not isinstance(value, np.ndarray) and (
        isinstance(value, (list, tuple)) or hasattr(value, "__array__")
    ):
        try:
            value = np.asarray(value)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular 2-D array: {err}") from None
        except (TypeError, RuntimeError) as err:  # e.g. a CUDA tensor or one that needs grad
            raise TypeError(
                f"{name} could not be converted to a NumPy array ({err}); "
                "pass e.g. tensor.detach().cpu().numpy()"
            ) from None
    value = check_array(name, value, ndim=2)
    if 0 in value.shape:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or infinity)")
    return value.astype(np.float64)


def _as_choices(name: str, values: object, *, minimum: int, maximum: int) -> tuple[int, ...]:
    """A non-empty tuple of distinct ints in [minimum, maximum]."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range)):
        raise TypeError(f"{name} must be a tuple of ints, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"{name} must not be empty")
    out = tuple(check_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(values))
    if max(out) > maximum:
        raise ValueError(f"{name} values must be <= {maximum}, got {out}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat a value, got {out}")
    return out


def _window_products(
    padded: np.ndarray, kernel: np.ndarray, stride: int, out_shape: tuple[int, int]
) -> list[dict]:
    """Every output position in row-major order with its window corner and products.

    padded: (H + 2p, W + 2p); kernel: (k_h, k_w). Each entry holds ``out`` = [i, j],
    ``window`` = [top, left] in the padded input, ``products`` (k_h, k_w) and their ``sum``.
    """
    k_h, k_w = kernel.shape
    positions = []
    for i in range(out_shape[0]):
        for j in range(out_shape[1]):
            top, left = i * stride, j * stride
            products = padded[top : top + k_h, left : left + k_w] * kernel
            positions.append(
                {
                    "out": [i, j],
                    "window": [top, left],
                    "products": products.tolist(),
                    "sum": float(products.sum()),
                }
            )
    return positions


class SlidingKernel(StaticFallback):
    """Interactive figure: a kernel slides over an image; step, play, change stride/padding.

    image: (H, W) with H, W <= 16; kernel: (k_h, k_w). Cross-correlation (no kernel
    flip), the operation ``torch.nn.functional.conv2d`` computes; ``bias`` is added to
    every output. ``strides`` and ``paddings`` are the choices offered in the figure's
    menus; ``stride`` and ``padding`` (one of them each) are shown first. Paddings at which
    the kernel does not fit the padded input appear greyed out. Numbers are shown with
    ``decimals`` digits after the point.

    Show it by making it the last expression of a cell (a bundle of the HTML and a PNG of
    its first state, see ``_html.StaticFallback``), or embed
    ``to_html()`` anywhere HTML is accepted. ``data`` holds every number the figure shows.
    """

    def __init__(
        self,
        image: np.ndarray,
        kernel: np.ndarray,
        stride: int = 1,
        padding: int = 0,
        strides: tuple[int, ...] = (1, 2, 3),
        paddings: tuple[int, ...] = (0, 1, 2),
        bias: float = 0.0,
        title: str | None = None,
        decimals: int = 2,
    ) -> None:
        self.image = _as_matrix("image", image)
        self.kernel = _as_matrix("kernel", kernel)
        H, W = self.image.shape
        k_h, k_w = self.kernel.shape
        if H > MAX_IMAGE_SIZE or W > MAX_IMAGE_SIZE:
            raise ValueError(
                f"image must be at most {MAX_IMAGE_SIZE} x {MAX_IMAGE_SIZE} (a readable "
                f"figure), got {H} x {W}; crop or downsample it first"
            )
        self.strides = _as_choices("strides", strides, minimum=1, maximum=MAX_STRIDE)
        self.paddings = _as_choices("paddings", paddings, minimum=0, maximum=MAX_PADDING)
        self.stride = check_int("stride", stride, minimum=1)
        self.padding = check_int("padding", padding, minimum=0)
        if self.stride not in self.strides:
            raise ValueError(f"stride must be one of strides={self.strides}, got {self.stride}")
        if self.padding not in self.paddings:
            raise ValueError(f"padding must be one of paddings={self.paddings}, got {self.padding}")
        if isinstance(bias, bool) or not isinstance(bias, numbers.Real):
            raise TypeError(f"bias must be a real number, got {type(bias).__name__} {bias!r}")
        if not np.isfinite(bias):
            raise ValueError(f"bias must be finite, got {bias}")
        self.bias = float(bias)
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.title = title or f"Sliding a {k_h} × {k_w} kernel over a {H} × {W} input"
        self.decimals = check_int("decimals", decimals, minimum=0)
        if self.decimals > MAX_DECIMALS:
            raise ValueError(f"decimals must be <= {MAX_DECIMALS}, got {self.decimals}")

        fits = [p for p in self.paddings if H + 2 * p >= k_h and W + 2 * p >= k_w]
        if not fits:
            raise ValueError(
                f"kernel of shape {k_h} x {k_w} is larger than the padded input for every "
                f"padding in {self.paddings} (image {H} x {W})"
            )
        if self.padding not in fits:
            raise ValueError(
                f"padding={self.padding}: the {k_h} x {k_w} kernel does not fit the padded "
                f"{H + 2 * self.padding} x {W + 2 * self.padding} input; use one of {fits}"
            )
        self.data = self._compute(fits)

    @staticmethod
    def config_key(stride: int, padding: int) -> str:
        """Key of one (stride, padding) pair in ``data["configs"]``, e.g. ``"s2p1"``."""
        return f"s{stride}p{padding}"

    def output(self, stride: int | None = None, padding: int | None = None) -> np.ndarray:
        """The output map for one offered (stride, padding) pair: (H_out, W_out)."""
        stride = self.stride if stride is None else stride
        padding = self.padding if padding is None else padding
        key = self.config_key(stride, padding)
        if key not in self.data["configs"]:
            raise ValueError(
                f"(stride, padding) = ({stride}, {padding}) is not one of the figure's "
                f"choices: {sorted(self.data['configs'])}"
            )
        return np.array(self.data["configs"][key]["output"])

    def _compute(self, fitting_paddings: list[int]) -> dict:
        """Every number the figure can show, keyed by (stride, padding)."""
        x = self.image[None, None]  # (1, 1, H, W): numpy_ops works on batches of channels
        w = self.kernel[None, None]  # (1, 1, k_h, k_w)
        bias = np.array([self.bias])
        configs = {}
        for p in fitting_paddings:
            padded = pad2d(self.image, p)  # (H + 2p, W + 2p)
            for s in self.strides:
                out = conv2d(x, w, bias=bias, stride=s, padding=p)[0, 0]  # (H_out, W_out)
                configs[self.config_key(s, p)] = {
                    "stride": s,
                    "padding": p,
                    "padded": padded.tolist(),
                    "output": out.tolist(),
                    "positions": _window_products(padded, self.kernel, s, out.shape),
                }
        return {
            "title": self.title,
            "decimals": self.decimals,
            "bias": self.bias,
            "image": self.image.tolist(),
            "kernel": self.kernel.tolist(),
            "H": self.image.shape[0],
            "W": self.image.shape[1],
            "k_h": self.kernel.shape[0],
            "k_w": self.kernel.shape[1],
            "strides": list(self.strides),
            "paddings": list(self.paddings),
            "stride": self.stride,
            "padding": self.padding,
            "configs": configs,
        }

    def to_html(self) -> str:
        """The figure as one self-contained HTML string (inline style, script and data)."""
        return render_widget(
            widget="sliding-kernel",
            data=self.data,
            label=f"{self.title}. Interactive figure: step the kernel across the input.",
            js_file="sliding_kernel.js",
            css_file="sliding_kernel.css",
            entry="mountSlidingKernel",
            static_png=self.static_png(),
        )

    def _static_figure(self) -> Figure:
        """The first step: first window on the input, the kernel, the first output value."""
        return sliding_kernel_figure(self.data)

    def __repr__(self) -> str:
        H, W = self.image.shape
        k_h, k_w = self.kernel.shape
        return (
            f"SlidingKernel(image {H}x{W}, kernel {k_h}x{k_w}, stride={self.stride}, "
            f"padding={self.padding})"
        )

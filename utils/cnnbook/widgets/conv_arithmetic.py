"""The convolution-arithmetic explorer: pick W, k, s, p, d (or a transposed convolution) and
watch the output size follow.

Python computes the output size, or the reason there is none, for *every* combination the
figure's controls can reach (``RANGES``; 5,040 ordinary and 20,160 transposed
configurations) with ``cnnbook.arith``. The browser only looks sizes up, draws the grids and
moves the kernel, so the figure needs no kernel and works in the static book.

The sizes travel as two strings with one character per configuration (see ``encode``): the
character code minus ``CODE_OFFSET`` is the output size when positive, and minus a reason
code from ``REASONS`` when there is no output. Configurations are numbered in the order of
``ORDER`` (the first name varies slowest), like nested loops.

Example::

    from cnnbook.widgets.conv_arithmetic import ConvArithmetic
    ConvArithmetic(input_size=7, kernel_size=3, stride=2, padding=1)   # last expression of a cell
"""

from __future__ import annotations

import functools
import itertools

from matplotlib.figure import Figure

from cnnbook._checks import check_int
from cnnbook.arith import conv_output_size, conv_transpose_output_size, effective_kernel_size
from cnnbook.widgets._html import StaticFallback, render_widget
from cnnbook.widgets.static import conv_arithmetic_figure

__all__ = ["CODE_OFFSET", "ORDER", "RANGES", "REASONS", "ConvArithmetic", "encode"]

# Inclusive (smallest, largest) value of each control.
RANGES: dict[str, tuple[int, int]] = {
    "input": (1, 12),
    "kernel": (1, 7),
    "stride": (1, 4),
    "padding": (0, 4),
    "dilation": (1, 3),
    "output_padding": (0, 3),
}
# Table layout: configurations are numbered like nested loops over these names.
ORDER: dict[str, tuple[str, ...]] = {
    "conv": ("input", "kernel", "stride", "padding", "dilation"),
    "transposed": ("input", "kernel", "stride", "padding", "dilation", "output_padding"),
}
# Why a configuration has no output. The script fills the {names} with the current values
# ({eff}: dilated kernel size, {padded}: padded input size, {extent}: size of a transposed
# convolution's result before padding crops it).
REASONS: dict[int, str] = {
    1: "the dilated kernel ({eff}) is larger than the padded input ({padded}): no output",
    2: (
        "output_padding ({output_padding}) must be smaller than stride ({stride}) or "
        "dilation ({dilation}): PyTorch refuses this layer"
    ),
    3: (
        "padding {padding} removes a border {padding} cells wide from the "
        "{extent} \u00d7 {extent} result (output_padding gives back {output_padding}): "
        "nothing is left, no output"
    ),
}
# Output size n is stored as chr(CODE_OFFSET + n), reason r as chr(CODE_OFFSET - r):
# digits '1'..'9' are sizes 1..9, and every character is printable ASCII.
CODE_OFFSET = 48
_MAX_CODE = 126


def _reason(config: dict[str, int], transposed: bool) -> int:
    """Reason code (a key of REASONS) why cnnbook.arith finds no output for ``config``."""
    W, k, s, p, d = (config[n] for n in ORDER["conv"])
    eff = effective_kernel_size(k, d)
    if not transposed and eff > W + 2 * p:
        return 1
    if transposed and config["output_padding"] >= max(s, d):  # PyTorch's rule
        return 2
    if transposed and (W - 1) * s - 2 * p + eff + config["output_padding"] < 1:
        return 3
    raise AssertionError(
        f"cnnbook.arith refused {config} (transposed={transposed}) for an unknown reason"
    )


def _size(config: dict[str, int], transposed: bool) -> int | None:
    """Output size of one configuration from cnnbook.arith, None if it has no output."""
    W, k, s, p, d = (config[n] for n in ORDER["conv"])
    try:
        if transposed:
            return conv_transpose_output_size(
                W, k, stride=s, padding=p, output_padding=config["output_padding"], dilation=d
            )
        return conv_output_size(W, k, stride=s, padding=p, dilation=d)
    except ValueError:
        return None


def encode(size: int | None = None, reason: int | None = None) -> str:
    """One table character: an output size (>= 1) or, if there is none, a reason code."""
    if (size is None) == (reason is None):
        raise ValueError("pass exactly one of size and reason")
    code = CODE_OFFSET + size if size is not None else CODE_OFFSET - reason
    if not (size is None or size >= 1) or not 33 <= code <= _MAX_CODE:
        raise ValueError(f"size={size}, reason={reason} does not fit one printable character")
    return chr(code)


def _configs(mode: str):
    """Every configuration of ``mode`` in table order, as dicts name -> value."""
    names = ORDER[mode]
    ranges = [range(RANGES[n][0], RANGES[n][1] + 1) for n in names]
    for values in itertools.product(*ranges):
        yield dict(zip(names, values, strict=True))


@functools.cache
def size_tables() -> dict[str, str]:
    """``{"conv": ..., "transposed": ...}``: one character per configuration (see module doc).

    The same for every figure, so computed once per process.
    """
    tables = {}
    for mode in ORDER:
        transposed = mode == "transposed"
        chars = []
        for config in _configs(mode):
            size = _size(config, transposed)
            if size is not None:
                chars.append(encode(size=size))
            else:
                chars.append(encode(reason=_reason(config, transposed)))
        tables[mode] = "".join(chars)
    return tables


def table_index(config: dict[str, int], mode: str) -> int:
    """Position of ``config`` in the table of ``mode`` (nested loops over ORDER[mode])."""
    index = 0
    for name in ORDER[mode]:
        low, high = RANGES[name]
        index = index * (high - low + 1) + (config[name] - low)
    return index


class ConvArithmetic(StaticFallback):
    """Interactive figure: output size of a convolution for any W, k, s, p, d.

    Controls: input size W (1-12), kernel k (1-7), stride s (1-4), padding p (0-4),
    dilation d (1-3), a transposed-convolution switch and, when transposed, output_padding
    (0-3). The figure shows the (padded) input with the kernel's taps, stepping through the
    positions it visits (dilation gaps visible), the output grid, and the formula with the
    numbers substituted. Configurations without an output are explained in words and the
    output grid is hidden. The arguments give the first configuration shown (it may be one
    without output). Square inputs and kernels: every size is the same along H and W.

    Show it by making it the last expression of a cell (a bundle of the HTML and a PNG of
    its first state, see ``_html.StaticFallback``), or embed
    ``to_html()`` anywhere HTML is accepted.
    """

    def __init__(
        self,
        input_size: int = 5,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        transposed: bool = False,
        output_padding: int = 0,
        title: str | None = None,
    ) -> None:
        given = {
            "input": ("input_size", input_size),
            "kernel": ("kernel_size", kernel_size),
            "stride": ("stride", stride),
            "padding": ("padding", padding),
            "dilation": ("dilation", dilation),
            "output_padding": ("output_padding", output_padding),
        }
        self.config: dict[str, int] = {}
        for key, (arg, value) in given.items():
            low, high = RANGES[key]
            value = check_int(arg, value, minimum=low)
            if value > high:
                raise ValueError(f"{arg} must be <= {high} in this figure, got {value}")
            self.config[key] = value
        if not isinstance(transposed, bool):
            raise TypeError(f"transposed must be a bool, got {type(transposed).__name__}")
        if not transposed and self.config["output_padding"] != 0:
            raise ValueError("output_padding applies only when transposed=True")
        self.transposed = transposed
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.title = title or "Convolution arithmetic: how big is the output?"
        self.data = {
            "title": self.title,
            "ranges": {name: list(r) for name, r in RANGES.items()},
            "order": {mode: list(names) for mode, names in ORDER.items()},
            "sizes": dict(size_tables()),
            "code_offset": CODE_OFFSET,
            "reasons": {str(code): text for code, text in REASONS.items()},
            "initial": {**self.config, "transposed": transposed},
        }

    def _lookup(self, overrides: dict[str, object]) -> tuple[int | None, int | None]:
        """(size, reason code) of the current configuration with ``overrides`` applied."""
        transposed = overrides.pop("transposed", self.transposed)
        config = {**self.config, **overrides}
        mode = "transposed" if transposed else "conv"
        code = ord(self.data["sizes"][mode][table_index(config, mode)]) - CODE_OFFSET
        return (code, None) if code >= 1 else (None, -code)

    def output_size(self, **overrides: int) -> int | None:
        """Output size the figure shows (None: no output), e.g. ``output_size(stride=2)``.

        Keyword names are those of RANGES plus ``transposed``; values must be in range.
        """
        return self._lookup(self._check_overrides(overrides))[0]

    def invalid_reason(self, **overrides: int) -> str | None:
        """The figure's words for why there is no output (template, see REASONS), or None."""
        reason = self._lookup(self._check_overrides(overrides))[1]
        return None if reason is None else REASONS[reason]

    @staticmethod
    def _check_overrides(overrides: dict[str, object]) -> dict[str, object]:
        for name, value in overrides.items():
            if name == "transposed":
                if not isinstance(value, bool):
                    raise TypeError(f"transposed must be a bool, got {type(value).__name__}")
                continue
            if name not in RANGES:
                raise ValueError(f"unknown control {name!r}; use one of {sorted(RANGES)}")
            low, high = RANGES[name]
            check_int(name, value, minimum=low)
            if value > high:
                raise ValueError(f"{name} must be <= {high} in this figure, got {value}")
        return dict(overrides)

    def to_html(self) -> str:
        """The figure as one self-contained HTML string (inline style, script and data)."""
        return render_widget(
            widget="conv-arithmetic",
            data=self.data,
            label=(
                f"{self.title}. Interactive figure: change input size, kernel, stride, "
                "padding and dilation and see the output size."
            ),
            js_file="conv_arithmetic.js",
            css_file="conv_arithmetic.css",
            entry="mountConvArithmetic",
            static_png=self.static_png(),
        )

    def _static_figure(self) -> Figure:
        """The first configuration, kernel at its first position (or why there is no output)."""
        size, reason = self._lookup({})
        template = None if reason is None else REASONS[reason]
        return conv_arithmetic_figure(self.config, self.transposed, size, template, self.title)

    def __repr__(self) -> str:
        c = self.config
        extra = (
            f", transposed=True, output_padding={c['output_padding']}" if self.transposed else ""
        )
        return (
            f"ConvArithmetic(input_size={c['input']}, kernel_size={c['kernel']}, "
            f"stride={c['stride']}, padding={c['padding']}, dilation={c['dilation']}{extra})"
        )

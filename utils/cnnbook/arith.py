"""Arithmetic of convolutional networks: output sizes, parameters, FLOPs, receptive fields.

Two levels, the second built on the first:

- one-line formulas (``conv_output_size``, ``conv_params``, ``conv_flops``, ...), the
  equations of the chapter, for one axis or one layer;
- ``analyze(specs, input_shape)`` walks a list of layer specs (``Conv``, ``Pool``,
  ``ConvTranspose``) and reports shape, parameters, FLOPs and receptive field after each.

The same walk over a real ``torch.nn.Module`` is ``cnnbook.module_analysis``; the report
rows and their tables (``format_table``, ``stage_summary``) are ``cnnbook.layer_table``.

Conventions
- FLOPs are per sample; one multiply-add counts as 2 FLOPs and bias additions are ignored,
  the convention of ``torch.utils.flop_counter.FlopCounterMode``.
- Receptive field along one axis: each layer output carries three numbers, ``rf`` (how many
  input pixels one output unit spans), ``jump`` (the distance in input pixels between two
  neighbouring output units) and ``start`` (the input coordinate of the centre of the first
  output unit's field; input pixel ``i`` sits at coordinate ``i``, so unit ``i`` is centred
  at ``start + i * jump``). A layer with window ``k_eff = dilation * (k - 1) + 1``, stride
  ``s`` and padding ``p`` updates them as::

      rf_out = rf + (k_eff - 1) * jump
      jump_out = jump * s
      start_out = start + ((k_eff - 1) / 2 - p) * jump

  ``rf`` is the extent of the field. The pixels that actually reach a unit can have holes
  (dilation, or a stride larger than the next kernel); their first and last lie exactly
  ``rf - 1`` apart.
- Pooling layers step the recurrence like convolutions (kernel, stride, padding). A
  transposed convolution with stride ``s`` is a stride-1 convolution over its input with
  ``s - 1`` zeros inserted between pixels: it refines the grid, so ``jump_out = jump / s``,
  ``rf_out = rf + (k_eff - 1) * jump / s`` and ``start_out = start + (p - (k_eff - 1) / 2)
  * jump / s``. After one, ``rf`` and ``jump`` may be fractions of a pixel: every pixel
  that reaches a unit lies within the ``rf`` span, but how many do depends on the unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from cnnbook._checks import check_bool, check_choice, check_chw, check_int, check_pair
from cnnbook.layer_table import LayerReport, RFValue, _public

__all__ = [
    "Conv",
    "ConvTranspose",
    "Pool",
    "analyze",
    "conv_flops",
    "conv_output_size",
    "conv_params",
    "conv_transpose_output_size",
    "effective_kernel_size",
    "linear_flops",
    "linear_params",
    "pool_output_size",
    "receptive_field",
]

IntOrPair = int | tuple[int, int]

# ----------------------------------------------------------------------------- output sizes


def _conv_length(size: int, k: int, stride: int, padding: int, dilation: int, name: str) -> int:
    """Output length along one axis; ValueError naming ``name`` if the kernel does not fit."""
    span = dilation * (k - 1) + 1  # extent of the dilated kernel
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(
            f"{name}: kernel of size {k} (dilation {dilation}, span {span}) is larger than "
            f"the padded input of size {padded} (input {size} + 2 * padding {padding})"
        )
    return (padded - span) // stride + 1


def _pool_length(
    size: int, k: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a pooling layer along one axis, PyTorch's rule."""
    span = dilation * (k - 1) + 1
    room = size + 2 * padding - span
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # ceil_mode may add a last, partial window, but not one starting in the padding
    if out < 1:
        raise ValueError(
            f"kernel_size: window of size {k} (dilation {dilation}, span {span}) does not fit "
            f"in the padded input of size {size + 2 * padding} (input {size} + 2 * padding "
            f"{padding}); the output would have size {out}"
        )
    return out


def _transpose_length(
    size: int, k: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    """Output length of a transposed convolution along one axis."""
    out = (size - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    if out < 1:
        raise ValueError(
            f"padding: padding {padding} crops more than the transposed convolution produces "
            f"(output size would be {out})"
        )
    return out


def _check_pool_padding(padding: tuple[int, int], kernel: tuple[int, int]) -> None:
    for p, k in zip(padding, kernel, strict=True):
        if 2 * p > k:  # PyTorch's rule: no window may lie entirely in the padding
            raise ValueError(f"padding must be at most kernel_size / 2 = {k / 2:g}, got {p}")


def _check_output_padding(output_padding: int, stride: int, dilation: int) -> None:
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding must be smaller than stride ({stride}) or dilation ({dilation}), "
            f"got {output_padding}"
        )


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Length of a convolution output along one axis.

    ``floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``.
    Raises ValueError (naming ``kernel_size``) when the dilated kernel does not fit in the
    padded input, i.e. when the result would be < 1.
    """
    size = check_int("size", size, minimum=0)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    dilation = check_int("dilation", dilation, minimum=1)
    return _conv_length(size, kernel_size, stride, padding, dilation, "kernel_size")


def pool_output_size(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Length of a max/avg pooling output along one axis (``stride`` defaults to the kernel).

    Same formula as a convolution; with ``ceil_mode`` the division rounds up, so a last
    partial window is kept, unless it would start in the right padding. As in PyTorch,
    ``padding`` may be at most ``kernel_size / 2``.
    """
    size = check_int("size", size, minimum=1)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    stride = kernel_size if stride is None else check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    dilation = check_int("dilation", dilation, minimum=1)
    ceil_mode = check_bool("ceil_mode", ceil_mode)
    _check_pool_padding((padding,), (kernel_size,))
    return _pool_length(size, kernel_size, stride, padding, dilation, ceil_mode)


def conv_transpose_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Length of a transposed-convolution output along one axis.

    ``(size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1``:
    the inverse of ``conv_output_size``; ``output_padding`` (smaller than ``stride`` or
    ``dilation``) picks one of the input sizes that a strided convolution maps to ``size``.
    """
    size = check_int("size", size, minimum=1)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    output_padding = check_int("output_padding", output_padding, minimum=0)
    dilation = check_int("dilation", dilation, minimum=1)
    _check_output_padding(output_padding, stride, dilation)
    return _transpose_length(size, kernel_size, stride, padding, output_padding, dilation)


def effective_kernel_size(kernel_size: int, dilation: int) -> int:
    """Span of a dilated kernel: ``dilation * (kernel_size - 1) + 1``."""
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    dilation = check_int("dilation", dilation, minimum=1)
    return dilation * (kernel_size - 1) + 1


# ----------------------------------------------------------------------------- params, FLOPs


def _check_groups(groups: object, C_in: int, C_out: int) -> int:
    groups = check_int("groups", groups, minimum=1)
    if C_in % groups or C_out % groups:
        raise ValueError(
            f"groups must divide both C_in={C_in} and C_out={C_out}, got groups={groups}"
        )
    return groups


def conv_params(
    C_in: int, C_out: int, kernel_size: IntOrPair, groups: int = 1, bias: bool = True
) -> int:
    """Learnable numbers of a conv layer: ``C_out * (C_in / groups) * k_h * k_w (+ C_out)``.

    Also right for a transposed convolution (its weight is ``(C_in, C_out / groups, k_h, k_w)``).
    """
    C_in = check_int("C_in", C_in, minimum=1)
    C_out = check_int("C_out", C_out, minimum=1)
    k_h, k_w = check_pair("kernel_size", kernel_size, minimum=1)
    groups = _check_groups(groups, C_in, C_out)
    bias = check_bool("bias", bias)
    return C_out * (C_in // groups) * k_h * k_w + (C_out if bias else 0)


def linear_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Learnable numbers of a fully connected layer: ``n_in * n_out (+ n_out)``."""
    n_in = check_int("n_in", n_in, minimum=1)
    n_out = check_int("n_out", n_out, minimum=1)
    bias = check_bool("bias", bias)
    return n_in * n_out + (n_out if bias else 0)


def conv_flops(
    C_in: int, C_out: int, kernel_size: IntOrPair, H_out: int, W_out: int, groups: int = 1
) -> int:
    """FLOPs of a conv layer per sample: ``2 * H_out * W_out * k_h * k_w * C_in / groups * C_out``.

    Each output value is a dot product of length ``k_h * k_w * C_in / groups``: that many
    multiply-adds, 2 FLOPs each. Bias additions are not counted.
    """
    C_in = check_int("C_in", C_in, minimum=1)
    C_out = check_int("C_out", C_out, minimum=1)
    k_h, k_w = check_pair("kernel_size", kernel_size, minimum=1)
    H_out = check_int("H_out", H_out, minimum=1)
    W_out = check_int("W_out", W_out, minimum=1)
    groups = _check_groups(groups, C_in, C_out)
    return 2 * H_out * W_out * k_h * k_w * (C_in // groups) * C_out


def linear_flops(n_in: int, n_out: int) -> int:
    """FLOPs of a fully connected layer per sample: ``2 * n_in * n_out`` (bias not counted)."""
    n_in = check_int("n_in", n_in, minimum=1)
    n_out = check_int("n_out", n_out, minimum=1)
    return 2 * n_in * n_out


# ----------------------------------------------------------------------------- receptive field


class _Axis(NamedTuple):
    """Receptive field of one layer output along one axis, exact (Fractions)."""

    rf: Fraction
    jump: Fraction
    start: Fraction


class _Window(NamedTuple):
    """A layer's sliding window along one axis, as the recurrence sees it."""

    k_eff: int
    stride: int
    padding: int
    transposed: bool = False


_INPUT = _Axis(Fraction(1), Fraction(1), Fraction(0))  # a pixel sees itself


def _step(axis: _Axis, w: _Window) -> _Axis:
    """Receptive field after one more layer (the recurrence in the module docstring)."""
    if not w.transposed:
        return _Axis(
            axis.rf + (w.k_eff - 1) * axis.jump,
            axis.jump * w.stride,
            axis.start + (Fraction(w.k_eff - 1, 2) - w.padding) * axis.jump,
        )
    # A transposed conv is a stride-1 conv over its input with (stride - 1) zeros inserted
    # between pixels: its output grid is `stride` times finer, so the jump divides by the
    # stride and the window spans (k_eff - 1) / stride input steps. rf is then the extent of
    # that span (it may be fractional); how many real pixels fall in it depends on the unit.
    jump = axis.jump / w.stride
    return _Axis(
        axis.rf + (w.k_eff - 1) * jump,
        jump,
        axis.start + (w.padding - Fraction(w.k_eff - 1, 2)) * jump,
    )


# ----------------------------------------------------------------------------- layer specs


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution, as ``torch.nn.Conv2d`` (input channels come from the layer before)."""

    out_channels: int
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: IntOrPair = 0
    dilation: IntOrPair = 1
    groups: int = 1
    bias: bool = True


@dataclass(frozen=True)
class Pool:
    """Max or average pooling (``mode="max"`` or ``"avg"``); ``stride`` defaults to the kernel."""

    kernel_size: IntOrPair
    stride: IntOrPair | None = None
    padding: IntOrPair = 0
    mode: str = "max"
    ceil_mode: bool = False


@dataclass(frozen=True)
class ConvTranspose:
    """A 2-D transposed convolution, as ``torch.nn.ConvTranspose2d``."""

    out_channels: int
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: IntOrPair = 0
    output_padding: IntOrPair = 0
    dilation: IntOrPair = 1
    groups: int = 1
    bias: bool = True


Spec = Conv | Pool | ConvTranspose


class _Geom(NamedTuple):
    """Validated (height, width) pairs of a spec."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]


def _check_spec(spec: Spec) -> _Geom:
    """Validate the arguments of one spec; errors name the argument."""
    if isinstance(spec, Pool):
        kernel = check_pair("kernel_size", spec.kernel_size, minimum=1)
        stride = kernel if spec.stride is None else check_pair("stride", spec.stride, minimum=1)
        padding = check_pair("padding", spec.padding, minimum=0)
        check_choice("mode", spec.mode, ("max", "avg"))
        check_bool("ceil_mode", spec.ceil_mode)
        _check_pool_padding(padding, kernel)
        return _Geom(kernel, stride, padding, (1, 1))
    check_int("out_channels", spec.out_channels, minimum=1)
    geom = _Geom(
        check_pair("kernel_size", spec.kernel_size, minimum=1),
        check_pair("stride", spec.stride, minimum=1),
        check_pair("padding", spec.padding, minimum=0),
        check_pair("dilation", spec.dilation, minimum=1),
    )
    check_int("groups", spec.groups, minimum=1)
    check_bool("bias", spec.bias)
    if isinstance(spec, ConvTranspose):
        output_padding = check_pair("output_padding", spec.output_padding, minimum=0)
        for op, s, d in zip(output_padding, geom.stride, geom.dilation, strict=True):
            _check_output_padding(op, s, d)
    return geom


def _spec_windows(spec: Spec, geom: _Geom) -> tuple[_Window, _Window]:
    transposed = isinstance(spec, ConvTranspose)
    h, w = (
        _Window(d * (k - 1) + 1, s, p, transposed)
        for k, s, p, d in zip(geom.kernel, geom.stride, geom.padding, geom.dilation, strict=True)
    )
    return h, w


def _spec_shape(
    spec: Spec, geom: _Geom, in_shape: tuple[int, int, int]
) -> tuple[tuple[int, int, int], int, int]:
    """(out_shape, params, flops) of one spec applied to ``in_shape = (C, H, W)``."""
    C_in, H, W = in_shape
    pairs = list(zip((H, W), geom.kernel, geom.stride, geom.padding, geom.dilation, strict=True))
    if isinstance(spec, Pool):
        H_out, W_out = (_pool_length(n, k, s, p, d, spec.ceil_mode) for n, k, s, p, d in pairs)
        return (C_in, H_out, W_out), 0, 0
    C_out = spec.out_channels
    groups = _check_groups(spec.groups, C_in, C_out)
    params = C_out * (C_in // groups) * geom.kernel[0] * geom.kernel[1]
    params += C_out if spec.bias else 0
    if isinstance(spec, Conv):
        H_out, W_out = (_conv_length(n, k, s, p, d, "kernel_size") for n, k, s, p, d in pairs)
        flops = 2 * H_out * W_out * geom.kernel[0] * geom.kernel[1] * (C_in // groups) * C_out
        return (C_out, H_out, W_out), params, flops
    output_padding = check_pair("output_padding", spec.output_padding)
    H_out, W_out = (
        _transpose_length(n, k, s, p, op, d)
        for (n, k, s, p, d), op in zip(pairs, output_padding, strict=True)
    )
    # every input value is scattered through the whole kernel into C_out / groups channels
    flops = 2 * H * W * geom.kernel[0] * geom.kernel[1] * C_in * (C_out // groups)
    return (C_out, H_out, W_out), params, flops


def _layer_error(index: int, spec: object, err: Exception) -> Exception:
    """The same error with the layer named: ``layer 2 (Conv): stride must be >= 1, got 0``."""
    return type(err)(f"layer {index} ({type(spec).__name__}): {err}")


def _check_specs(specs: object) -> list[Spec]:
    if not isinstance(specs, (list, tuple)):
        raise TypeError(f"specs must be a list of layer specs, got {type(specs).__name__}")
    for i, spec in enumerate(specs):
        if not isinstance(spec, (Conv, Pool, ConvTranspose)):
            raise TypeError(
                f"specs[{i}] must be a Conv, Pool or ConvTranspose, got {type(spec).__name__}"
            )
    return list(specs)


def analyze(specs: Sequence[Spec], input_shape: tuple[int, int, int]) -> list[LayerReport]:
    """Shape, parameters, FLOPs and receptive field after each layer of a stack.

    specs: list of ``Conv``, ``Pool``, ``ConvTranspose``; input_shape: (C, H, W).
    Returns one ``LayerReport`` per spec, named ``conv1``, ``conv2``, ``pool1``, ...
    Raises ValueError/TypeError naming the layer (index into ``specs``), its kind and the
    argument, e.g. ``layer 2 (Conv): stride must be >= 1, got 0``, for bad arguments, a
    kernel larger than the padded input, or an output size below 1.

    After a ``ConvTranspose`` the jump is divided by its stride, so ``jump`` and ``rf`` may
    be fractions of an input pixel (see the module docstring).
    """
    specs = _check_specs(specs)
    shape = check_chw("input_shape", input_shape)
    axes = (_INPUT, _INPUT)
    counts: dict[str, int] = {}
    reports = []
    for i, spec in enumerate(specs):
        try:
            geom = _check_spec(spec)
            shape, params, flops = _spec_shape(spec, geom, shape)
        except (TypeError, ValueError) as err:
            raise _layer_error(i, spec, err) from None
        axes = tuple(_step(a, w) for a, w in zip(axes, _spec_windows(spec, geom), strict=True))
        kind = type(spec).__name__
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind.lower()}{counts[kind]}"
        reports.append(LayerReport(name, kind, shape, params, flops, *_public(axes)))
    return reports


def receptive_field(specs: Sequence[Spec]) -> tuple[RFValue, RFValue, RFValue]:
    """(rf, jump, start) of the output of a whole stack of specs, independent of input size.

    ``rf = 1 + sum_l (k_eff_l - 1) * jump_l`` where ``jump_l`` is the product of the strides
    before layer ``l``; an empty stack gives ``(1, 1, 0.0)``.
    """
    specs = _check_specs(specs)
    axes = (_INPUT, _INPUT)
    for i, spec in enumerate(specs):
        try:
            geom = _check_spec(spec)
        except (TypeError, ValueError) as err:
            raise _layer_error(i, spec, err) from None
        axes = tuple(_step(a, w) for a, w in zip(axes, _spec_windows(spec, geom), strict=True))
    return _public(axes)

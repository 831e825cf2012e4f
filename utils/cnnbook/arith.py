"""Arithmetic of convolutional networks: output sizes, parameters, FLOPs, receptive fields.

Three levels, each built on the one before:

- one-line formulas (``conv_output_size``, ``conv_params``, ``conv_flops``, ...), the
  equations of the chapter, for one axis or one layer;
- ``analyze(specs, input_shape)`` walks a list of layer specs (``Conv``, ``Pool``,
  ``ConvTranspose``) and reports shape, parameters, FLOPs and receptive field after each;
- ``analyze_module(model, input_shape)`` does the same for a real ``torch.nn.Module``: it
  traces the model with ``torch.fx``, runs one forward pass for the shapes, and follows
  branches (residual additions, concatenations).

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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple

from cnnbook._checks import check_choice, check_int, check_pair

if TYPE_CHECKING:  # torch is imported only by the functions that need it
    import torch

__all__ = [
    "Conv",
    "ConvTranspose",
    "LayerReport",
    "ModuleReport",
    "Pool",
    "analyze",
    "analyze_module",
    "conv_flops",
    "conv_output_size",
    "conv_params",
    "conv_transpose_output_size",
    "count_params",
    "effective_kernel_size",
    "format_table",
    "linear_flops",
    "linear_params",
    "pool_output_size",
    "receptive_field",
    "stage_summary",
]

IntOrPair = int | tuple[int, int]
# one number when height and width agree, else a (height, width) pair; None where the
# receptive-field recurrence does not describe the layer (see analyze_module)
RFValue = int | float | tuple[int | float, int | float] | None


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


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


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
    ceil_mode = _check_bool("ceil_mode", ceil_mode)
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
    bias = _check_bool("bias", bias)
    return C_out * (C_in // groups) * k_h * k_w + (C_out if bias else 0)


def linear_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Learnable numbers of a fully connected layer: ``n_in * n_out (+ n_out)``."""
    n_in = check_int("n_in", n_in, minimum=1)
    n_out = check_int("n_out", n_out, minimum=1)
    bias = _check_bool("bias", bias)
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


def _plain(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


def _collapse(h: int | float, w: int | float) -> int | float | tuple[int | float, int | float]:
    return h if h == w else (h, w)


def _public(axes: tuple[_Axis, _Axis] | None) -> tuple[RFValue, RFValue, RFValue]:
    """(rf, jump, start) as reported: ints where exact, start as float, None if unknown."""
    if axes is None:
        return None, None, None
    h, w = axes
    return (
        _collapse(_plain(h.rf), _plain(w.rf)),
        _collapse(_plain(h.jump), _plain(w.jump)),
        _collapse(float(h.start), float(w.start)),
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
        _check_bool("ceil_mode", spec.ceil_mode)
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
    _check_bool("bias", spec.bias)
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


@dataclass(frozen=True)
class LayerReport:
    """What ``analyze`` knows after one layer: ``out_shape = (C, H, W)``, per-sample FLOPs,
    and the receptive field (``rf``, ``jump``, ``start``, in input pixels)."""

    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    flops: int
    rf: RFValue
    jump: RFValue
    start: RFValue

    @property
    def spatial(self) -> tuple[int, int]:
        """(H, W) of the output."""
        return self.out_shape[1], self.out_shape[2]


def _check_chw(name: str, value: object) -> tuple[int, int, int]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple (C, H, W), got {type(value).__name__}")
    if len(value) != 3:
        raise ValueError(f"{name} must be a tuple (C, H, W) of 3 ints, got {value!r}")
    C, H, W = (check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(value))
    return C, H, W


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
    shape = _check_chw("input_shape", input_shape)
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


# ----------------------------------------------------------------------------- real modules


@dataclass(frozen=True)
class ModuleReport:
    """What ``analyze_module`` knows after one module call or one merge of branches.

    name: module path (``layer1.0.conv1``; ``#2`` for a module's second call) or the traced
    node (``add_3``); kind: module class or function name; out_shape: without the batch
    axis; params: parameters first used here; flops: per sample (conv, linear); rf, jump,
    start: receptive field (None where undefined); spatial: (H, W) of the output, or None.
    """

    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    flops: int
    rf: RFValue
    jump: RFValue
    start: RFValue
    spatial: tuple[int, int] | None


class _Spatial(NamedTuple):
    """Receptive field of a traced tensor and the positions of its H and W axes."""

    axes: tuple[_Axis, _Axis]
    dims: tuple[int, int]


def count_params(model: torch.nn.Module) -> int:
    """Number of learnable numbers: ``sum(p.numel() for p in model.parameters())``."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def _check_input_shape(value: object) -> tuple[int, ...]:
    """(C, H, W) or (N, C, H, W) -> (N, C, H, W)."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple (C, H, W), got {type(value).__name__}")
    if len(value) not in (3, 4):
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W), got {value!r}")
    dims = tuple(check_int(f"input_shape[{i}]", v, minimum=1) for i, v in enumerate(value))
    return dims if len(dims) == 4 else (1, *dims)


def _trace(model: torch.nn.Module) -> torch.fx.GraphModule:
    import torch

    # a lone layer is a leaf to the tracer, which would trace through its forward instead
    root = model if list(model.children()) else torch.nn.Sequential(model)
    try:
        return torch.fx.symbolic_trace(root)
    except Exception as err:  # any tracing failure means the same to the caller
        raise RuntimeError(
            f"analyze_module could not trace {type(model).__name__} with torch.fx "
            f"(data-dependent Python control flow?): {err}"
        ) from err


def _output_shapes(gm: torch.fx.GraphModule, shape: tuple[int, ...]) -> dict:
    """Run one forward pass on zeros and keep only the shape of every node's output.

    First on the "meta" device (shapes without arithmetic: instant, no memory), with the
    model's parameters swapped for meta copies; if some operation has no meta version,
    again for real on the model's device.
    """
    import torch

    shapes = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            shapes[node] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            return out

    class Run(torch.nn.Module):  # functional_call needs a module around the interpreter
        def __init__(self):
            super().__init__()
            self.gm = gm

        def forward(self, x):
            return Recorder(self.gm).run(x)

    run = Run()
    tensors = {**dict(run.named_parameters()), **dict(run.named_buffers())}
    first = next(iter(tensors.values()), torch.zeros(()))
    modes = [m.training for m in gm.modules()]
    gm.eval()  # batch norm with batch 1 and a 1x1 map would refuse to train
    try:
        with torch.no_grad():
            try:
                meta = {name: t.to("meta") for name, t in tensors.items()}
                x = torch.zeros(shape, dtype=first.dtype, device="meta")
                torch.func.functional_call(run, meta, (x,))
            except (NotImplementedError, RuntimeError):
                shapes.clear()
                run(torch.zeros(shape, dtype=first.dtype, device=first.device))
    finally:
        for m, mode in zip(gm.modules(), modes, strict=True):
            m.training = mode
    return shapes


def _module_window(module: torch.nn.Module) -> tuple[_Window, _Window] | None:
    """The sliding window of a conv or pooling module, None for other modules."""
    from torch import nn
    from torch.nn.modules.utils import _pair

    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        k, s, d, p = module.kernel_size, module.stride, module.dilation, module.padding
        if isinstance(p, str):  # "valid" or "same"; torch puts the odd pixel of "same" right
            p = tuple(
                (di * (ki - 1)) // 2 if p == "same" else 0 for ki, di in zip(k, d, strict=True)
            )
        transposed = isinstance(module, nn.ConvTranspose2d)
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k, p = _pair(module.kernel_size), _pair(module.padding)
        s = k if module.stride is None else _pair(module.stride)
        d, transposed = _pair(getattr(module, "dilation", 1)), False
    else:
        return None
    h, w = (
        _Window(di * (ki - 1) + 1, si, pi, transposed)
        for ki, si, pi, di in zip(k, s, p, d, strict=True)
    )
    return h, w


def _adaptive_window(in_hw: Sequence[int], out_hw: Sequence[int]) -> tuple | None:
    """The fixed window of an adaptive pooling, or None when it has none.

    Adaptive pooling is a fixed window only when the output size divides the input size.
    Global pooling (output 1 x 1) is left out too: its one unit sees the whole input, and
    the recurrence would report a window that runs far past the image.
    """
    if any(n % m or (m == 1 and n > 1) for n, m in zip(in_hw, out_hw, strict=True)):
        return None
    h, w = (_Window(n // m, n // m, 0) for n, m in zip(in_hw, out_hw, strict=True))
    return h, w


def _is_adaptive(node: torch.fx.Node, gm: torch.fx.GraphModule) -> bool:
    from torch import nn

    if node.op == "call_module":
        return isinstance(
            gm.get_submodule(node.target), (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
        )
    name = getattr(node.target, "__name__", "")
    return node.op == "call_function" and name in ("adaptive_avg_pool2d", "adaptive_max_pool2d")


def _permuted(node: torch.fx.Node, dims: tuple[int, int], ndim: int) -> tuple[int, int] | None:
    """New positions of the H and W axes after a permute node, None if it is not one."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if name != "permute":
        return None
    order = node.kwargs.get("dims", node.args[1:])
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = order[0]
    order = [int(a) % ndim for a in order]
    return order.index(dims[0]), order.index(dims[1])


def _spatial_state(node, gm, shapes, states) -> _Spatial | None:
    """Receptive field of one traced node's output, from those of its inputs."""
    import torch

    out = shapes.get(node)
    if node.op == "placeholder":
        return _Spatial((_INPUT, _INPUT), (2, 3)) if out and len(out) == 4 else None
    if node.op not in ("call_module", "call_function", "call_method") or out is None:
        return None
    first = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
    window = None
    if node.op == "call_module":
        window = _module_window(gm.get_submodule(node.target))
    if window is None and _is_adaptive(node, gm) and first in shapes and len(out) == 4:
        window = _adaptive_window(shapes[first][2:], out[2:])
        if window is None:  # global, or windows of varying size: no single recurrence step
            return None
    if window is not None:
        state = states.get(first)
        if state is None or state.dims != (2, 3) or len(out) != 4:
            return None
        axes = tuple(_step(a, w) for a, w in zip(state.axes, window, strict=True))
        return _Spatial(axes, (2, 3))
    # Any other operation is assumed not to mix spatial positions (activations, norms,
    # channel-wise linear layers, additions, concatenations along channels). It keeps the
    # field of the inputs whose H and W survive unchanged in the output; at a merge of
    # branches the largest field wins, with its jump and start. Inputs broadcast from a
    # 1x1 map (squeeze-and-excitation gates) do not match and are left out, so rf stays
    # the convolutional window. An output without those axes (flatten, global mean) gets None.
    candidates = []
    for arg in node.all_input_nodes:
        state = states.get(arg)
        if state is None:
            continue
        dims = _permuted(node, state.dims, len(shapes[arg])) or state.dims
        sizes = [shapes[arg][d] for d in state.dims]
        if max(dims) < len(out) and [out[d] for d in dims] == sizes:
            candidates.append(_Spatial(state.axes, dims))
    if not candidates:
        return None
    axes = tuple(max((c.axes[i] for c in candidates), key=lambda a: a.rf) for i in (0, 1))
    return _Spatial(axes, candidates[0].dims)


def _node_flops(node, module, shapes) -> int:
    """Per-sample FLOPs of a conv or linear module call; 0 for everything else."""
    from torch import nn

    out = shapes[node]
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        per_pixel = 2 * k[0] * k[1] * (module.in_channels // module.groups) * module.out_channels
        return per_pixel * out[2] * out[3]
    if isinstance(module, nn.ConvTranspose2d):
        in_hw = shapes[node.args[0]][2:]
        k = module.kernel_size
        per_pixel = 2 * k[0] * k[1] * module.in_channels * (module.out_channels // module.groups)
        return per_pixel * in_hw[0] * in_hw[1]
    if isinstance(module, nn.Linear):
        rows = math.prod(out[1:-1])  # a linear layer on (N, H, W, C) runs once per position
        return linear_flops(module.in_features, module.out_features) * rows
    return 0


def analyze_module(model: torch.nn.Module, input_shape: Sequence[int]) -> list[ModuleReport]:
    """Walk a real network layer by layer: output shape, parameters, FLOPs, receptive field.

    model: any ``torch.nn.Module`` that ``torch.fx.symbolic_trace`` can trace (nn.Sequential,
    torchvision VGG, ResNet, MobileNet, EfficientNet, ConvNeXt, ...); input_shape: (C, H, W)
    or (N, C, H, W), NCHW. Shapes come from one forward pass on zeros, in eval mode and
    without gradients, on the "meta" device when every operation supports it, else on the
    model's device (training modes are restored afterwards).

    One report per module call, in execution order, plus one per function that merges
    branches (``add``, ``cat``, ``mul``) or uses parameters of its own (ConvNeXt's layer
    scale); their ``params`` sum to the parameters the forward pass uses. FLOPs count
    Conv2d, ConvTranspose2d and Linear (a multiply-add is 2 FLOPs, as FlopCounterMode).

    Receptive field: Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, and adaptive pooling
    whose output size divides its input size step the recurrence; other operations keep
    the field of their inputs, and at merges the largest field wins. ``rf`` is None after
    global pooling (its unit sees the whole image), once the spatial axes are gone
    (flatten, classifier), after adaptive pooling with windows of varying size, and after
    any other operation that changes the spatial size (interpolation, for example).

    Note on ResNet-50: torchvision's model (v1.5) strides the 3x3 conv of each downsampling
    bottleneck and reaches rf = 427 after layer4, the usual published value. The original
    v1 design strides the first 1x1 conv instead; the 3x3 then sees twice the jump, and the
    same recurrence gives 483.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = _check_input_shape(input_shape)
    gm = _trace(model)
    shapes = _output_shapes(gm, shape)

    states: dict = {}
    seen: set[int] = set()  # parameters already reported (shared modules, second calls)
    calls: dict[str, int] = {}
    reports = []
    for node in gm.graph.nodes:
        states[node] = _spatial_state(node, gm, shapes, states)
        report = _node_report(node, gm, shapes, states[node], seen, calls)
        if report is not None:
            reports.append(report)
    return reports


def _new_params(tensors, seen: set[int]) -> int:
    """Elements of the parameters not counted before (and mark them counted)."""
    from torch import nn

    total = 0
    for t in tensors:
        if isinstance(t, nn.Parameter) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel()
    return total


def _node_report(node, gm, shapes, state, seen, calls) -> ModuleReport | None:
    """A report for a module call or a merge of branches; None for other nodes."""
    if node.op not in ("call_module", "call_function", "call_method"):
        return None
    out = shapes.get(node)  # None when the node does not return a tensor
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        calls[node.target] = calls.get(node.target, 0) + 1
        count = calls[node.target]
        name = node.target if count == 1 else f"{node.target}#{count}"
        kind, params = type(module).__name__, _new_params(module.parameters(), seen)
        flops = _node_flops(node, module, shapes) if out else 0
    else:
        attrs = [gm.get_parameter(a.target) for a in node.all_input_nodes if _is_param(a, gm)]
        tensors = [a for a in node.all_input_nodes if a.op != "get_attr" and shapes.get(a)]
        if out is None or (len(tensors) < 2 and not attrs):
            return None  # a reshape, an activation, a permute: nothing new to report
        name, params, flops = node.name, _new_params(attrs, seen), 0
        kind = node.target if node.op == "call_method" else node.target.__name__
    rf, jump, start = _public(state.axes if state else None)
    spatial = tuple(out[d] for d in state.dims) if state else None
    out_shape = out[1:] if out else ()
    return ModuleReport(name, kind, out_shape, params, flops, rf, jump, start, spatial)


def _is_param(node, gm) -> bool:
    from torch import nn

    if node.op != "get_attr":
        return False
    module_path, _, attr = node.target.rpartition(".")
    return isinstance(getattr(gm.get_submodule(module_path), attr, None), nn.Parameter)


# ----------------------------------------------------------------------------- summaries


def _check_reports(reports: object) -> list:
    if not isinstance(reports, (list, tuple)):
        raise TypeError(f"reports must be a list of reports, got {type(reports).__name__}")
    for i, r in enumerate(reports):
        if not isinstance(r, (LayerReport, ModuleReport)):
            raise TypeError(
                f"reports[{i}] must be a LayerReport or ModuleReport, got {type(r).__name__}"
            )
    return list(reports)


def _rf_size(rf: RFValue) -> float:
    return max(rf) if isinstance(rf, tuple) else rf


def stage_summary(reports: Sequence[LayerReport | ModuleReport]) -> list:
    """The report with the largest receptive field at each spatial resolution.

    One report per distinct (H, W), in order of first appearance; the first of equal
    fields wins (a conv rather than the ReLU after it). Reports without a receptive field
    are skipped. For VGG-16 at 224 x 224 this is conv1_2 (5), conv2_2 (14), conv3_3 (40),
    conv4_3 (92), conv5_3 (196) and pool5 (212).
    """
    best: dict[tuple[int, int], LayerReport | ModuleReport] = {}
    for r in _check_reports(reports):
        if r.rf is None or r.spatial is None:
            continue
        if r.spatial not in best or _rf_size(r.rf) > _rf_size(best[r.spatial].rf):
            best[r.spatial] = r
    return list(best.values())


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "(" + ", ".join(_cell(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_table(reports: Sequence[LayerReport | ModuleReport], *, totals: bool = True) -> str:
    """A markdown table of reports, aligned so it also reads as plain text.

    The last row sums params and FLOPs; pass ``totals=False`` for a selection of rows,
    such as ``stage_summary(reports)``, whose sums would mean nothing.
    """
    reports = _check_reports(reports)
    totals = _check_bool("totals", totals)
    header = ("layer", "kind", "output", "params", "FLOPs", "RF", "jump", "start")
    rows = [
        (
            r.name,
            r.kind,
            " x ".join(map(str, r.out_shape)),
            f"{r.params:,}",
            f"{r.flops:,}",
            _cell(r.rf),
            _cell(r.jump),
            _cell(r.start),
        )
        for r in reports
    ]
    if totals:
        sums = (f"{sum(r.params for r in reports):,}", f"{sum(r.flops for r in reports):,}")
        rows.append(("total", "", "", *sums, "", "", ""))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = [False, False, False, True, True, True, True, True]  # numbers align right

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if r else "-" * w for w, r in zip(widths, right, strict=True)]
    return "\n".join([line(header), line(rule), *(line(row) for row in rows)])

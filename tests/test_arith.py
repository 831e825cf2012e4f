"""Tests of cnnbook.arith against PyTorch: output sizes, parameters, FLOPs, receptive fields.

Receptive fields are checked against an independent brute force: the gradient of one
output unit with respect to the input is non-zero exactly on the pixels that reach it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnbook.arith import (
    Conv,
    ConvTranspose,
    Pool,
    analyze,
    conv_flops,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    effective_kernel_size,
    linear_flops,
    linear_params,
    pool_output_size,
    receptive_field,
)
from cnnbook.layer_table import ModuleReport
from cnnbook.module_analysis import analyze_module, count_params

MANY = settings(max_examples=300, deadline=None, database=None)
SOME = settings(max_examples=60, deadline=None, database=None)


def pair(value):
    """An rf/jump/start value as a (height, width) pair."""
    return value if isinstance(value, tuple) else (value, value)


# ----------------------------------------------------------------------------- output sizes


@MANY
@given(
    st.integers(1, 20), st.integers(1, 6), st.integers(1, 4), st.integers(0, 3), st.integers(1, 3)
)
def test_conv_output_size_matches_torch(size, k, stride, padding, dilation):
    x, w = torch.zeros(1, 1, size, 1), torch.zeros(1, 1, k, 1)
    try:
        ref = F.conv2d(x, w, stride=stride, padding=(padding, 0), dilation=dilation).shape[2]
    except RuntimeError:
        with pytest.raises(ValueError, match="kernel_size"):
            conv_output_size(size, k, stride, padding, dilation)
        return
    assert conv_output_size(size, k, stride, padding, dilation) == ref


@MANY
@given(
    st.integers(1, 20),
    st.integers(1, 6),
    st.none() | st.integers(1, 4),
    st.integers(0, 3),
    st.integers(1, 3),
    st.booleans(),
)
def test_pool_output_size_matches_torch(size, k, stride, padding, dilation, ceil_mode):
    x = torch.zeros(1, 1, size, 1)
    args = dict(stride=None if stride is None else (stride, 1), padding=(padding, 0))
    try:
        ref = F.max_pool2d(x, (k, 1), dilation=(dilation, 1), ceil_mode=ceil_mode, **args)
    except RuntimeError:
        with pytest.raises(ValueError, match="kernel_size|padding"):
            pool_output_size(size, k, stride, padding, dilation, ceil_mode)
        return
    assert pool_output_size(size, k, stride, padding, dilation, ceil_mode) == ref.shape[2]
    if dilation == 1:  # average pooling has no dilation; same sizes otherwise
        ref = F.avg_pool2d(x, (k, 1), ceil_mode=ceil_mode, **args)
        assert pool_output_size(size, k, stride, padding, 1, ceil_mode) == ref.shape[2]


@MANY
@given(
    st.integers(1, 12),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(0, 4),
    st.integers(0, 3),
    st.integers(1, 3),
)
def test_conv_transpose_output_size_matches_torch(size, k, stride, padding, out_pad, dilation):
    x, w = torch.zeros(1, 1, size, 1), torch.zeros(1, 1, k, 1)
    args = (size, k, stride, padding, out_pad, dilation)
    try:
        ref = F.conv_transpose2d(
            x,
            w,
            stride=(stride, 1),
            padding=(padding, 0),
            output_padding=(out_pad, 0),
            dilation=(dilation, 1),
        ).shape[2]
    except RuntimeError:
        with pytest.raises(ValueError, match="output_padding|padding"):
            conv_transpose_output_size(*args)
        return
    assert conv_transpose_output_size(*args) == ref


def test_transposed_output_size_inverts_conv_output_size():
    # a stride-2 conv maps 7 and 8 to 4; output_padding picks which one comes back
    assert conv_output_size(7, 3, 2, 1) == conv_output_size(8, 3, 2, 1) == 4
    assert conv_transpose_output_size(4, 3, 2, 1) == 7
    assert conv_transpose_output_size(4, 3, 2, 1, output_padding=1) == 8


def test_effective_kernel_size():
    assert [effective_kernel_size(3, d) for d in (1, 2, 4)] == [3, 5, 9]
    assert effective_kernel_size(1, 5) == 1


# ----------------------------------------------------------------------------- params, FLOPs


@SOME
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.tuples(st.integers(1, 5), st.integers(1, 5)),
    st.booleans(),
)
def test_conv_params_matches_torch(a, b, groups, kernel, bias):
    C_in, C_out = a * groups, b * groups
    layer = nn.Conv2d(C_in, C_out, kernel, groups=groups, bias=bias)
    assert conv_params(C_in, C_out, kernel, groups, bias) == count_params(layer)
    transposed = nn.ConvTranspose2d(C_in, C_out, kernel, groups=groups, bias=bias)
    assert conv_params(C_in, C_out, kernel, groups, bias) == count_params(transposed)


@pytest.mark.parametrize(
    ("C_in", "C_out", "k", "bias", "expected"),
    [(64, 128, 3, True, 73_856), (32, 64, 3, True, 18_496), (3, 64, 7, True, 9_472)]
    + [(3, 32, 3, True, 896), (3, 64, 7, False, 9_408)],
)
def test_conv_params_book_numbers(C_in, C_out, k, bias, expected):
    assert conv_params(C_in, C_out, k, bias=bias) == expected
    assert sum(p.numel() for p in nn.Conv2d(C_in, C_out, k, bias=bias).parameters()) == expected


def test_linear_params_and_flops():
    assert linear_params(4096, 1000) == count_params(nn.Linear(4096, 1000)) == 4_097_000
    assert linear_params(10, 3, bias=False) == 30
    assert linear_flops(4096, 1000) == 8_192_000


def flop_count(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


def test_conv_flops_book_example():
    # 3x3 conv, 32 -> 64 channels, "same" padding on a 64 x 64 map: 2 * 64*64 * 3*3 * 32 * 64
    assert conv_flops(32, 64, 3, 64, 64) == 150_994_944
    layer = nn.Conv2d(32, 64, 3, padding=1)
    assert flop_count(layer, torch.zeros(1, 32, 64, 64)) == 150_994_944


# ----------------------------------------------------------------------------- receptive field


def rfs(specs):
    return [r.rf for r in analyze(specs, (1, 64, 64))]


def test_three_stacked_3x3_convs_see_7x7():
    assert receptive_field([Conv(1, 3)] * 3) == (7, 1, 3.0)
    assert rfs([Conv(1, 3)] * 3) == [3, 5, 7]


def test_receptive_field_tables():
    # strides 1, 2, 2, 1 (jumps 1, 1, 2, 4 seen by each layer): 3, 5, 9, 17
    assert rfs([Conv(1, 3, s) for s in (1, 2, 2, 1)]) == [3, 5, 9, 17]
    # 3, 5, 9, 13 needs jumps 1, 1, 2, 2: strides 1, 2, 1, 1 ...
    assert rfs([Conv(1, 3, s) for s in (1, 2, 1, 1)]) == [3, 5, 9, 13]
    # ... or dilations 1, 1, 2, 2 at stride 1
    assert rfs([Conv(1, 3, dilation=d) for d in (1, 1, 2, 2)]) == [3, 5, 9, 13]
    # dilation doubles the growth of each layer: 3, 7, 15 (and no loss of resolution)
    reports = analyze([Conv(1, 3, dilation=d, padding=d) for d in (1, 2, 4)], (1, 64, 64))
    assert [r.rf for r in reports] == [3, 7, 15]
    assert reports[-1].out_shape == (1, 64, 64)


def test_start_and_pairs():
    # padding shifts the first unit's centre: 'same' padding keeps it at pixel 0
    assert receptive_field([Conv(1, 3, padding=1)] * 2) == (5, 1, 0.0)
    assert receptive_field([Conv(1, 2)]) == (2, 1, 0.5)
    rf, jump, start = receptive_field([Conv(1, (3, 5), stride=(1, 2))])
    assert (rf, jump, start) == ((3, 5), (1, 2), (1.0, 2.0))


def to_torch(spec, C_in: int) -> nn.Module:
    if isinstance(spec, Conv):
        return nn.Conv2d(
            C_in, spec.out_channels, spec.kernel_size, spec.stride, spec.padding,
            spec.dilation, spec.groups, spec.bias,
        )  # fmt: skip
    if isinstance(spec, ConvTranspose):
        return nn.ConvTranspose2d(
            C_in, spec.out_channels, spec.kernel_size, spec.stride, spec.padding,
            spec.output_padding, spec.groups, spec.bias, spec.dilation,
        )  # fmt: skip
    pool = nn.MaxPool2d if spec.mode == "max" else nn.AvgPool2d
    return pool(spec.kernel_size, spec.stride, spec.padding, ceil_mode=spec.ceil_mode)


def build(specs, C_in: int) -> nn.Sequential:
    layers = []
    for spec in specs:
        layers.append(to_torch(spec, C_in))
        C_in = getattr(spec, "out_channels", C_in)
    return nn.Sequential(*layers)


@st.composite
def axis_pairs(draw, low: int, high: int):
    return draw(st.integers(low, high)), draw(st.integers(low, high))


@st.composite
def stacks(draw, kinds=("conv", "pool"), channels=1, max_layers=4, pool_mode="avg"):
    """Random stacks of specs with per-axis kernels, strides, paddings, dilations."""
    specs = []
    for _ in range(draw(st.integers(1, max_layers))):
        kind = draw(st.sampled_from(kinds))
        k, s = draw(axis_pairs(1, 4)), draw(axis_pairs(1, 2))
        if kind == "conv":
            d, p = draw(axis_pairs(1, 3)), draw(axis_pairs(0, 2))
            specs.append(Conv(channels, k, s, p, d, bias=False))
        elif kind == "pool":
            p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
            specs.append(Pool(k, s, p, mode=pool_mode))
        else:
            specs.append(ConvTranspose(channels, k, s, draw(axis_pairs(0, 1)), bias=False))
    return specs


def influence(net: nn.Module, C: int, in_hw, unit) -> torch.Tensor:
    """(H, W) bool: the input pixels whose gradient reaches output ``unit`` (row, col)."""
    x = torch.rand(1, C, *in_hw, requires_grad=True)
    out = net(x)
    out[0, 0, unit[0], unit[1]].backward()
    return (x.grad[0] != 0).any(dim=0)


def middle_unit(specs, C: int):
    """Input size large enough for a unit far from every border, the unit, its field."""
    rf, jump, start = (pair(v) for v in receptive_field(specs))
    size = tuple(2 * math.ceil(r) + 4 * math.ceil(j) + 8 for r, j in zip(rf, jump, strict=True))
    try:
        out = analyze(specs, (C, *size))[-1].out_shape[1:]
    except ValueError:
        assume(False)
    unit = tuple(n // 2 for n in out)
    centre = tuple(s + u * j for s, u, j in zip(start, unit, jump, strict=True))
    lo = [c - (r - 1) / 2 for c, r in zip(centre, rf, strict=True)]
    assume(all(a >= 0 and a + r - 1 <= n - 1 for a, r, n in zip(lo, rf, size, strict=True)))
    return size, unit, rf, centre


def extents(mask: torch.Tensor):
    """(first, last, count) of the non-zero rows and of the non-zero columns."""
    rows, cols = mask.any(dim=1).nonzero()[:, 0], mask.any(dim=0).nonzero()[:, 0]
    return [(int(i[0]), int(i[-1]), len(i)) for i in (rows, cols)]


@SOME
@given(stacks(max_layers=3))
def test_receptive_field_matches_brute_force(specs):
    size, unit, rf, centre = middle_unit(specs, 1)
    net = build(specs, 1)
    for layer in net:
        if isinstance(layer, nn.Conv2d):
            nn.init.ones_(layer.weight)  # positive weights, no nonlinearity: no cancellation
    mask = influence(net, 1, size, unit)
    for (first, last, count), r, c in zip(extents(mask), rf, centre, strict=True):
        assert last - first + 1 == r, "the extent of the influencing pixels is the field"
        assert (first + last) / 2 == c, "the field is centred at start + i * jump"
        assert count <= r  # dilation and large strides leave holes


@SOME
@given(stacks(kinds=("conv", "transposed", "pool"), max_layers=3))
def test_transposed_fields_contain_the_influencing_pixels(specs):
    size, unit, rf, centre = middle_unit(specs, 1)
    net = build(specs, 1)
    for layer in net:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.ones_(layer.weight)
    mask = influence(net, 1, size, unit)
    if not mask.any():  # a transposed conv can leave an output unit with no input at all
        return
    for (first, last, _), r, c in zip(extents(mask), rf, centre, strict=True):
        assert c - (r - 1) / 2 <= first and last <= c + (r - 1) / 2


@SOME
@given(stacks(channels=2, max_layers=3, pool_mode="max"), st.integers(0, 2**16))
def test_effective_field_never_exceeds_the_theoretical_one(specs, seed):
    size, unit, rf, centre = middle_unit(specs, 2)
    torch.manual_seed(seed)  # signed random weights, ReLU after every layer, max pooling
    net = nn.Sequential(*(m for layer in build(specs, 2) for m in (layer, nn.ReLU())))
    mask = influence(net, 2, size, unit)
    if mask.any():  # ReLUs may switch every path off
        for (first, last, _), r, c in zip(extents(mask), rf, centre, strict=True):
            assert c - (r - 1) / 2 <= first and last <= c + (r - 1) / 2


def test_effective_field_of_3x3_stack_equals_theoretical():
    # random positive weights and a positive input keep every ReLU on, so no path dies
    torch.manual_seed(0)
    convs = [nn.Conv2d(3, 3, 3) for _ in range(5)]
    for conv in convs:
        nn.init.uniform_(conv.weight, 0.1, 1.0)
        nn.init.zeros_(conv.bias)
    net = nn.Sequential(*(m for conv in convs for m in (conv, nn.ReLU())))
    mask = influence(net, 3, (31, 31), (10, 10))
    assert extents(mask) == [(10, 20, 11), (10, 20, 11)]
    assert receptive_field([Conv(3, 3)] * 5)[0] == 11


# ----------------------------------------------------------------------------- analyze vs torch


@SOME
@given(
    stacks(kinds=("conv", "pool", "transposed"), channels=2, max_layers=3),
    axis_pairs(4, 24),
    st.booleans(),
)
def test_analyze_matches_torch(specs, hw, ceil_mode):
    specs = [
        Pool(s.kernel_size, s.stride, s.padding, "max", ceil_mode) if isinstance(s, Pool) else s
        for s in specs
    ]
    net, x = build(specs, 2), torch.zeros(1, 2, *hw)
    try:
        reports = analyze(specs, (2, *hw))
    except ValueError:
        with pytest.raises(RuntimeError):
            net(x)
        return
    assert analyze_module(net, (2, *hw)) == [
        ModuleReport(str(i), type(net[i]).__name__, r.out_shape,
                     r.params, r.flops, r.rf, r.jump, r.start, r.spatial)
        for i, r in enumerate(reports)
    ]  # fmt: skip
    for layer, report in zip(net, reports, strict=True):
        assert report.flops == flop_count(layer, x)
        x = layer(x)
        assert report.out_shape == tuple(x.shape[1:])
        assert report.params == count_params(layer)


# ----------------------------------------------------------------------------- bad inputs

BAD_CALLS = {
    "size-str": (conv_output_size, ("3", 2), TypeError, "size"),
    "kernel-too-big": (conv_output_size, (3, 5), ValueError, "kernel_size"),
    "stride-zero": (conv_output_size, (3, 2, 0), ValueError, "stride"),
    "kernel-zero": (conv_output_size, (3, 0), ValueError, "kernel_size"),
    "padding-negative": (conv_output_size, (3, 2, 1, -1), ValueError, "padding"),
    "dilation-zero": (conv_output_size, (3, 2, 1, 0, 0), ValueError, "dilation"),
    "pool-padding-half": (pool_output_size, (5, 3, 1, 2), ValueError, "padding"),
    "pool-ceil-str": (pool_output_size, (5, 3, 1, 0, 1, "yes"), TypeError, "ceil_mode"),
    "pool-too-small": (pool_output_size, (2, 5), ValueError, "kernel_size"),
    "T-output-padding": (conv_transpose_output_size, (4, 3, 2, 1, 2), ValueError, "output_pad"),
    "T-crop": (conv_transpose_output_size, (1, 1, 1, 1), ValueError, "padding"),
    "T-size-zero": (conv_transpose_output_size, (0, 3), ValueError, "size"),
    "eks-dilation-zero": (effective_kernel_size, (3, 0), ValueError, "dilation"),
    "params-groups": (conv_params, (6, 4, 3, 4), ValueError, "groups"),
    "params-bias": (conv_params, (6, 4, 3, 1, 1), TypeError, "bias"),
    "params-kernel-pair": (conv_params, (6, 4, (3, 0)), ValueError, r"kernel_size\[1\]"),
    "linear-params-n_in": (linear_params, (0, 4), ValueError, "n_in"),
    "flops-H_out": (conv_flops, (3, 4, 3, 0, 4), ValueError, "H_out"),
    "flops-C_in-float": (conv_flops, (3.0, 4, 3, 4, 4), TypeError, "C_in"),
    "linear-flops-n_out": (linear_flops, (4, None), TypeError, "n_out"),
    "rf-specs-type": (receptive_field, (Conv(8, 3),), TypeError, "specs"),
}


@pytest.mark.parametrize("case", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_rejects_bad_arguments(case):
    func, args, error, message = case
    with pytest.raises(error, match=message):
        func(*args)


GOOD = [Conv(8, 3), Pool(2), Conv(8, 3)]
CHW = (3, 8, 8)

# (specs, input_shape, error, regex the message must match)
BAD_SPECS = {
    "stride": ([*GOOD, Conv(8, 3, stride=0)], (3, 32, 32), ValueError, "stride must be >= 1"),
    "too-small": (GOOD, (3, 5, 5), ValueError, r"layer 2 \(Conv\): kernel_size.*larger"),
    "pool-padding": ([Pool(2, padding=2)], CHW, ValueError, r"layer 0 \(Pool\): padding"),
    "pool-mode": ([Pool(2, mode="min")], CHW, ValueError, r"layer 0 \(Pool\): mode"),
    "groups": ([Conv(8, 3, groups=2)], CHW, ValueError, r"layer 0 \(Conv\): groups.*C_in=3"),
    "out-channels": ([Conv(0, 3)], CHW, ValueError, r"layer 0 \(Conv\): out_channels"),
    "kernel-float": ([Conv(4, 3.0)], CHW, TypeError, r"layer 0 \(Conv\): kernel_size"),
    "bias": ([Conv(4, 3, bias=0)], CHW, TypeError, r"layer 0 \(Conv\): bias"),
    "T-crop": ([ConvTranspose(4, 1, padding=1)], (3, 1, 1), ValueError, r"\(ConvTranspose\): pad"),
    "T-output-padding": ([ConvTranspose(4, 3, output_padding=1)], CHW, ValueError, "output_pad"),
    "spec-type": ([Conv(8, 3), nn.ReLU()], CHW, TypeError, r"specs\[1\]"),
    "specs-type": (Conv(8, 3), CHW, TypeError, "specs"),
    "shape-len": (GOOD, (32, 32), ValueError, "input_shape"),
    "shape-zero": (GOOD, (3, 0, 32), ValueError, r"input_shape\[1\]"),
    "shape-type": (GOOD, "3x32x32", TypeError, "input_shape"),
}


# errors that do not depend on the input shape, so receptive_field raises them too
SHAPE_FREE = ["stride", "pool-padding", "pool-mode", "out-channels", "kernel-float", "bias"]
SHAPE_FREE += ["T-output-padding", "spec-type", "specs-type"]


@pytest.mark.parametrize("key", BAD_SPECS)
def test_analyze_rejects_bad_specs(key):
    specs, shape, error, message = BAD_SPECS[key]
    with pytest.raises(error, match=message):
        analyze(specs, shape)
    if key in SHAPE_FREE:
        with pytest.raises(error, match=message):
            receptive_field(specs)


def test_analyze_error_names_layer_kind_and_argument():
    with pytest.raises(ValueError) as info:
        analyze([*GOOD, Conv(8, 3, stride=0)], (3, 32, 32))
    assert str(info.value) == "layer 3 (Conv): stride must be >= 1, got 0"

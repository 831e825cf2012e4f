"""Property and bad-input tests of cnnbook.numpy_ops against torch and scipy (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from array_cases import conv_cases, max_err, pairs, pool_cases, unfold_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnbook.numpy_ops import (
    avg_pool2d,
    conv2d,
    conv2d_im2col,
    conv2d_loops,
    convolve2d,
    correlate2d,
    im2col,
    max_pool2d,
    pad2d,
)

TOL = 1e-9  # float64 against float64: only summation order differs


def torch_conv(x, weight, bias, kwargs) -> torch.Tensor:
    b = None if bias is None else torch.from_numpy(bias)
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), b, **kwargs)


# ----------------------------------------------------------------------------- convolution


@settings(max_examples=200, deadline=None, database=None)
@given(conv_cases())
def test_conv2d_im2col_matches_torch(case):
    x, weight, bias, kwargs, _ = case
    out = conv2d_im2col(x, weight, bias, **kwargs)
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    assert max_err(out, torch_conv(x, weight, bias, kwargs)) <= TOL


@settings(max_examples=200, deadline=None, database=None)
@given(conv_cases(max_batch=2, max_size=7, max_kernel=3, max_dilation=2))
def test_conv2d_loops_matches_torch(case):
    x, weight, bias, kwargs, _ = case
    out = conv2d_loops(x, weight, bias, **kwargs)
    assert out.dtype == np.float64
    assert max_err(out, torch_conv(x, weight, bias, kwargs)) <= TOL


def test_conv2d_is_im2col_and_keeps_float32():
    assert conv2d is conv2d_im2col
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 9), dtype=np.float32)
    w = rng.standard_normal((6, 2, 3, 3), dtype=np.float32)
    b = rng.standard_normal(6, dtype=np.float32)
    fast = conv2d(x, w, b, padding=1, groups=2)
    slow = conv2d_loops(x, w, b, padding=1, groups=2)
    assert fast.dtype == slow.dtype == np.float32, "float32 in should give float32 out"
    ref = F.conv2d(*map(torch.from_numpy, (x, w, b)), padding=1, groups=2)
    assert max_err(fast, ref) < 1e-4 and max_err(slow, ref) < 1e-4


def test_integer_inputs_give_float64():
    x = np.arange(16).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 2, 2), dtype=np.int32)
    out = conv2d(x, w)
    assert out.dtype == np.float64
    assert out[0, 0, 0, 0] == 0 + 1 + 4 + 5


# ----------------------------------------------------------------------------- im2col


@settings(max_examples=200, deadline=None, database=None)
@given(unfold_cases())
def test_im2col_matches_unfold(case):
    x, kwargs, _ = case
    assert max_err(im2col(x, **kwargs), F.unfold(torch.from_numpy(x), **kwargs)) == 0.0


# ----------------------------------------------------------------------------- pooling


@settings(max_examples=200, deadline=None, database=None)
@given(pool_cases())
def test_max_pool2d_matches_torch(case):
    x, kwargs, _ = case
    out = max_pool2d(x, **kwargs)
    assert out.dtype == np.float64
    assert max_err(out, F.max_pool2d(torch.from_numpy(x), **kwargs)) == 0.0


@settings(max_examples=200, deadline=None, database=None)
@given(pool_cases(), st.booleans())
def test_avg_pool2d_matches_torch(case, count_include_pad):
    x, kwargs, _ = case
    out = avg_pool2d(x, count_include_pad=count_include_pad, **kwargs)
    ref = F.avg_pool2d(torch.from_numpy(x), count_include_pad=count_include_pad, **kwargs)
    assert out.dtype == np.float64
    assert max_err(out, ref) <= TOL


def test_pooling_keeps_float32():
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)
    assert max_pool2d(x, 2).dtype == np.float32
    assert avg_pool2d(x, 3, stride=1, padding=1).dtype == np.float32


# ----------------------------------------------------------------------------- single image


@st.composite
def image_cases(draw):
    mode = draw(st.sampled_from(["valid", "same", "full"]))
    H, W = draw(pairs(1, 10))
    if mode == "valid":
        k = (draw(st.integers(1, min(H, 5))), draw(st.integers(1, min(W, 5))))
    elif mode == "same":
        k = (draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5])))
    else:
        k = draw(pairs(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal((H, W)), rng.standard_normal(k), mode


@settings(max_examples=150, deadline=None, database=None)
@given(image_cases())
def test_correlate2d_and_convolve2d_match_scipy(case):
    image, kernel, mode = case
    ref_corr = scipy.signal.correlate2d(image, kernel, mode)
    ref_conv = scipy.signal.convolve2d(image, kernel, mode)
    assert max_err(correlate2d(image, kernel, mode), ref_corr) <= TOL
    assert max_err(convolve2d(image, kernel, mode), ref_conv) <= TOL


@settings(max_examples=100, deadline=None, database=None)
@given(image_cases())
def test_convolution_is_correlation_with_flipped_kernel(case):
    image, kernel, mode = case
    flipped = np.flip(kernel, axis=(0, 1))
    assert max_err(convolve2d(image, kernel, mode), correlate2d(image, flipped, mode)) == 0.0


def test_convolve2d_differs_from_correlate2d_for_asymmetric_kernel():
    image = np.zeros((5, 5))
    image[2, 2] = 1.0  # an impulse: convolution copies the kernel, correlation flips it
    kernel = np.arange(9.0).reshape(3, 3)
    assert np.array_equal(convolve2d(image, kernel, "same")[1:4, 1:4], kernel)
    assert np.array_equal(correlate2d(image, kernel, "same")[1:4, 1:4], kernel[::-1, ::-1])


def test_pad2d():
    x = np.arange(6.0).reshape(1, 2, 3)
    out = pad2d(x, (1, 2))
    assert out.shape == (1, 4, 7)
    assert np.array_equal(out[:, 1:-1, 2:-2], x) and out.sum() == x.sum()
    assert pad2d(x, 0) is x, "zero padding should not copy"


# ----------------------------------------------------------------------------- bad inputs

X = np.zeros((1, 4, 5, 5))
W = np.zeros((2, 4, 3, 3))
IMG, KER = np.zeros((5, 5)), np.zeros((3, 3))
CONVS = [conv2d_loops, conv2d_im2col]

# (function, args, kwargs, error type, regex the message must match)
CONV_BAD = {
    "x-not-array": ((X.tolist(), W), {}, TypeError, r"\bx\b"),
    "weight-tensor": ((X, torch.zeros(2, 4, 3, 3)), {}, TypeError, "weight"),
    "x-string-dtype": ((X.astype(str), W), {}, TypeError, r"\bx\b"),
    "x-ndim": ((X[0], W), {}, ValueError, r"\bx\b"),
    "weight-ndim": ((X, W[0]), {}, ValueError, "weight"),
    "channel-mismatch": ((X, W[:, :3]), {}, ValueError, r"weight.*= 3 input channels.*x has 4"),
    "c_in-groups": ((X, np.zeros((3, 1, 3, 3))), {"groups": 3}, ValueError, "groups.*C_in=4"),
    "c_out-groups": ((X, np.zeros((3, 2, 3, 3))), {"groups": 2}, ValueError, "groups.*C_out=3"),
    "groups-zero": ((X, W), {"groups": 0}, ValueError, "groups"),
    "groups-float": ((X, W), {"groups": 1.0}, TypeError, "groups"),
    "stride-zero": ((X, W), {"stride": 0}, ValueError, "stride"),
    "stride-pair-zero": ((X, W), {"stride": (1, 0)}, ValueError, r"stride\[1\]"),
    "stride-triple": ((X, W), {"stride": (1, 1, 1)}, ValueError, "stride"),
    "stride-float": ((X, W), {"stride": 1.5}, TypeError, "stride"),
    "dilation-zero": ((X, W), {"dilation": 0}, ValueError, "dilation"),
    "padding-negative": ((X, W), {"padding": -1}, ValueError, "padding"),
    "padding-bool": ((X, W), {"padding": True}, TypeError, "padding"),
    "kernel-too-big": ((X, np.zeros((2, 4, 6, 3))), {}, ValueError, "weight.*larger"),
    "dilated-too-big": ((X, W), {"dilation": (1, 3)}, ValueError, "weight.*larger"),
    "bias-shape": ((X, W, np.zeros(3)), {}, ValueError, r"bias.*\(2,\)"),
    "bias-list": ((X, W, [0.0, 0.0]), {}, TypeError, "bias"),
}


@pytest.mark.parametrize("conv", CONVS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", CONV_BAD.values(), ids=CONV_BAD.keys())
def test_conv_rejects_bad_arguments(conv, case):
    args, kwargs, error, message = case
    with pytest.raises(error, match=message):
        conv(*args, **kwargs)


OTHER_BAD = {
    "im2col-x-ndim": (im2col, (X[0], 3), {}, ValueError, r"\bx\b"),
    "im2col-x-list": (im2col, (X.tolist(), 3), {}, TypeError, r"\bx\b"),
    "im2col-kernel-zero": (im2col, (X, 0), {}, ValueError, "kernel_size"),
    "im2col-kernel-float": (im2col, (X, 2.0), {}, TypeError, "kernel_size"),
    "im2col-kernel-too-big": (im2col, (X, 6), {}, ValueError, "kernel_size"),
    "im2col-stride-zero": (im2col, (X, 3), {"stride": 0}, ValueError, "stride"),
    "im2col-padding-negative": (im2col, (X, 3), {"padding": (0, -1)}, ValueError, "padding"),
    "im2col-dilation-zero": (im2col, (X, 3), {"dilation": 0}, ValueError, "dilation"),
    "max_pool-x-list": (max_pool2d, (X.tolist(), 2), {}, TypeError, r"\bx\b"),
    "max_pool-x-ndim": (max_pool2d, (X[0], 2), {}, ValueError, r"\bx\b"),
    "max_pool-kernel-zero": (max_pool2d, (X, 0), {}, ValueError, "kernel_size"),
    "max_pool-kernel-too-big": (max_pool2d, (X, 6), {}, ValueError, "kernel_size"),
    "max_pool-stride-zero": (max_pool2d, (X, 2), {"stride": 0}, ValueError, "stride"),
    "max_pool-padding-half": (max_pool2d, (X, 3), {"padding": 2}, ValueError, "padding"),
    "max_pool-padding-float": (max_pool2d, (X, 3), {"padding": 1.0}, TypeError, "padding"),
    "avg_pool-padding-half": (avg_pool2d, (X, (4, 2)), {"padding": (1, 2)}, ValueError, "padding"),
    "avg_pool-kernel-too-big": (avg_pool2d, (X, (2, 7)), {}, ValueError, "kernel_size"),
    "avg_pool-count_include_pad": (
        avg_pool2d,
        (X, 2),
        {"count_include_pad": "yes"},
        TypeError,
        "count_include_pad",
    ),
    "correlate-mode": (correlate2d, (IMG, KER, "circular"), {}, ValueError, "mode"),
    "convolve-mode": (convolve2d, (IMG, KER), {"mode": "SAME"}, ValueError, "mode"),
    "convolve-same-even": (convolve2d, (IMG, KER[:2], "same"), {}, ValueError, "kernel"),
    "correlate-valid-too-big": (correlate2d, (IMG, np.zeros((6, 1))), {}, ValueError, "kernel"),
    "correlate-image-ndim": (correlate2d, (X, KER), {}, ValueError, "image"),
    "convolve-kernel-list": (convolve2d, (IMG, [[1.0]]), {}, TypeError, "kernel"),
    "convolve-kernel-empty": (convolve2d, (IMG, np.zeros((0, 2))), {}, ValueError, "kernel"),
    "pad2d-padding-negative": (pad2d, (IMG, -1), {}, ValueError, "padding"),
    "pad2d-x-1d": (pad2d, (IMG[0], 1), {}, ValueError, r"\bx\b"),
}


@pytest.mark.parametrize("case", OTHER_BAD.values(), ids=OTHER_BAD.keys())
def test_other_functions_reject_bad_arguments(case):
    func, args, kwargs, error, message = case
    with pytest.raises(error, match=message):
        func(*args, **kwargs)

"""Property and bad-input tests of cnnbook.numpy_grad against torch autograd (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from array_cases import conv_cases, max_err, pool_cases, unfold_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnbook.numpy_grad import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    col2im,
    conv2d_backward,
    conv2d_forward,
    gradient_check,
    max_pool2d_backward,
    max_pool2d_forward,
    numerical_gradient,
    relu_backward,
    relu_forward,
)
from cnnbook.numpy_ops import avg_pool2d, conv2d, im2col, max_pool2d

TOL = 1e-8  # float64 against float64: only the order of the sums differs


def autograd(forward, dout: np.ndarray, *arrays: np.ndarray | None) -> list[torch.Tensor | None]:
    """Run ``forward`` on leaf tensors made from ``arrays``, backpropagate ``dout``.

    Returns the output tensor followed by the gradient of every array (None for None).
    """
    leaves = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = forward(*leaves)
    out.backward(torch.from_numpy(dout))
    return [out] + [None if t is None else t.grad for t in leaves]


# ----------------------------------------------------------------------------- convolution


@settings(max_examples=250, deadline=None, database=None)
@given(conv_cases(max_size=11))
def test_conv2d_backward_matches_autograd(case):
    x, weight, bias, kwargs, rng = case
    out, cache = conv2d_forward(x, weight, bias, **kwargs)
    dout = rng.standard_normal(out.shape)
    dx, dweight, dbias = conv2d_backward(dout, cache)

    def forward(x_t, w_t, b_t):
        return F.conv2d(x_t, w_t, b_t, **kwargs)

    out_t, dx_t, dw_t, db_t = autograd(forward, dout, x, weight, bias)
    assert max_err(out, out_t) <= TOL
    assert dx.shape == x.shape and dweight.shape == weight.shape
    assert max_err(dx, dx_t) <= TOL
    assert max_err(dweight, dw_t) <= TOL
    if bias is None:
        assert dbias is None
    else:
        assert max_err(dbias, db_t) <= TOL
    assert dx.dtype == dweight.dtype == np.float64


def test_conv2d_input_gradient_is_full_convolution_with_flipped_kernel():
    """Single channel, stride 1: dx = full convolution of dout with the flipped kernel."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((1, 1, 7, 6)), rng.standard_normal((1, 1, 3, 2))
    out, cache = conv2d_forward(x, w)
    dout = rng.standard_normal(out.shape)
    dx, dweight, _ = conv2d_backward(dout, cache)
    # full correlation with the flipped kernel = full true convolution with the kernel
    padded = np.pad(dout[0, 0], ((2, 2), (1, 1)))
    flipped = w[0, 0, ::-1, ::-1]
    expected = np.array(
        [[np.sum(padded[i : i + 3, j : j + 2] * flipped) for j in range(6)] for i in range(7)]
    )
    assert max_err(dx[0, 0], expected) <= 1e-12
    # the weight gradient is the valid correlation of x with dout
    expected_w = conv2d(x.transpose(1, 0, 2, 3), dout.transpose(1, 0, 2, 3))
    assert max_err(dweight, expected_w.transpose(1, 0, 2, 3)) <= 1e-12


def test_conv2d_backward_keeps_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    out, cache = conv2d_forward(x, w, b, stride=2, padding=1, groups=2)
    dx, dw, db = conv2d_backward(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == dw.dtype == db.dtype == np.float32
    _, dx_t, dw_t, _ = autograd(
        lambda a, b_, c: F.conv2d(a, b_, c, stride=2, padding=1, groups=2),
        np.ones_like(out),
        x,
        w,
        b,
    )
    assert max_err(dx, dx_t) < 1e-4 and max_err(dw, dw_t) < 1e-4


def test_conv2d_forward_accepts_integers():
    x = np.arange(16).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 2, 2), dtype=np.int32)
    out, cache = conv2d_forward(x, w)
    dx, dw, db = conv2d_backward(np.ones((1, 1, 3, 3), dtype=np.int64), cache)
    assert out.dtype == dx.dtype == dw.dtype == np.float64 and db is None
    assert dx[0, 0, 1, 1] == 4.0, "an inner pixel lies in 4 windows of a 2x2 kernel"


# ----------------------------------------------------------------------------- col2im


@settings(max_examples=150, deadline=None, database=None)
@given(unfold_cases(max_size=10, max_channels=3))
def test_col2im_matches_fold_and_is_the_adjoint_of_im2col(case):
    x, kwargs, rng = case
    shape = x.shape
    cols = rng.standard_normal(im2col(x, **kwargs).shape)
    folded = col2im(cols, shape, **kwargs)
    assert max_err(folded, F.fold(torch.from_numpy(cols), shape[2:], **kwargs)) <= TOL
    # adjoint: <im2col(x), cols> == <x, col2im(cols)>
    assert abs(np.sum(im2col(x, **kwargs) * cols) - np.sum(x * folded)) <= 1e-9


# ----------------------------------------------------------------------------- pooling


@settings(max_examples=250, deadline=None, database=None)
@given(pool_cases(max_size=11, distinct=True))
def test_max_pool2d_backward_matches_autograd(case):
    x, kwargs, rng = case
    out, cache = max_pool2d_forward(x, **kwargs)
    assert np.array_equal(out, max_pool2d(x, **kwargs))
    dout = rng.standard_normal(out.shape)
    out_t, dx_t = autograd(lambda t: F.max_pool2d(t, **kwargs), dout, x)
    assert max_err(out, out_t) == 0.0
    dx = max_pool2d_backward(dout, cache)
    assert dx.dtype == np.float64
    assert max_err(dx, dx_t) <= TOL


@settings(max_examples=250, deadline=None, database=None)
@given(pool_cases(max_size=11, distinct=True), st.booleans())
def test_avg_pool2d_backward_matches_autograd(case, count_include_pad):
    x, kwargs, rng = case
    x = x + rng.standard_normal(x.shape)  # ties do not matter here
    out, cache = avg_pool2d_forward(x, count_include_pad=count_include_pad, **kwargs)
    assert max_err(out, avg_pool2d(x, count_include_pad=count_include_pad, **kwargs)) <= 1e-12
    dout = rng.standard_normal(out.shape)
    out_t, dx_t = autograd(
        lambda t: F.avg_pool2d(t, count_include_pad=count_include_pad, **kwargs), dout, x
    )
    assert max_err(out, out_t) <= TOL
    assert max_err(avg_pool2d_backward(dout, cache), dx_t) <= TOL


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=1),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=(2, 3), stride=(1, 2)),
    ],
)
def test_max_pool2d_ties_go_to_the_first_maximum_like_torch(kwargs):
    """With many equal values, both pick the first maximum of each window in row-major order."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, size=(2, 3, 7, 8)).astype(np.float64)  # lots of ties
    out, cache = max_pool2d_forward(x, **kwargs)
    dout = rng.standard_normal(out.shape)
    _, dx_t = autograd(lambda t: F.max_pool2d(t, **kwargs), dout, x)
    assert max_err(max_pool2d_backward(dout, cache), dx_t) <= TOL
    flat = np.ones((1, 1, 4, 4))
    _, cache = max_pool2d_forward(flat, 2)
    winners = max_pool2d_backward(np.ones((1, 1, 2, 2)), cache)[0, 0]
    assert np.array_equal(winners[::2, ::2], np.ones((2, 2))) and winners.sum() == 4


def test_pool_backward_keeps_float32():
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)
    out, cache = max_pool2d_forward(x, 2)
    assert out.dtype == max_pool2d_backward(np.ones_like(out), cache).dtype == np.float32
    out, cache = avg_pool2d_forward(x, 3, stride=1, padding=1)
    assert out.dtype == avg_pool2d_backward(np.ones_like(out), cache).dtype == np.float32


# ----------------------------------------------------------------------------- ReLU


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=4),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_relu_matches_autograd(shape, seed, with_zeros):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if with_zeros:  # exact zeros: both use the derivative 0 there
        x[rng.random(shape) < 0.3] = 0.0
    out, cache = relu_forward(x)
    dout = rng.standard_normal(out.shape)
    out_t, dx_t = autograd(torch.relu, dout, x)
    assert max_err(out, out_t) == 0.0
    assert max_err(relu_backward(dout, cache), dx_t) == 0.0


# ----------------------------------------------------------------------------- gradient checks


def _composite(x: np.ndarray, weight: np.ndarray, r: np.ndarray) -> float:
    """A scalar through conv -> ReLU -> max pool -> avg pool: the chapter's building blocks."""
    h = conv2d(x, weight, padding=1)
    h = max_pool2d(np.maximum(h, 0), 2)
    return float(np.sum(avg_pool2d(h, 2, stride=1) * r))


def _composite_torch(x, weight, r):
    h = F.max_pool2d(torch.relu(F.conv2d(x, weight, padding=1)), 2)
    return torch.sum(F.avg_pool2d(h, 2, stride=1) * r)


NUMERIC_CASES = {
    "sin-times-square": (lambda a: np.sum(np.sin(a) * a**2), lambda t: torch.sum(t.sin() * t**2)),
    "logsumexp": (
        lambda a: np.log(np.sum(np.exp(a))),
        lambda t: torch.logsumexp(t.flatten(), 0),
    ),
    "product-of-norms": (
        lambda a: np.linalg.norm(a) * np.sum(a[..., 0]),
        lambda t: torch.linalg.vector_norm(t) * t[..., 0].sum(),
    ),
}


@pytest.mark.parametrize("name", NUMERIC_CASES)
def test_numerical_gradient_agrees_with_autograd(name):
    f, f_torch = NUMERIC_CASES[name]
    x = np.random.default_rng(7).standard_normal((3, 4))
    x_t = torch.tensor(x, requires_grad=True)
    f_torch(x_t).backward()
    numeric = numerical_gradient(f, x)
    assert numeric.dtype == np.float64 and numeric.shape == x.shape
    assert max_err(numeric, x_t.grad) <= 1e-7
    assert gradient_check(f, x, x_t.grad.numpy()) < 1e-7


def test_numerical_gradient_through_conv_relu_pool():
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    r = rng.standard_normal((2, 3, 2, 2))
    x_t, w_t = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    _composite_torch(x_t, w_t, torch.from_numpy(r)).backward()
    assert gradient_check(lambda a: _composite(a, w, r), x, x_t.grad.numpy()) < 1e-7
    assert gradient_check(lambda v: _composite(x, v, r), w, w_t.grad.numpy()) < 1e-7


def test_gradient_check_flags_a_wrong_gradient_and_handles_zero():
    x = np.random.default_rng(2).standard_normal(5)
    assert gradient_check(lambda a: np.sum(a**2), x, 2 * x) < 1e-8
    assert gradient_check(lambda a: np.sum(a**2), x, 1.5 * x) == pytest.approx(0.25, rel=1e-6)
    assert gradient_check(lambda a: 3.0, x, np.zeros(5)) == 0.0


def test_numerical_gradient_leaves_x_alone_and_accepts_integers():
    x = np.arange(6).reshape(2, 3)
    before = x.copy()
    grad = numerical_gradient(lambda a: np.sum(a**2), x, eps=1e-4)
    assert np.array_equal(x, before)
    assert np.allclose(grad, 2 * x, atol=1e-8)


# ----------------------------------------------------------------------------- bad inputs

X = np.zeros((1, 4, 5, 5))
W = np.zeros((2, 4, 3, 3))
_, CONV_CACHE = conv2d_forward(X, W)
_, MAX_CACHE = max_pool2d_forward(X, 2)
_, AVG_CACHE = avg_pool2d_forward(X, 2)
_, RELU_CACHE = relu_forward(X)
COLS = im2col(X, 3)


def square(a):
    return float(np.sum(a**2))


# (function, args, kwargs, error type, regex the message must match)
BAD = {
    "conv-x-list": (conv2d_forward, (X.tolist(), W), {}, TypeError, r"\bx\b"),
    "conv-weight-ndim": (conv2d_forward, (X, W[0]), {}, ValueError, "weight"),
    "conv-channels": (conv2d_forward, (X, W[:, :3]), {}, ValueError, "weight"),
    "conv-groups": (conv2d_forward, (X, W), {"groups": 3}, ValueError, "groups"),
    "conv-stride-zero": (conv2d_forward, (X, W), {"stride": 0}, ValueError, "stride"),
    "conv-padding-float": (conv2d_forward, (X, W), {"padding": 1.0}, TypeError, "padding"),
    "conv-dilation-big": (conv2d_forward, (X, W), {"dilation": 3}, ValueError, "weight"),
    "conv-bias-shape": (conv2d_forward, (X, W, np.zeros(3)), {}, ValueError, "bias"),
    "conv-back-dout-shape": (
        conv2d_backward,
        (np.zeros((1, 2, 3, 4)), CONV_CACHE),
        {},
        ValueError,
        r"dout.*\(1, 2, 3, 3\)",
    ),
    "conv-back-dout-list": (conv2d_backward, ([0.0], CONV_CACHE), {}, TypeError, "dout"),
    "conv-back-cache": (
        conv2d_backward,
        (np.zeros((1, 2, 3, 3)), MAX_CACHE),
        {},
        TypeError,
        "cache.*conv2d_forward",
    ),
    "conv-back-cache-tuple": (
        conv2d_backward,
        (np.zeros((1, 2, 3, 3)), (X, W)),
        {},
        TypeError,
        "cache",
    ),
    "max-x-ndim": (max_pool2d_forward, (X[0], 2), {}, ValueError, r"\bx\b"),
    "max-kernel-zero": (max_pool2d_forward, (X, 0), {}, ValueError, "kernel_size"),
    "max-kernel-big": (max_pool2d_forward, (X, 6), {}, ValueError, "kernel_size"),
    "max-stride-float": (max_pool2d_forward, (X, 2), {"stride": 1.5}, TypeError, "stride"),
    "max-padding-half": (max_pool2d_forward, (X, 3), {"padding": 2}, ValueError, "padding"),
    "max-back-dout": (
        max_pool2d_backward,
        (np.zeros((1, 4, 3, 3)), MAX_CACHE),
        {},
        ValueError,
        "dout",
    ),
    "max-back-cache": (
        max_pool2d_backward,
        (np.zeros((1, 4, 2, 2)), AVG_CACHE),
        {},
        TypeError,
        "cache",
    ),
    "avg-kernel-big": (avg_pool2d_forward, (X, (2, 7)), {}, ValueError, "kernel_size"),
    "avg-count": (
        avg_pool2d_forward,
        (X, 2),
        {"count_include_pad": 1},
        TypeError,
        "count_include_pad",
    ),
    "avg-back-dout": (
        avg_pool2d_backward,
        (np.zeros((2, 4, 2, 2)), AVG_CACHE),
        {},
        ValueError,
        "dout",
    ),
    "avg-back-cache": (
        avg_pool2d_backward,
        (np.zeros((1, 4, 2, 2)), MAX_CACHE),
        {},
        TypeError,
        "cache",
    ),
    "relu-x-list": (relu_forward, ([1.0, -1.0],), {}, TypeError, r"\bx\b"),
    "relu-x-complex": (relu_forward, (np.zeros(3, dtype=complex),), {}, TypeError, r"\bx\b"),
    "relu-back-dout": (relu_backward, (np.zeros((1, 4, 5)), RELU_CACHE), {}, ValueError, "dout"),
    "relu-back-cache": (relu_backward, (X, CONV_CACHE), {}, TypeError, "relu_forward"),
    "col2im-cols-ndim": (col2im, (COLS[0], X.shape, 3), {}, ValueError, "cols"),
    "col2im-cols-shape": (col2im, (COLS, (1, 3, 5, 5), 3), {}, ValueError, "cols"),
    "col2im-input-shape": (col2im, (COLS, (4, 5, 5), 3), {}, ValueError, "input_shape"),
    "col2im-input-shape-zero": (col2im, (COLS, (1, 4, 0, 5), 3), {}, ValueError, "input_shape"),
    "col2im-kernel-big": (col2im, (COLS, X.shape, 6), {}, ValueError, "kernel_size"),
    "col2im-stride-zero": (col2im, (COLS, X.shape, 3), {"stride": 0}, ValueError, "stride"),
    "numgrad-f": (numerical_gradient, ("square", X), {}, TypeError, r"\bf\b"),
    "numgrad-x": (numerical_gradient, (square, [1.0, 2.0]), {}, TypeError, r"\bx\b"),
    "numgrad-eps-zero": (numerical_gradient, (square, X), {"eps": 0.0}, ValueError, "eps"),
    "numgrad-eps-negative": (numerical_gradient, (square, X), {"eps": -1e-6}, ValueError, "eps"),
    "numgrad-eps-nan": (numerical_gradient, (square, X), {"eps": float("nan")}, ValueError, "eps"),
    "numgrad-eps-str": (numerical_gradient, (square, X), {"eps": "1e-6"}, TypeError, "eps"),
    "numgrad-f-array": (numerical_gradient, (lambda a: a * 2, X), {}, ValueError, r"\bf\b.*scalar"),
    "check-shape": (gradient_check, (square, X, X[0]), {}, ValueError, "analytic_grad"),
    "check-grad-list": (gradient_check, (square, X, X.tolist()), {}, TypeError, "analytic_grad"),
    "check-eps": (gradient_check, (square, X, X), {"eps": 0}, ValueError, "eps"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_functions_reject_bad_arguments(case):
    func, args, kwargs, error, message = case
    with pytest.raises(error, match=message):
        func(*args, **kwargs)

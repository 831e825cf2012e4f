"""cnnbook.diagrams.training: every number drawn equals the library's or torch's."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnbook.diagrams.style import MAX_WIDTH_IN, diagram_texts
from cnnbook.diagrams.training import conv_backward, norm_axes, pooling_routes
from cnnbook.numpy_grad import max_pool2d_backward, max_pool2d_forward


def _texts(fig) -> list[str]:
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN
    texts = diagram_texts(fig)
    plt.close(fig)
    return texts


def _numbers(values, fmt: str = "{:g}") -> list[str]:
    return [fmt.format(v) for v in np.asarray(values, dtype=float).flatten()]


def _after(texts: list[str], label: str, count: int) -> list[str]:
    """The ``count`` texts drawn right after ``label``."""
    at = texts.index(label)
    return texts[at + 1 : at + 1 + count]


def _before(texts: list[str], label: str, count: int) -> list[str]:
    at = texts.index(label)
    return texts[at - count : at]


# ----------------------------------------------------------------------------- pooling


CHAPTER_5_X = np.array([[1, 3, 2, 6], [4, 2, 5, 1], [7, 8, 9, 0], [3, 5, 1, 2]])


@pytest.mark.parametrize(
    ("x", "k", "upstream"),
    [
        (CHAPTER_5_X, 2, None),
        (CHAPTER_5_X, 2, np.array([[0.5, -1.0], [0.0, 2.0]])),
        (np.arange(36).reshape(6, 6) % 7, 3, None),
        (np.arange(15).reshape(3, 5) % 4, 2, None),  # ties and a dropped last column
    ],
)
def test_pooling_routes_numbers_are_numpy_grad_and_torch(x, k, upstream):
    texts = _texts(pooling_routes(x, k, upstream))
    xs = x.astype(float)[None, None]
    y_max, cache = max_pool2d_forward(xs, k)
    g = np.arange(1.0, 1 + y_max.size).reshape(y_max.shape) if upstream is None else upstream
    dx = max_pool2d_backward(np.asarray(g, dtype=float).reshape(y_max.shape), cache)
    y_avg = F.avg_pool2d(torch.tensor(xs), k)
    assert _before(texts, f"x {x.shape[0]}×{x.shape[1]}", x.size) == _numbers(x)
    assert _before(texts, f"max pool {k}×{k}", y_max.size) == _numbers(y_max)
    assert _before(texts, f"avg pool {k}×{k}", y_avg.numel()) == _numbers(y_avg, "{:.3g}")
    assert _before(texts, "dL/dy", y_max.size) == _numbers(g)
    assert _after(texts, "to each max", x.size) == _numbers(dx)


@pytest.mark.parametrize(
    ("x", "k", "upstream", "error", "match"),
    [
        (CHAPTER_5_X.tolist(), 2, None, TypeError, "x"),
        (np.ones((2, 2, 2)), 2, None, ValueError, "x"),
        (np.ones((7, 7)), 2, None, ValueError, "x"),
        (CHAPTER_5_X, 5, None, ValueError, "kernel_size"),
        (CHAPTER_5_X, 0, None, ValueError, "kernel_size"),
        (CHAPTER_5_X, 2, np.ones((3, 3)), ValueError, "upstream"),
        (np.full((2, 2), np.nan), 2, None, ValueError, "x"),
    ],
)
def test_pooling_routes_rejects_bad_input(x, k, upstream, error, match):
    with pytest.raises(error, match=match):
        pooling_routes(x, k, upstream)


# ----------------------------------------------------------------------------- conv backward


CHAPTER_6 = (
    np.array([[1, 2, 0, 3, 1], [0, 1, 2, 1, 0], [3, 1, 0, 2, 2], [1, 0, 1, 1, 3], [2, 2, 1, 0, 1]]),
    np.array([[1, 0, -1], [2, 1, 0], [0, 1, 1]]),
    np.array([[1, 0, 2], [-1, 1, 0], [0, 2, 1]]),
)


@pytest.mark.parametrize(
    ("x", "w", "g"),
    [
        CHAPTER_6,
        (np.arange(16).reshape(4, 4) % 3, np.array([[1, -2], [0, 3]]), np.arange(9).reshape(3, 3)),
        (np.eye(3), np.ones((1, 1)), np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])),
    ],
)
def test_conv_backward_numbers_are_autograd(x, w, g):
    texts = _texts(conv_backward(x, w, g))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    F.conv2d(xt[None, None], wt[None, None]).backward(
        torch.tensor(g, dtype=torch.float64)[None, None]
    )
    k = w.shape[0]
    padded = np.pad(g, k - 1)
    assert texts[: padded.size] == _numbers(padded), "dL/dy with k - 1 zeros around it"
    label = f"dL/dy padded by {k - 1}"
    assert _after(texts, label, 1 + w.size) == ["⋆", *_numbers(w[::-1, ::-1])], "rotated kernel"
    assert _after(texts, "=", x.size) == _numbers(xt.grad), "dL/dx"
    assert _before(texts, f"dL/dx {x.shape[0]}×{x.shape[1]}", x.size) == _numbers(xt.grad)
    assert _before(texts, f"dL/dw {k}×{k}", w.size) == _numbers(wt.grad), "dL/dw"


@pytest.mark.parametrize(
    ("x", "w", "g", "match"),
    [
        (np.ones((4, 4)), np.ones((2, 3)), np.ones((3, 2)), "weight"),
        (np.ones((4, 4)), np.ones((2, 2)), np.ones((2, 2)), "upstream"),
        (np.ones((2, 2)), np.ones((3, 3)), np.ones((1, 1)), "weight"),
        (np.ones((8, 8)), np.ones((3, 3)), np.ones((6, 6)), "x"),
    ],
)
def test_conv_backward_rejects_bad_input(x, w, g, match):
    with pytest.raises(ValueError, match=match):
        conv_backward(x, w, g)


# ----------------------------------------------------------------------------- norm axes


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "groups"),
    [(4, 6, 8, 8, 2), (2, 12, 3, 5, 4), (8, 3, 1, 1, 3), (64, 8, 14, 14, 2)],
)
def test_norm_axes_labels_are_the_modules_statistics(n, c, h, w, groups):
    texts = _texts(norm_axes(n, c, h, w, groups=groups))
    bn = nn.BatchNorm2d(c)
    x = torch.randn(n, c, h, w)
    mean = x.mean(dim=(0, 2, 3))
    bn(x)
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)  # one statistic per channel
    assert f"means {c}, {n * h * w} values each" in texts
    assert tuple(bn.running_mean.shape) == (c,)
    assert f"means {n}, {c * h * w} values each" in texts
    # GroupNorm normalises with one mean per (sample, group): check that shape in torch
    flat = x.reshape(n, groups, -1)
    manual = (
        (flat - flat.mean(-1, keepdim=True))
        / torch.sqrt(flat.var(-1, unbiased=False, keepdim=True) + 1e-5)
    ).reshape(x.shape)
    torch.testing.assert_close(F.group_norm(x, groups), manual, atol=1e-4, rtol=1e-4)
    assert f"means {n}×{groups}, {c // groups * h * w} values each" in texts
    assert texts.count("N") == texts.count("C") == texts.count("H·W") == 3
    assert f"a batch N = {n} (up) × C = {c} (across) × H·W = {h}·{w} (back)" in texts
    assert f"GroupNorm, G = {groups}" in texts


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"groups": 4}, ValueError, "groups"),
        ({"n": 0}, ValueError, "n"),
        ({"n": 5000}, ValueError, "n"),
        ({"c": 13, "groups": 1}, ValueError, "c"),
        ({"h": 2.0}, TypeError, "h"),
        ({"n": 1, "h": 1, "w": 1}, ValueError, "n \\* h \\* w"),
    ],
)
def test_norm_axes_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        norm_axes(**kwargs)

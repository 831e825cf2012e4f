"""The upsampling diagram's numbers are torch's: interpolate and conv_transpose2d."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnbook.diagrams.style import diagram_texts
from cnnbook.diagrams.upsampling import transposed_stamps, upsampling


def label(v: float) -> str:
    return f"{v:.3g}"


@pytest.mark.parametrize(
    ("x", "kernel", "stride"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], np.ones((3, 3)), 2),
        ([[1.0, -2.0, 0.5], [3.0, 4.0, 0.0]], [[1.0, 2.0], [0.0, -1.0]], 2),
        ([[2.0]], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], 3),
        ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.5, 1.0]] * 3, 1),
    ],
)
def test_stamps_sum_to_conv_transpose2d(x, kernel, stride):
    stamps = transposed_stamps(x, kernel, stride)
    expected = F.conv_transpose2d(
        torch.tensor(x, dtype=torch.float64)[None, None],
        torch.tensor(np.asarray(kernel), dtype=torch.float64)[None, None],
        stride=stride,
    )[0, 0]
    assert np.allclose(stamps.sum(axis=(0, 1)), expected.numpy())
    # each stamp is one input value times the kernel, at its own offset
    i, j = len(x) - 1, len(x[0]) - 1
    k = np.asarray(kernel)
    block = stamps[i, j, i * stride : i * stride + k.shape[0], j * stride : j * stride + k.shape[1]]
    assert np.allclose(block, x[i][j] * k)


def test_diagram_writes_torchs_numbers():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    kernel = torch.tensor([[1.0, 2.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 2.0]])
    fig = upsampling(x, kernel, stride=2)
    texts = diagram_texts(fig)
    t = x[None, None]
    nearest = F.interpolate(t, scale_factor=2, mode="nearest")[0, 0]
    bilinear = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)[0, 0]
    total = F.conv_transpose2d(t, kernel[None, None], stride=2)[0, 0]

    def after(title: str, n: int) -> list[str]:
        start = texts.index(title)
        return texts[start - n : start]  # cell_grid writes the numbers, then _grid the title

    assert after("nearest ×2", 16) == [label(v) for v in nearest.flatten().tolist()]
    assert after("bilinear ×2", 16) == [label(v) for v in bilinear.flatten().tolist()]
    assert after("sum of stamps", 25) == [label(v) for v in total.flatten().tolist()]
    assert after("kernel", 9) == [label(v) for v in kernel.flatten().tolist()]
    assert "stride 2: 5×5" in texts
    assert [t for t in texts if "· kernel" in t] == [
        f"x[{i},{j}] · kernel" for i in (0, 1) for j in (0, 1)
    ]
    plt.close(fig)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: upsampling(np.ones((4, 4))), ValueError, "x"),
        (lambda: upsampling(np.ones(3)), ValueError, "x"),
        (lambda: upsampling("12"), TypeError, "x"),
        (lambda: upsampling([[1.0, float("nan")]]), ValueError, "x"),
        (lambda: upsampling(kernel=np.ones((5, 5))), ValueError, "kernel"),
        (lambda: upsampling(stride=0), ValueError, "stride"),
        (lambda: upsampling(stride=4), ValueError, "stride"),
        (lambda: upsampling(stride=2.0), TypeError, "stride"),
        (lambda: transposed_stamps([["a"]], np.ones((2, 2)), 2), TypeError, "x"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
    plt.close("all")

"""cnnbook.diagrams.convolution: every label equals what torch and the library compute."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnbook.arith import Conv, ConvTranspose, Pool, analyze, conv_output_size
from cnnbook.diagrams.convolution import (
    conv_geometry,
    conv_volumes,
    feature_hierarchy,
    im2col_product,
    receptive_field_growth,
)
from cnnbook.diagrams.style import MAX_WIDTH_IN, diagram_texts, fill
from cnnbook.models.lenet import LeNet
from cnnbook.numpy_ops import im2col


def _texts(fig) -> list[str]:
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN
    texts = diagram_texts(fig)
    plt.close(fig)
    return texts


def _shape(t: torch.Tensor | tuple) -> str:
    return "×".join(str(v) for v in tuple(t))


# ----------------------------------------------------------------------------- feature_hierarchy


def test_feature_hierarchy_labels_are_the_forward_shapes():
    torch.manual_seed(0)
    model = LeNet()
    model.train()
    weight_before = model.conv1.weight.detach().clone()
    x = torch.randn(1, 1, 28, 28)
    expected = [_shape(x.shape[1:])]
    with torch.no_grad():
        for i, child in enumerate(model):
            x = child(x)
            if i in (0, 2, 5):
                expected.append(_shape(x.shape[1:]))
    names = ["pixels", "edges", "pooled", "parts"]
    texts = _texts(feature_hierarchy(model, (1, 28, 28), [0, 2, 5], names))
    assert texts == [t for pair in zip(expected, names, strict=True) for t in pair]
    assert model.training, "the model's mode must be restored"
    assert model.conv1.weight.device.type == "cpu"
    assert torch.equal(model.conv1.weight, weight_before)


def test_feature_hierarchy_mobilenet_shapes_without_names():
    from torchvision.models import mobilenet_v2

    features = mobilenet_v2().features
    texts = _texts(feature_hierarchy(features, (3, 96, 96), [1, 3, 6, 13, 17]))
    expected = ["3×96×96", "16×48×48", "24×24×24", "32×12×12", "96×6×6", "320×3×3"]
    assert texts == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": nn.Conv2d(1, 1, 3)}, TypeError, "model"),
        ({"input_shape": (1, 28)}, ValueError, "input_shape"),
        ({"input_shape": (1, 0, 28)}, ValueError, "input_shape"),
        ({"stages": [2, 0]}, ValueError, "stages"),
        ({"stages": [0, 99]}, ValueError, "stages"),
        ({"stages": []}, ValueError, "stages"),
        ({"stages": [8]}, ValueError, "stages"),  # the Flatten: not a (C, H, W) map
        ({"names": ["a"]}, ValueError, "names"),
    ],
)
def test_feature_hierarchy_rejects_bad_input(kwargs, error, match):
    args = {"model": LeNet(), "input_shape": (1, 28, 28), "stages": [0, 2]} | kwargs
    with pytest.raises(error, match=match):
        feature_hierarchy(**args)


# ----------------------------------------------------------------------------- conv_volumes


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "h", "w", "stride", "padding"),
    [(3, 4, 3, 8, 8, 1, 1), (2, 5, 3, 9, 7, 2, 0), (1, 1, 1, 4, 4, 1, 0)],
)
def test_conv_volumes_labels_are_conv2d_shapes(c_in, c_out, k, h, w, stride, padding):
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding)
    out = conv(torch.randn(1, c_in, h, w))
    texts = _texts(conv_volumes(c_in, c_out, k, h, w, stride=stride, padding=padding))
    assert f"input {c_in}×{h}×{w}" in texts
    assert f"weight {_shape(conv.weight.shape)}" in texts
    assert f"output {_shape(out.shape[1:])}" in texts
    assert sum(t.startswith("kernel ") for t in texts) == min(c_out, 3)
    assert ("⋮" in texts) == (c_out > 3)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 4, 3, 8, 8), {}, ValueError, "c_in"),
        ((3, 4, 3, 8, 8.0), {}, TypeError, "w"),
        ((3, 4, 9, 8, 8), {}, ValueError, "k"),
        ((3, 4, 3, 8, 8), {"stride": 0}, ValueError, "stride"),
        ((3, 4, 3, 8, 8), {"padding": -1}, ValueError, "padding"),
    ],
)
def test_conv_volumes_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        conv_volumes(*args, **kwargs)


# ----------------------------------------------------------------------------- im2col_product


@pytest.mark.parametrize(
    ("image", "kernel"),
    [
        (np.arange(1, 10).reshape(3, 3), np.array([[1, 0], [0, -1]])),
        (np.arange(12).reshape(3, 4) % 5, np.array([[2, -1, 1]])),
        (np.array([[1.5, -2.0], [0.25, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.0]])),
    ],
)
def test_im2col_product_numbers_are_the_library_columns(image, kernel):
    texts = _texts(im2col_product(image, kernel))
    cols = im2col(image[None, None].astype(float), kernel.shape)[0]  # (K, L)
    fmt = [f"{v:g}" for v in cols.flatten()]
    at = texts.index("@")
    assert texts[at + 1 : at + 1 + cols.size] == fmt, "cols drawn row by row as im2col's"
    assert texts[at + 1 + cols.size] == f"cols {cols.shape[0]}×{cols.shape[1]}"
    ref = F.conv2d(
        torch.tensor(image, dtype=torch.float64)[None, None],
        torch.tensor(kernel, dtype=torch.float64)[None, None],
    )[0, 0]
    out = [f"{v:g}" for v in ref.flatten().tolist()]
    eq = texts.index("=")
    assert texts[eq + 1 : eq + 1 + len(out)] == out, "the product row equals conv2d"
    assert texts[-1 - len(out) : -1] == out, "and so does the reshaped output map"
    assert texts[-1] == f"output {_shape(ref.shape)}"


@pytest.mark.parametrize(
    ("image", "kernel", "error", "match"),
    [
        ([[1, 2], [3, 4]], np.ones((1, 1)), TypeError, "image"),
        (np.ones((3, 3)), np.ones((4, 1)), ValueError, "kernel"),
        (np.ones((7, 7)), np.ones((2, 2)), ValueError, "image"),
        (np.ones((5, 5)), np.ones((1, 1)), ValueError, "positions"),
        (np.ones((3, 3)), np.ones(2), ValueError, "kernel"),
    ],
)
def test_im2col_product_rejects_bad_input(image, kernel, error, match):
    with pytest.raises(error, match=match):
        im2col_product(image, kernel)


# ----------------------------------------------------------------------------- conv_geometry


@pytest.mark.parametrize(
    ("size", "k", "s", "p", "d"),
    [(5, 3, 2, 1, 1), (7, 3, 1, 0, 2), (5, 3, 1, 0, 1), (6, 2, 2, 0, 1), (4, 3, 1, 2, 3)],
)
def test_conv_geometry_output_size_is_the_formula_and_torch(size, k, s, p, d):
    texts = _texts(conv_geometry(size, k, stride=s, padding=p, dilation=d))
    out = conv_output_size(size, k, s, p, d)
    torch_out = F.conv2d(
        torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d
    ).shape[-1]
    assert out == torch_out
    assert f"output {out}×{out}" in texts
    assert texts[-1].endswith(f"= {out}")
    assert f"input {size}×{size}, padding {p}, stride {s}, dilation {d}" in texts
    span = d * (k - 1) + 1
    assert f"kernel {k}×{k} spans {span}×{span}" in texts


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((12, 3), {"padding": 1}, ValueError, "size"),
        ((3, 5), {}, ValueError, "kernel_size"),
        ((5, 3), {"dilation": 0}, ValueError, "dilation"),
        ((5, "3"), {}, TypeError, "kernel_size"),
    ],
)
def test_conv_geometry_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        conv_geometry(*args, **kwargs)


# ----------------------------------------------------------------------------- receptive field


def _marked_inputs(fig) -> list[int]:
    """Indices of the highlighted units in the bottom (input) row of the drawing."""
    ax = fig.axes[0]
    marked = fill("highlight").lower()
    from matplotlib.colors import to_hex

    rows = [p for p in ax.patches if abs(p.get_y() - 0.4) < 1e-9]
    left = min(p.get_x() for p in rows)
    return sorted(round(p.get_x() - left) for p in rows if to_hex(p.get_facecolor()) == marked)


@pytest.mark.parametrize(
    "specs",
    [
        [Conv(1, 3), Conv(1, 3, stride=2), Conv(1, 3), Conv(1, 3)],
        [Conv(1, 5), Pool(2), Conv(1, 3)],
        [Conv(1, 3, dilation=2), Conv(1, 3)],
    ],
)
def test_receptive_field_growth_matches_analyze_and_autograd(specs):
    fig = receptive_field_growth(specs)
    marked = _marked_inputs(fig)
    texts = _texts(fig)
    reports = analyze(specs, (1, 64, 64))
    rfs = [1] + [r.rf for r in reports]
    assert [t for t in texts if t.startswith("rf ")] == [f"rf {v}" for v in rfs]
    assert marked[-1] - marked[0] + 1 == reports[-1].rf
    # the same set from autograd: which inputs reach the centre output of a 1-D stack
    size = reports[-1].rf + 2 * reports[-1].jump
    layers = []
    for spec in specs:
        if isinstance(spec, Pool):
            layers.append(nn.AvgPool1d(spec.kernel_size))
        else:
            conv = nn.Conv1d(
                1, 1, spec.kernel_size, spec.stride, spec.padding, spec.dilation, bias=False
            )
            nn.init.ones_(conv.weight)
            layers.append(conv)
    x = torch.zeros(1, 1, size, requires_grad=True)
    y = nn.Sequential(*layers)(x)
    y[0, 0, (y.shape[-1] - 1) // 2].backward()
    assert marked == torch.nonzero(x.grad[0, 0]).flatten().tolist()


@pytest.mark.parametrize(
    ("specs", "size", "error", "match"),
    [
        (Conv(1, 3), None, ValueError, "specs"),
        ([ConvTranspose(1, 3)], None, TypeError, r"specs\[0\]"),
        ([Conv(1, 3)], 41, ValueError, "size"),
        ([Conv(1, 5)], 3, ValueError, "layer 0"),
    ],
)
def test_receptive_field_growth_rejects_bad_input(specs, size, error, match):
    with pytest.raises(error, match=match):
        receptive_field_growth(specs, size)

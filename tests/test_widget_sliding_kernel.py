"""Unit and bad-input tests of the sliding-kernel widget (no browser; see test_browser_*)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from browser_utils import assert_self_contained, embedded_data, widget_script

from cnnbook.numpy_ops import conv2d
from cnnbook.widgets._html import json_for_script, new_element_id, read_asset
from cnnbook.widgets.sliding_kernel import EXAMPLE_INPUT, EXAMPLE_KERNEL, SlidingKernel


def torch_conv(image, kernel, stride: int, padding: int, bias: float) -> np.ndarray:
    """Reference: torch.nn.functional.conv2d on one float64 image and kernel -> (H_out, W_out)."""
    x = torch.tensor(np.asarray(image, dtype=np.float64))[None, None]
    w = torch.tensor(np.asarray(kernel, dtype=np.float64))[None, None]
    b = torch.tensor([bias], dtype=torch.float64)
    return F.conv2d(x, w, b, stride=stride, padding=padding)[0, 0].numpy()


def numpy_conv(image, kernel, stride: int, padding: int, bias: float) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64)[None, None]
    w = np.asarray(kernel, dtype=np.float64)[None, None]
    return conv2d(x, w, bias=np.array([bias]), stride=stride, padding=padding)[0, 0]


# ----------------------------------------------------------------------------- the example


def test_example_starts_with_15():
    assert EXAMPLE_INPUT.shape == (5, 5) and EXAMPLE_KERNEL.shape == (3, 3)
    assert np.issubdtype(EXAMPLE_INPUT.dtype, np.integer)
    assert np.issubdtype(EXAMPLE_KERNEL.dtype, np.integer)
    out = torch_conv(EXAMPLE_INPUT, EXAMPLE_KERNEL, stride=1, padding=0, bias=0.0)
    assert out[0, 0] == 15, f"valid cross-correlation at (0, 0) should be 15, got {out[0, 0]}"
    widget = SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL)
    first = widget.data["configs"]["s1p0"]["positions"][0]
    assert first["sum"] == 15 and first["window"] == [0, 0] and first["out"] == [0, 0]
    assert widget.output()[0, 0] == 15


# ----------------------------------------------------------------------------- the numbers


@pytest.mark.parametrize("bias", [0.0, -0.75])
def test_every_offered_pair_matches_numpy_and_torch(bias):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(7, 6))
    kernel = rng.normal(size=(3, 2))
    widget = SlidingKernel(image, kernel, strides=(1, 2, 3), paddings=(0, 1, 2), bias=bias)
    data = embedded_data(widget.to_html())
    assert sorted(data["configs"]) == sorted(f"s{s}p{p}" for s in (1, 2, 3) for p in (0, 1, 2))
    for cfg in data["configs"].values():
        s, p = cfg["stride"], cfg["padding"]
        out = np.array(cfg["output"])
        np.testing.assert_allclose(out, numpy_conv(image, kernel, s, p, bias), atol=1e-12)
        np.testing.assert_allclose(out, torch_conv(image, kernel, s, p, bias), atol=1e-12)
        padded = np.array(cfg["padded"])
        assert padded.shape == (7 + 2 * p, 6 + 2 * p)
        np.testing.assert_array_equal(padded[p : p + 7, p : p + 6], image)
        assert len(cfg["positions"]) == out.size


def test_positions_hold_windows_and_products_in_row_major_order():
    widget = SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL, stride=2, padding=1)
    cfg = widget.data["configs"]["s2p1"]
    padded, out = np.array(cfg["padded"]), np.array(cfg["output"])
    H_out, W_out = out.shape
    assert (H_out, W_out) == (3, 3)  # floor((5 + 2 - 3) / 2) + 1
    expected_order = [[i, j] for i in range(H_out) for j in range(W_out)]
    assert [pos["out"] for pos in cfg["positions"]] == expected_order
    for pos in cfg["positions"]:
        i, j = pos["out"]
        top, left = pos["window"]
        assert (top, left) == (2 * i, 2 * j), "window corner = stride * output position"
        products = np.array(pos["products"])
        np.testing.assert_array_equal(
            products, padded[top : top + 3, left : left + 3] * EXAMPLE_KERNEL
        )
        assert pos["sum"] == pytest.approx(products.sum())
        assert out[i, j] == pytest.approx(pos["sum"])  # no bias here


def test_padding_where_the_kernel_does_not_fit_is_left_out():
    image = np.ones((2, 2))
    widget = SlidingKernel(image, np.ones((4, 4)), padding=1, paddings=(0, 1, 2))
    assert sorted(widget.data["configs"]) == ["s1p1", "s1p2", "s2p1", "s2p2", "s3p1", "s3p2"]


def test_accepts_lists_and_tensors():
    from_lists = SlidingKernel(EXAMPLE_INPUT.tolist(), EXAMPLE_KERNEL.tolist())
    from_tensors = SlidingKernel(torch.tensor(EXAMPLE_INPUT), torch.tensor(EXAMPLE_KERNEL))
    assert from_lists.data == from_tensors.data == SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL).data


# ----------------------------------------------------------------------------- the HTML


def test_html_is_self_contained_and_carries_the_data():
    title = "A <b>bold</b> & title \u00d7"
    html = SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL, title=title).to_html()
    data = assert_self_contained(html, "sliding-kernel", "mountSlidingKernel")
    assert data["title"] == title  # escaped in the HTML, intact after parsing
    assert "<b>" not in html
    assert data["image"] == EXAMPLE_INPUT.tolist()
    assert data["kernel"] == EXAMPLE_KERNEL.tolist()
    assert data["configs"]["s1p0"]["output"][0][0] == 15


def test_contract_hooks_are_in_the_script():
    # the script the figure runs: base.js (shared helpers) and sliding_kernel.js
    js = widget_script(SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL).to_html())
    assert read_asset("sliding_kernel.js") in js
    for hook in (
        '"data-action"',
        '"data-control"',
        '"data-window-row"',
        '"data-window-col"',
        '"data-out-row"',
        '"data-out-col"',
        '"current-value"',
        '"aria-live"',
    ):
        assert hook in js, f"sliding_kernel.js should set {hook}"
    for action in ("back", "step", "play", "reset"):
        assert f'["{action}"' in js


def test_two_instances_get_different_ids():
    a = SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL)
    b = SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL)
    pages = (a.to_html(), a._repr_html_(), b.to_html())
    ids = [re.search(r' id="([^"]+)"', h)[1] for h in pages]
    assert len(set(ids)) == 3, ids
    for element_id in ids:
        assert element_id.startswith("cnnbook-sliding-kernel-")


def test_json_for_script_cannot_close_the_script():
    text = json_for_script({"t": "</script><script>alert(1)</script>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"t": "</script><script>alert(1)</script>&"}
    with pytest.raises(ValueError):
        json_for_script({"x": float("nan")})


def test_html_helpers_reject_bad_names():
    with pytest.raises(ValueError, match="name"):
        read_asset("../_checks.py")
    with pytest.raises(ValueError, match="prefix"):
        new_element_id("1bad id")


# ----------------------------------------------------------------------------- bad input

GOOD = {"image": EXAMPLE_INPUT, "kernel": EXAMPLE_KERNEL}


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"image": np.ones(5)}, ValueError, "image"),
        ({"image": np.ones((2, 5, 5))}, ValueError, "image"),
        ({"kernel": np.ones((1, 3, 3))}, ValueError, "kernel"),
        ({"image": np.zeros((0, 5))}, ValueError, "image"),
        ({"image": "abc"}, TypeError, "image"),
        ({"image": np.array([[1, np.nan], [0, 1]])}, ValueError, "image"),
        ({"kernel": np.array([[1, np.inf], [0, 1]])}, ValueError, "kernel"),
        ({"image": np.ones((5, 5), dtype=bool)}, TypeError, "image"),
        ({"image": [[1, 2], [3]]}, ValueError, "image"),
        ({"image": np.ones((17, 5))}, ValueError, "image"),
        ({"image": torch.ones(5, 5, requires_grad=True)}, TypeError, "image"),
        ({"kernel": np.ones((10, 10))}, ValueError, "kernel"),
        ({"kernel": np.ones((6, 6))}, ValueError, "padding"),
        ({"stride": 4}, ValueError, "stride"),
        ({"stride": 0}, ValueError, "stride"),
        ({"stride": 1.0}, TypeError, "stride"),
        ({"padding": 3}, ValueError, "padding"),
        ({"padding": -1}, ValueError, "padding"),
        ({"strides": ()}, ValueError, "strides"),
        ({"strides": (1, 1)}, ValueError, "strides"),
        ({"strides": (1, 0)}, ValueError, "strides"),
        ({"strides": "12"}, TypeError, "strides"),
        ({"paddings": (0, 99)}, ValueError, "paddings"),
        ({"bias": "1"}, TypeError, "bias"),
        ({"bias": True}, TypeError, "bias"),
        ({"bias": float("nan")}, ValueError, "bias"),
        ({"title": 3}, TypeError, "title"),
        ({"decimals": -1}, ValueError, "decimals"),
        ({"decimals": 9}, ValueError, "decimals"),
        ({"decimals": 2.0}, TypeError, "decimals"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        SlidingKernel(**{**GOOD, **kwargs})


def test_output_rejects_pairs_not_offered():
    widget = SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL, strides=(1, 2))
    assert widget.output(2, 1).shape == (3, 3)
    with pytest.raises(ValueError, match="stride, padding"):
        widget.output(3, 0)

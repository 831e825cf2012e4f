"""Unit and bad-input tests of the upsampling explorer (no browser; see test_browser_*).

Every number in the payload is compared with PyTorch computed here, independently of the
widget's own helpers: conv_transpose2d for the outputs and counts, a hand-written scatter
for the running sums after each stamp, and F.interpolate + conv2d(padding="same") for
resize + conv.
"""

from __future__ import annotations

import base64
import io
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from browser_utils import assert_self_contained, embedded_data, widget_script
from PIL import Image

from cnnbook.widgets._html import MAX_STATIC_PNG_BYTES, read_asset
from cnnbook.widgets.upsampling import (
    EXAMPLE_INPUT,
    UpsamplingExplorer,
    overlap_pattern,
    tent_kernel,
)

T = torch.float64


def torch_transposed(image, kernel, stride: int) -> np.ndarray:
    x = torch.tensor(np.asarray(image, dtype=np.float64))[None, None]
    w = torch.tensor(np.asarray(kernel, dtype=np.float64))[None, None]
    return F.conv_transpose2d(x, w, stride=stride)[0, 0].numpy()


def torch_resize_conv(image, kernel, stride: int) -> np.ndarray:
    x = torch.tensor(np.asarray(image, dtype=np.float64))[None, None]
    w = torch.tensor(np.asarray(kernel, dtype=np.float64))[None, None]
    up = F.interpolate(x, scale_factor=stride, mode="nearest")
    with warnings.catch_warnings():  # even kernels: torch warns that it pads a copy
        warnings.simplefilter("ignore", UserWarning)
        return F.conv2d(up, w, padding="same")[0, 0].numpy()


@pytest.fixture(scope="module")
def widget() -> UpsamplingExplorer:
    return UpsamplingExplorer()


@pytest.fixture(scope="module")
def float_widget() -> UpsamplingExplorer:
    image = np.random.default_rng(0).normal(size=(4, 3))
    kernels = {k: np.random.default_rng(k).normal(size=(k, k)) for k in (1, 2, 3, 4, 5)}
    return UpsamplingExplorer(image, kernels=kernels, decimals=3)


# ----------------------------------------------------------------------------- the numbers


def test_tent_kernel():
    assert tent_kernel(1).tolist() == [[1]]
    assert tent_kernel(3).tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    assert tent_kernel(4)[0].tolist() == [1, 2, 2, 1]
    assert tent_kernel(5)[2, 2] == 9


@pytest.mark.parametrize("which", ["widget", "float_widget"])
def test_payload_equals_torch_for_every_choice(which, request):
    fig = request.getfixturevalue(which)
    data = embedded_data(fig.to_html())  # what the page gets, after JSON
    image = fig.image
    assert sorted(data["configs"]) == sorted(f"k{k}s{s}" for k in range(1, 6) for s in range(1, 5))
    H, W = image.shape
    for k in range(1, 6):
        kernel = np.array(data["kernels"][str(k)])
        np.testing.assert_array_equal(kernel, fig.kernels[k])
        for s in range(1, 5):
            cfg = data["configs"][f"k{k}s{s}"]
            out = np.array(cfg["out"])
            assert out.shape == ((H - 1) * s + k, (W - 1) * s + k)
            np.testing.assert_allclose(out, torch_transposed(image, kernel, s), rtol=0, atol=1e-12)
            counts = np.array(cfg["counts"])
            ones = torch_transposed(np.ones_like(image), np.ones((k, k)), s)
            np.testing.assert_array_equal(counts, ones)
            assert cfg["holes"] == int((counts == 0).sum())
            assert (cfg["holes"] > 0) == (k < s)
            rs = cfg["resize"]
            np.testing.assert_array_equal(
                np.array(rs["upsampled"]),
                F.interpolate(torch.tensor(image)[None, None], scale_factor=s)[0, 0].numpy(),
            )
            np.testing.assert_allclose(
                np.array(rs["out"]), torch_resize_conv(image, kernel, s), rtol=0, atol=1e-12
            )
            rc_counts = np.array(rs["counts"])
            np.testing.assert_array_equal(
                rc_counts, torch_resize_conv(np.ones_like(image), np.ones((k, k)), s)
            )
            assert rc_counts.shape == (H * s, W * s) and rs["taps"] == k * k


def test_stamps_replay_to_the_torch_output(float_widget):
    """Scatter the stamps by hand: each running sum equals the payload's, the last equals torch."""
    image = float_widget.image
    H, W = image.shape
    for key, cfg in float_widget.data["configs"].items():
        k, s = cfg["k"], cfg["s"]
        kernel = float_widget.kernels[k]
        total = np.zeros(((H - 1) * s + k, (W - 1) * s + k))
        covered = np.zeros_like(total)
        assert [st["src"] for st in cfg["stamps"]] == [[i, j] for i in range(H) for j in range(W)]
        for st in cfg["stamps"]:
            i, j = st["src"]
            assert st["at"] == [i * s, j * s]
            np.testing.assert_allclose(st["values"], image[i, j] * kernel, rtol=0, atol=1e-12)
            total[i * s : i * s + k, j * s : j * s + k] += image[i, j] * kernel
            covered[i * s : i * s + k, j * s : j * s + k] += 1
            window = total[i * s : i * s + k, j * s : j * s + k]
            np.testing.assert_allclose(st["after"], window, rtol=0, atol=1e-12, err_msg=key)
            counts = covered[i * s : i * s + k, j * s : j * s + k]
            np.testing.assert_array_equal(st["after_counts"], counts, err_msg=key)
        np.testing.assert_allclose(total, np.array(cfg["out"]), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("k", "s"), [(k, s) for k in range(1, 6) for s in range(1, 5)])
def test_overlap_pattern_names_what_the_counts_show(k, s):
    # a large input, so that an interior exists for every choice
    counts = torch_transposed(np.ones((9, 9)), np.ones((k, k)), s)
    inner = counts[k + s : -(k + s), k + s : -(k + s)]
    assert inner.size
    pattern = overlap_pattern(k, s)
    if pattern == "holes":
        assert inner.min() == 0
    elif pattern == "checkerboard":
        assert inner.min() > 0 and len(np.unique(inner)) > 1
    else:
        assert np.unique(inner).tolist() == [(k // s) ** 2]
    # resize + conv is uniform inside for every choice
    rc = torch_resize_conv(np.ones((9, 9)), np.ones((k, k)), s)
    inside = rc[k // 2 : rc.shape[0] - k // 2, k // 2 : rc.shape[1] - k // 2]
    assert inside.size and np.unique(inside).tolist() == [k * k]


def test_chapter_example_k3_s2_is_a_checkerboard_of_1_2_4(widget):
    counts = np.array(widget.config(3, 2)["counts"])
    assert counts.shape == (7, 7) and sorted(np.unique(counts).tolist()) == [1, 2, 4]
    assert widget.config(3, 2)["pattern"] == "checkerboard"
    assert widget.config(4, 2)["pattern"] == "even" and widget.config(1, 3)["pattern"] == "holes"


def test_slider_limits(widget):
    one = widget.config(1, 1)  # k = 1, s = 1: the output is the input
    np.testing.assert_array_equal(one["out"], EXAMPLE_INPUT)
    assert np.array(one["counts"]).tolist() == np.ones((3, 3), int).tolist()
    np.testing.assert_array_equal(one["resize"]["out"], EXAMPLE_INPUT)
    gaps = widget.config(1, 4)  # k < s: isolated pixels, zero counts between them
    counts = np.array(gaps["counts"])
    assert counts.shape == (9, 9) and counts.sum() == 9 and gaps["holes"] == 72
    big = widget.config(5, 4)
    assert np.array(big["out"]).shape == (13, 13) and np.array(big["counts"]).max() == 4


def test_one_by_one_input():
    fig = UpsamplingExplorer([[2.5]], kernel_size=2, stride=3, decimals=1)
    cfg = fig.config()
    np.testing.assert_array_equal(cfg["out"], 2.5 * tent_kernel(2))
    assert len(cfg["stamps"]) == 1 and cfg["stamps"][0]["after"] == cfg["out"]
    assert np.array(cfg["resize"]["out"]).shape == (3, 3)


def test_ones_kernels_and_fewer_choices():
    fig = UpsamplingExplorer(kernel_sizes=(2, 3), strides=(2,), kernel_size=2, kernels="ones")
    assert sorted(fig.data["configs"]) == ["k2s2", "k3s2"]
    ones = np.ones((3, 3))
    np.testing.assert_array_equal(fig.config(3, 2)["out"], torch_transposed(EXAMPLE_INPUT, ones, 2))
    with pytest.raises(ValueError, match="kernel_size"):
        fig.config(4, 2)


# ----------------------------------------------------------------------------- the HTML


def test_html_is_self_contained_and_small():
    # its build time is measured by benchmarks/library_speed.py, not asserted here
    html = UpsamplingExplorer().to_html()
    assert_self_contained(html, "upsampling", "mountUpsampling")
    assert len(html) < 300_000
    assert read_asset("upsampling.js") in widget_script(html)


def test_bundle_has_a_png_of_the_first_state(widget):
    bundle = widget._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    raw = base64.b64decode(bundle["image/png"])
    assert 1_000 < len(raw) <= MAX_STATIC_PNG_BYTES
    image = Image.open(io.BytesIO(raw))
    assert 250 <= image.size[0] <= 900 and 120 <= image.size[1] <= 700
    assert bundle["image/png"] in bundle["text/html"]
    other = UpsamplingExplorer(kernel_size=4)
    assert other.static_png() != widget.static_png()  # the picture follows the first choice


def test_contract_hooks_are_in_the_script(widget):
    js = read_asset("upsampling.js")
    for hook in (
        '"kernel-size"',
        '"stride"',
        '"output-grid"',
        '"counts-grid"',
        '"resize-output-grid"',
        '"resize-counts-grid"',
        '"data-stamp"',
        '"data-complete"',
        "stepper(",
    ):
        assert hook in js, f"upsampling.js should use {hook}"


def test_repr(widget):
    assert repr(widget).startswith("UpsamplingExplorer(image 3x3, kernel_size=3, stride=2")
    assert json.loads(json.dumps(widget.data)) == widget.data


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"image": np.zeros((5, 3))}, ValueError, "image"),
        ({"image": np.zeros((0, 3))}, ValueError, "image"),
        ({"image": np.zeros(3)}, ValueError, "image"),
        ({"image": [[1, 2], [3]]}, ValueError, "image"),
        ({"image": [[1, np.nan]]}, ValueError, "image"),
        ({"image": "abc"}, TypeError, "image"),
        ({"kernel_size": 6}, ValueError, "kernel_size"),
        ({"kernel_size": 3.0}, TypeError, "kernel_size"),
        ({"kernel_size": 0}, ValueError, "kernel_size"),
        ({"stride": 0}, ValueError, "stride"),
        ({"stride": True}, TypeError, "stride"),
        ({"stride": 3, "strides": (1, 2)}, ValueError, "stride"),
        ({"kernel_sizes": (1, 6)}, ValueError, "kernel_sizes"),
        ({"kernel_sizes": ()}, ValueError, "kernel_sizes"),
        ({"kernel_sizes": (3, 3)}, ValueError, "kernel_sizes"),
        ({"kernel_sizes": 3}, TypeError, "kernel_sizes"),
        ({"strides": (0, 1)}, ValueError, "strides"),
        ({"strides": (1, 5)}, ValueError, "strides"),
        ({"kernels": "gauss"}, ValueError, "kernels"),
        ({"kernels": [np.ones((3, 3))]}, TypeError, "kernels"),
        ({"kernels": {3: np.ones((3, 3))}}, ValueError, "kernels"),
        (
            {"kernels": {k: np.ones((3, 3)) for k in range(1, 6)}},
            ValueError,
            r"kernels\[1\]",
        ),
        (
            {"kernels": {**{k: np.ones((k, k)) for k in range(1, 6)}, 2: [[1, np.inf], [0, 0]]}},
            ValueError,
            r"kernels\[2\]",
        ),
        ({"title": 3}, TypeError, "title"),
        ({"decimals": -1}, ValueError, "decimals"),
        ({"decimals": 9}, ValueError, "decimals"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        UpsamplingExplorer(**kwargs)


def test_helpers_check_their_arguments():
    with pytest.raises(ValueError, match="k"):
        tent_kernel(0)
    with pytest.raises(TypeError, match="stride"):
        overlap_pattern(3, 2.0)
    with pytest.raises(ValueError, match="kernel_size"):
        overlap_pattern(0, 2)

"""Unit and bad-input tests of the receptive-field widget (no browser; see test_browser_*).

The precomputed table is checked against cnnbook.arith.analyze and PyTorch shapes, and
the theoretical fields against the support of real gradients.
"""

from __future__ import annotations

import base64
import itertools
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from browser_utils import assert_self_contained, embedded_data, widget_script

from cnnbook.arith import analyze
from cnnbook.photos import sample_photo
from cnnbook.widgets import ReceptiveField as ExportedReceptiveField
from cnnbook.widgets._html import pack_uint, read_asset
from cnnbook.widgets.receptive_field import (
    DEFAULT_OPTIONS,
    DEFAULT_PRESETS,
    MAX_STACKS,
    MENU,
    ReceptiveField,
    measure_erf,
    stack_index,
    stack_specs,
)
from cnnbook.widgets.static import field_box as _field_box


def unpack(packed: dict) -> np.ndarray:
    """Inverse of _html.pack_uint (what the script's unpack does)."""
    dtype = {"uint8": "u1", "uint16": "<u2"}[packed["dtype"]]
    return np.frombuffer(base64.b64decode(packed["b64"]), dtype=dtype).astype(np.int64)


def all_stacks(options, max_layers):
    for depth in range(max_layers + 1):
        yield from itertools.product(options, repeat=depth)


def sample_stacks(options, max_layers, n, seed=0):
    """Every stack of depth <= 3 and ``n`` random deeper ones."""
    stacks = list(all_stacks(options, min(3, max_layers)))
    deeper = [s for s in all_stacks(options, max_layers) if len(s) > 3]
    return stacks + random.Random(seed).sample(deeper, min(n, len(deeper)))


def torch_forward(x: torch.Tensor, keys, linear: bool = False) -> torch.Tensor:
    """The stack as PyTorch runs it: x (1, C, H, W) -> (1, C, H_out, W_out).

    linear=True: all-ones kernels, no ReLU and average instead of max pooling, so that
    every path from a pixel to a unit carries a positive gradient.
    """
    for key in keys:
        layer = MENU[key]
        if layer.kind == "pool":
            pool = F.avg_pool2d if linear else F.max_pool2d
            x = pool(x, layer.kernel, layer.stride)
            continue
        w = torch.ones(1, x.shape[1], layer.kernel, layer.kernel, dtype=x.dtype)
        padding = layer.dilation * (layer.kernel - 1) // 2
        x = F.conv2d(x, w, stride=layer.stride, padding=padding, dilation=layer.dilation)
        if not linear:
            x = F.relu(x)
    return x


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return sample_photo("chelsea")


def noise(size: int) -> np.ndarray:
    """A random grey image: every stack has a non-zero gradient on it."""
    return np.random.default_rng(size).integers(0, 256, (size, size)).astype(np.uint8)


@pytest.fixture(scope="module")
def widget(photo) -> ReceptiveField:
    return ReceptiveField(photo)


@pytest.fixture(scope="module")
def small(photo) -> ReceptiveField:
    """A 20 x 20 photo: deep downsampling stacks run out of pixels and have no output."""
    return ReceptiveField(photo, size=20, presets={})


# ----------------------------------------------------------------------------- the table


def test_table_covers_every_stack_in_tree_order(widget):
    n = len(DEFAULT_OPTIONS)
    assert len(widget.table["rf"]) == sum(n**d for d in range(7)) == 5461
    for i, keys in enumerate(sorted(all_stacks(DEFAULT_OPTIONS, 2), key=len)):
        assert stack_index(keys, DEFAULT_OPTIONS) in range(len(widget.table["rf"]))
        if len(keys) <= 1:
            assert stack_index(keys, DEFAULT_OPTIONS) == i
    # stack i followed by option c is i * n + 1 + c
    parent = stack_index(("conv3", "pool2"), DEFAULT_OPTIONS)
    assert stack_index(("conv3", "pool2", "dil3"), DEFAULT_OPTIONS) == parent * n + 1 + 1


@pytest.mark.parametrize("which", ["widget", "small"])
def test_table_equals_arith_analyze(which, request):
    fig: ReceptiveField = request.getfixturevalue(which)
    size = fig.size
    invalid = 0
    for keys in sample_stacks(DEFAULT_OPTIONS, 6, n=300):
        info = fig.stack_info(list(keys))
        if not keys:
            assert info == {"out": size, "rf": 1, "jump": 1, "start": 0.0}
            continue
        try:
            last = analyze(stack_specs(keys), (3, size, size))[-1]
        except ValueError:
            assert info["out"] == 0, f"{keys}: arith finds no output, the figure shows one"
            invalid += 1
            continue
        expected = {"out": last.out_shape[1], "rf": last.rf, "jump": last.jump}
        assert last.out_shape[1] == last.out_shape[2]
        assert {k: info[k] for k in expected} == expected, keys
        assert info["start"] == pytest.approx(last.start), keys
    assert (invalid > 0) == (which == "small"), "only the 20-pixel photo runs out of pixels"


def test_embedded_table_equals_the_computed_one(widget):
    data = embedded_data(widget.to_html())
    for name, values in widget.table.items():
        np.testing.assert_array_equal(unpack(data["table"][name]), values)
    np.testing.assert_array_equal(unpack(data["photo"]).reshape(64, 64, 3), widget.photo)
    assert [o["key"] for o in data["options"]] == list(DEFAULT_OPTIONS)
    assert data["layers"] == ["conv3", "conv3", "pool2", "conv3"]


@pytest.mark.parametrize("size", [20, 64])
def test_output_sizes_equal_torch_shapes(size, one_thread):
    fig = ReceptiveField(noise(size), size=size, presets={})
    x = torch.zeros(1, 1, size, size)
    for keys in sample_stacks(DEFAULT_OPTIONS, 6, n=100, seed=size):
        try:
            shape = torch_forward(x, keys).shape
            out = shape[-1]
            assert shape[-2] == out
        except RuntimeError:
            out = 0
        assert fig.stack_info(list(keys))["out"] == out, keys


def gradient_support(keys, unit, size) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pixels with a non-zero gradient for one unit."""
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    torch_forward(x, keys, linear=True)[0, 0, unit[0], unit[1]].backward()
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    return rows.min(), cols.min(), rows.max(), cols.max()


@pytest.mark.parametrize(
    "options", [DEFAULT_OPTIONS, ("conv3", "conv5", "dil3", "s2conv3", "pool2")]
)
def test_fields_bound_the_support_of_real_gradients(options, one_thread):
    # Exactly, for a unit whose field lies inside the photo. Near the border, taps that
    # land in the zero padding reach nothing, so the support may be smaller than the
    # clipped field (never larger).
    max_layers = 6 if len(options) == 4 else 5
    stacks = random.Random(len(options)).sample(list(all_stacks(options, max_layers))[1:], 40)
    for size in (24, 96):
        fig = ReceptiveField(noise(size), size=size, options=options, max_layers=max_layers)
        for keys in stacks:
            info = fig.stack_info(list(keys))
            if info["out"] == 0:
                continue
            last = info["out"] - 1
            for unit in {(0, 0), (last // 2, last // 2), (last, 0)}:
                support = gradient_support(keys, unit, size)
                box = _field_box(info["rf"], info["jump"], info["start"], unit, size)
                assert box[:2] <= support[:2] and support[2:] <= box[2:], (keys, unit, size)
                half = (info["rf"] - 1) / 2
                centre = np.array(unit) * info["jump"] + info["start"]
                if np.all(centre - half >= 1) and np.all(centre + half <= size - 2):
                    assert support == box, f"{keys} unit {unit}: {support} != field {box}"


# ----------------------------------------------------------------------------- effective RF


def test_presets_carry_an_effective_field_inside_the_theoretical_one(widget):
    names = [p["name"] for p in widget.data["presets"]]
    assert names == list(DEFAULT_PRESETS), "the first stack is a preset already"
    for preset in widget.data["presets"]:
        erf, info = preset["erf"], widget.stack_info(preset["keys"])
        assert preset["index"] == stack_index(preset["keys"], DEFAULT_OPTIONS)
        assert erf["unit"] == [info["out"] // 2] * 2
        assert erf["centre"] == [info["start"] + erf["unit"][0] * info["jump"]] * 2
        assert 1 <= erf["core_side"] <= erf["side"] <= info["rf"], preset["name"]
        box = _field_box(info["rf"], info["jump"], info["start"], tuple(erf["unit"]), 64)
        assert (erf["top"], erf["left"]) == box[:2]
        assert (erf["height"], erf["width"]) == (box[2] - box[0] + 1, box[3] - box[1] + 1)
        values = unpack(erf["map"])
        assert values.size == erf["height"] * erf["width"] and values.max() == 255
    sides = {p["name"]: p["erf"]["core_side"] for p in widget.data["presets"]}
    # deeper stacks spread the gradient further, but slower than the theoretical field
    assert sides["one 3\u00d73 conv"] <= sides["three 3\u00d73 convs"] < sides["six 3\u00d73 convs"]
    assert sides["six 3\u00d73 convs"] < 13


def test_measure_erf_is_deterministic_zero_outside_the_field_and_leaves_no_state(widget):
    keys = ("conv3", "dil3", "pool2", "conv3")
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    first = measure_erf(widget.photo, keys)
    second = measure_erf(widget.photo, keys)
    assert torch.equal(torch.get_rng_state(), rng_state), "no global random state used"
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(first["map"], second["map"])
    info = widget.stack_info(list(keys))
    top, left, bottom, right = _field_box(
        info["rf"], info["jump"], info["start"], first["unit"], 64
    )
    outside = first["map"].copy()
    outside[top : bottom + 1, left : right + 1] = 0
    assert outside.max() == 0 and first["map"].max() == 1.0
    assert first["core_side"] <= first["side"] <= info["rf"]


def test_custom_presets_and_a_first_stack_that_is_not_one():
    image = np.random.default_rng(0).random((40, 50))
    fig = ReceptiveField(
        image, layers=["conv3", ("conv", 3, 2, 1)], presets={"deep": ["conv3"] * 4}
    )
    names = [p["name"] for p in fig.data["presets"]]
    assert names == ["this figure's first stack", "deep"]
    assert fig.data["presets"][0]["keys"] == ["conv3", "s2conv3"]
    assert all(p["erf"] is not None for p in fig.data["presets"])


def test_a_preset_without_output_has_no_effective_field(photo):
    fig = ReceptiveField(photo, size=20, presets={"too deep": ["pool2"] * 5})
    preset = fig.data["presets"][-1]
    assert fig.stack_info(preset["keys"])["out"] == 0 and preset["erf"] is None


# ----------------------------------------------------------------------------- the photo


def test_photo_is_centre_cropped_and_resized():
    grey = np.zeros((60, 100), dtype=np.uint8)
    grey[:, 20:80] = np.linspace(100, 200, 60)  # the centre square is bright, the sides dark
    fig = ReceptiveField(grey, size=30, presets={})
    assert fig.photo.shape == (30, 30, 3) and fig.photo.dtype == np.uint8
    assert fig.photo.min() >= 100, "the dark side strips are cropped away"
    assert (fig.photo == fig.photo[:, :, :1]).all(), "grey becomes three equal channels"
    ramp = np.linspace(0.25, 0.75, 32)[None, :, None] * np.ones((32, 32, 3))
    floats = ReceptiveField(ramp, size=16, presets={})
    assert abs(floats.photo.mean() - 127.5) < 2
    assert fig.data["scale"] == round(256 / 30) and floats.data["scale"] == 16


# ----------------------------------------------------------------------------- the HTML


def test_html_is_self_contained_and_small(widget):
    html = widget.to_html()
    assert_self_contained(html, "receptive-field", "mountReceptiveField")
    assert len(json.dumps(widget.data)) < 80_000


def test_contract_hooks_are_in_the_script(widget):
    # the script the figure runs: base.js (shared helpers) and receptive_field.js
    js = widget_script(widget.to_html())
    assert read_asset("receptive_field.js") in js
    for hook in (
        '"data-control"',
        '"preset"',
        '"layer-"',
        '"show-erf"',
        '"rf-box"',
        '"output-map"',
        '"rf-stats"',
        '"erf-stats"',
        '"layer-table"',
        '"error"',
        '"data-unit-row"',
        '"data-rf"',
        '"aria-live"',
    ):
        assert hook in js, f"receptive_field.js should use {hook}"


def test_pack_uint():
    assert unpack(pack_uint([0, 255, 3])).tolist() == [0, 255, 3]
    packed = pack_uint(np.array([[1, 300], [65535, 0]]))
    assert packed["dtype"] == "uint16" and unpack(packed).tolist() == [1, 300, 65535, 0]
    assert pack_uint([])["dtype"] == "uint8"
    with pytest.raises(ValueError, match="values"):
        pack_uint([-1])
    with pytest.raises(ValueError, match="values"):
        pack_uint([70000])
    with pytest.raises(TypeError, match="values"):
        pack_uint([0.5])


def test_exported_and_repr(widget):
    assert ExportedReceptiveField is ReceptiveField
    assert repr(widget).startswith("ReceptiveField(photo 64x64, layers=['conv3', 'conv3'")


# ----------------------------------------------------------------------------- bad input

GOOD_IMAGE = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"image": [[1, 2], [3, 4]]}, TypeError, "image"),
        ({"image": np.zeros((32, 32, 4), dtype=np.uint8)}, ValueError, "image"),
        ({"image": np.zeros(32, dtype=np.uint8)}, ValueError, "image"),
        ({"image": np.zeros((8, 40), dtype=np.uint8)}, ValueError, "image"),
        ({"image": np.full((32, 32), 300)}, ValueError, "image"),
        ({"image": np.full((32, 32), 1.5)}, ValueError, "image"),
        ({"image": np.full((32, 32), np.nan)}, ValueError, "image"),
        ({"image": np.zeros((32, 32), dtype=bool)}, TypeError, "image"),
        ({"image": np.full((32, 32), 7, dtype=np.uint8)}, ValueError, "constant"),
        ({"size": 8}, ValueError, "size"),
        ({"size": 200}, ValueError, "size"),
        ({"size": 64.0}, TypeError, "size"),
        ({"max_layers": 0}, ValueError, "max_layers"),
        ({"max_layers": 7}, ValueError, "max_layers"),
        ({"options": ()}, ValueError, "options"),
        ({"options": "conv3"}, TypeError, "options"),
        ({"options": ("conv3", "conv7")}, ValueError, "options"),
        ({"options": ("conv3", "conv3")}, ValueError, "options"),
        ({"options": tuple(MENU), "max_layers": 6}, ValueError, "max_layers"),
        ({"layers": "conv3"}, TypeError, "layers"),
        ({"layers": ["conv3"] * 7}, ValueError, "layers"),
        ({"layers": [("conv", 7, 1, 1)]}, ValueError, r"layers\[0\]"),
        ({"layers": ["conv5"]}, ValueError, r"layers\[0\]"),
        ({"layers": ["bogus"]}, ValueError, r"layers\[0\]"),
        ({"layers": [3]}, TypeError, r"layers\[0\]"),
        ({"presets": ["conv3"]}, TypeError, "presets"),
        ({"presets": {"": ["conv3"]}}, TypeError, "presets"),
        ({"presets": {"x": ["conv5"]}}, ValueError, "presets"),
        ({"presets": {f"p{i}": ["conv3"] * (i % 6 + 1) for i in range(12)}}, ValueError, "presets"),
        ({"title": 1}, TypeError, "title"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        ReceptiveField(**{"image": GOOD_IMAGE, "size": 32, **kwargs})


def test_limits_are_documented_numbers():
    assert sum(len(DEFAULT_OPTIONS) ** d for d in range(7)) <= MAX_STACKS
    assert (
        sum(len(MENU) ** d for d in range(6)) <= MAX_STACKS < sum(len(MENU) ** d for d in range(7))
    )


def test_stack_info_rejects_stacks_outside_the_menu(widget):
    with pytest.raises(ValueError, match="keys"):
        widget.stack_info(["conv5"])
    with pytest.raises(ValueError, match="keys"):
        widget.stack_info(["conv3"] * 7)

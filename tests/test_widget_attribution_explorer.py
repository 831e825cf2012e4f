"""Unit and bad-input tests of the attribution explorer (no browser; see test_browser_*).

The stored maps are checked against the library: every dequantised Grad-CAM map lies
within one quantisation step of ``cnnbook.interpret.grad_cam`` at the pixels it keeps,
every feature map within one step of the layer's output (a forward hook). A small
random-weight network under a seed keeps the tests fast; a random-weight MobileNetV2
(the chapter's architecture, same payload size as the pretrained one: nothing is
compressed) checks the chapter's configuration against the page-weight budget.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from browser_utils import assert_self_contained, embedded_data, widget_script
from torch import nn

from cnnbook.interpret import grad_cam, preprocess
from cnnbook.photos import sample_photo
from cnnbook.widgets._html import MAX_STATIC_PNG_BYTES, json_for_script, read_asset
from cnnbook.widgets.attribution_explorer import (
    MAX_PAYLOAD_BYTES,
    AttributionExplorer,
    attribution_maps,
)

LAYERS = ["stem", "mid", "last"]
SIZE, MAP = 64, 16
STEP = 1 / 255


def tiny_model(seed: int = 0, classes: int = 10) -> nn.Module:
    """Three conv stages (32, 16, 8 pixels for a 64-pixel input) and a linear head."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            stem=nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU()),
            mid=nn.Sequential(nn.Conv2d(8, 12, 3, 2, 1), nn.ReLU()),
            last=nn.Sequential(nn.Conv2d(12, 16, 3, 2, 1), nn.ReLU()),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(16, classes),
        )
    ).eval()


def unpack(packed: dict) -> np.ndarray:
    assert packed["dtype"] == "uint8"
    return np.frombuffer(base64.b64decode(packed["b64"]), dtype=np.uint8).astype(np.float64)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {"chelsea": sample_photo("chelsea"), "camera": sample_photo("camera")}


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_model()


@pytest.fixture(scope="module")
def widget(model, photos) -> AttributionExplorer:
    return AttributionExplorer(model, photos, LAYERS, input_size=SIZE, map_size=MAP)


# ----------------------------------------------------------------------------- the numbers


def test_attribution_maps_equal_grad_cam(model, photos, one_thread):
    x = preprocess(photos["chelsea"], SIZE)
    result = attribution_maps(model, x, LAYERS, 3)
    with torch.no_grad():
        probabilities = model(x).softmax(dim=1)[0]
    expected = probabilities.topk(3)
    assert [c for c, _ in result["top"]] == expected.indices.tolist()
    np.testing.assert_allclose([p for _, p in result["top"]], expected.values, rtol=1e-6)
    for layer in LAYERS:
        assert result["cams"][layer].shape == (3, SIZE, SIZE)
        for rank, (c, _) in enumerate(result["top"]):
            library = grad_cam(model, layer, x, c)
            np.testing.assert_allclose(result["cams"][layer][rank], library, atol=1e-6)


def test_stored_maps_within_one_step_of_grad_cam(widget, model, photos, one_thread):
    data = embedded_data(widget.to_html())
    rows = np.arange(MAP) * (SIZE // MAP) + (SIZE // MAP) // 2
    assert [p["name"] for p in data["photos"]] == list(photos)
    checked = 0
    for entry in data["photos"]:
        x = preprocess(photos[entry["name"]], SIZE)
        for i, layer in enumerate(LAYERS):
            for rank, c in enumerate(entry["classes"]):
                library = grad_cam(model, layer, x, c["index"])[np.ix_(rows, rows)]
                stored = unpack(entry["cams"][i][rank]).reshape(MAP, MAP) / 255
                assert np.abs(stored - library).max() <= STEP, (entry["name"], layer, rank)
                np.testing.assert_array_equal(
                    widget.grad_cam_map(entry["name"], layer, rank), stored
                )
                checked += 1
    assert checked == 2 * 3 * 3
    # the maps differ between layers and classes: a lookup bug would show
    first = data["photos"][0]["cams"]
    assert first[0][0]["b64"] != first[2][0]["b64"] != first[2][1]["b64"]


def test_classes_and_probabilities_equal_the_model(widget, model, photos):
    data = widget.data
    for entry in data["photos"]:
        with torch.no_grad():
            p = model(preprocess(photos[entry["name"]], SIZE)).softmax(dim=1)[0]
        values, indices = p.topk(3)
        assert [c["index"] for c in entry["classes"]] == indices.tolist()
        for c, v in zip(entry["classes"], values.tolist(), strict=True):
            assert c["probability"] == pytest.approx(v, rel=1e-6)
            assert c["text"] == f"{v:.1%}"
            assert c["name"] == f"class {c['index']}"


def test_feature_maps_within_one_step_of_the_layer_output(widget, model, photos):
    outputs = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, out[0].detach().numpy())
        )
        for name in LAYERS
    ]
    try:
        for entry in widget.data["photos"]:
            with torch.no_grad():
                model(preprocess(photos[entry["name"]], SIZE))
            for i, layer in enumerate(LAYERS):
                A = outputs[layer]  # (K, h, w)
                f = entry["features"][i]
                assert (f["height"], f["width"]) == A.shape[1:]
                indices = [ch["index"] for ch in f["channels"]]
                means = A.mean(axis=(1, 2))
                assert len(indices) == 4 and sorted(means[indices]) == sorted(np.sort(means)[-4:])
                for ch in f["channels"]:
                    lo, hi = ch["lo"], ch["hi"]
                    assert (lo, hi) == pytest.approx((A[ch["index"]].min(), A[ch["index"]].max()))
                    values = lo + unpack(ch["map"]).reshape(A.shape[1:]) * (hi - lo) / 255
                    assert np.abs(values - A[ch["index"]]).max() <= (hi - lo) / 255 + 1e-6
                    assert ch["text"] == f"{lo:.2f} to {hi:.2f}"
    finally:
        for hook in hooks:
            hook.remove()


def test_layers_and_colormap(widget):
    data = widget.data
    assert [layer["name"] for layer in data["layers"]] == LAYERS
    assert [layer["shape"] for layer in data["layers"]] == [[8, 32, 32], [12, 16, 16], [16, 8, 8]]
    import matplotlib

    lut = unpack(data["cmap"]["rgb"]).reshape(256, 3)
    expected = np.round(matplotlib.colormaps["inferno"](np.arange(256))[:, :3] * 255)
    np.testing.assert_array_equal(lut, expected)
    for entry in data["photos"]:
        assert entry["uri"].startswith("data:image/jpeg;base64,")


def test_model_mode_and_threads_are_restored(photos):
    model = tiny_model(1).train()
    threads = torch.get_num_threads()
    AttributionExplorer(model, {"c": photos["camera"]}, ["last"], input_size=32, map_size=8)
    assert model.training and all(m.training for m in model.modules())
    assert torch.get_num_threads() == threads


def test_one_photo_one_layer_one_class_one_channel(model):
    grey = np.random.default_rng(3).integers(0, 256, (40, 50)).astype(np.uint8)
    fig = AttributionExplorer(
        model, {"noise": grey}, ["mid"], classes=1, channels=1, input_size=32, map_size=32
    )
    (entry,) = fig.data["photos"]
    assert len(entry["classes"]) == 1 and len(entry["cams"]) == 1 and len(entry["cams"][0]) == 1
    assert len(entry["features"][0]["channels"]) == 1
    library = grad_cam(model, "mid", preprocess(grey, 32), entry["classes"][0]["index"])
    assert np.abs(unpack(entry["cams"][0][0]).reshape(32, 32) / 255 - library).max() <= STEP
    assert_self_contained(fig.to_html(), "attribution-explorer", "mountAttributionExplorer")


def test_class_names_are_used(model, photos):
    names = [f"thing {i}" for i in range(10)]
    fig = AttributionExplorer(
        model, {"c": photos["chelsea"]}, ["last"], input_size=32, map_size=8, class_names=names
    )
    for c in fig.data["photos"][0]["classes"]:
        assert c["name"] == names[c["index"]]


# ----------------------------------------------------------------------------- the HTML


def test_html_is_self_contained_with_its_picture(widget):
    html = widget.to_html()
    data = assert_self_contained(html, "attribution-explorer", "mountAttributionExplorer")
    assert data == json.loads(json.dumps(widget.data))
    assert read_asset("attribution_explorer.js") in widget_script(html)
    png = widget.static_png()
    assert png.startswith(b"\x89PNG") and 1_000 < len(png) <= MAX_STATIC_PNG_BYTES
    bundle = widget._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    assert base64.b64decode(bundle["image/png"]) == png
    assert repr(widget).startswith("AttributionExplorer(photos=['chelsea', 'camera']")


def test_contract_hooks_are_in_the_script():
    js = read_asset("attribution_explorer.js")
    hooks = ('"photo"', '"layer"', '"class"', '"mode-"', '"heat"', '"channel"', '"probability"',
             '"class-name"', '"data-mode"', '"data-class"', "statusLine()")  # fmt: skip
    for hook in hooks:
        assert hook in js, f"attribution_explorer.js should use {hook}"


def test_chapter_configuration_fits_the_budgets(photos, one_thread):
    """Three photos x three stages x top 3 on MobileNetV2's architecture (random weights)."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(weights=None).eval()
    chosen = {name: sample_photo(name) for name in ("chelsea", "coffee", "astronaut")}
    # its build time is measured by benchmarks/library_speed.py, not asserted here
    fig = AttributionExplorer(net, chosen, ["features.18", "features.13", "features.6"])
    html = fig.to_html()
    assert len(json_for_script(fig.data)) <= MAX_PAYLOAD_BYTES
    assert len(html) <= 700_000, f"{len(html):,} characters of HTML"
    assert fig.data["layers"][0]["shape"] == [1280, 7, 7]


def test_payload_over_the_budget_is_refused(model):
    rng = np.random.default_rng(0)
    many = {f"p{i}": rng.integers(0, 256, (64, 64, 3)).astype(np.uint8) for i in range(6)}
    with pytest.raises(ValueError, match="fewer photos"):
        AttributionExplorer(
            model,
            many,
            LAYERS,
            classes=5,
            input_size=128,
            map_size=128,
        )


# ----------------------------------------------------------------------------- bad input

GOOD = {"a": np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8)}


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"model": "net"}, TypeError, "model"),
        ({"photos": [GOOD["a"]]}, TypeError, "photos"),
        ({"photos": {}}, ValueError, "photos"),
        ({"photos": {f"p{i}": GOOD["a"] for i in range(7)}}, ValueError, "photos"),
        ({"photos": {"": GOOD["a"]}}, TypeError, "photos"),
        ({"photos": {"a": "cat.jpg"}}, TypeError, "photos"),
        ({"photos": {"a": np.zeros((4, 4, 3), np.uint8)}}, ValueError, "photos"),
        ({"layers": "mid"}, TypeError, "layers"),
        ({"layers": []}, ValueError, "layers"),
        ({"layers": ["mid", "mid"]}, ValueError, "layers"),
        ({"layers": ["nope"]}, ValueError, "nope"),
        ({"layers": [3]}, TypeError, "layers"),
        ({"layers": ["fc"]}, ValueError, "fc"),
        ({"layers": ["a", "b", "c", "d", "e"]}, ValueError, "layers"),
        ({"classes": 0}, ValueError, "classes"),
        ({"classes": 6}, ValueError, "classes"),
        ({"classes": 2.0}, TypeError, "classes"),
        ({"channels": 0}, ValueError, "channels"),
        ({"channels": 9}, ValueError, "channels"),
        ({"input_size": 16}, ValueError, "input_size"),
        ({"input_size": 1024}, ValueError, "input_size"),
        ({"map_size": 10}, ValueError, "map_size"),
        ({"map_size": 64}, ValueError, "map_size"),
        ({"class_names": "cat"}, TypeError, "class_names"),
        ({"class_names": ["a", "b"]}, ValueError, "class_names"),
        ({"title": 3}, TypeError, "title"),
    ],
)
def test_bad_arguments_name_themselves(model, kwargs, error, name):
    arguments = {"model": model, "photos": GOOD, "layers": ["mid"], "input_size": 32,
                 "map_size": 8, **kwargs}  # fmt: skip
    with pytest.raises(error, match=name):
        AttributionExplorer(
            arguments.pop("model"), arguments.pop("photos"), arguments.pop("layers"), **arguments
        )


def test_classes_beyond_the_model_are_refused(photos):
    three = tiny_model(classes=3)
    with pytest.raises(ValueError, match="classes must be at most the model's 3"):
        AttributionExplorer(three, {"c": photos["camera"]}, ["mid"], classes=4, input_size=32,
                            map_size=8)  # fmt: skip

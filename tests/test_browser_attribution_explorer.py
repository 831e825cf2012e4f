"""The attribution explorer in headless Chromium: on a bare page and in the built book.

Each test switches photo, layer, class and mode and checks what the page draws: every
pixel of the heat map (and of each feature map) is the colormap's colour of the stored
code, the stored codes are within one step of ``cnnbook.interpret.grad_cam`` (and of the
layer's output), and the class name and probability shown are the model's. The page must
make no request outside 127.0.0.1 and log no error.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import torch
from browser_utils import checked_book_page, ready_widget, skip_unless_in_book, widget_page
from test_widget_attribution_explorer import LAYERS, MAP, SIZE, tiny_model

from cnnbook.interpret import grad_cam, preprocess
from cnnbook.photos import sample_photo
from cnnbook.widgets._html import read_asset
from cnnbook.widgets.attribution_explorer import AttributionExplorer

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WIDGET = '[data-widget="attribution-explorer"]'
BOOK_PAGE = Path("chapters") / "13_attribution.html"
OWN_NAMES = ("mountAttributionExplorer", "unpack", "paint", "codes", "lut")


def unpack(packed: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(packed["b64"]), dtype=np.uint8).astype(np.int64)


def drawn_rgb(canvas) -> np.ndarray:
    """(h, w, 3) of a canvas's pixels (its own resolution, before CSS scaling)."""
    size, pixels = canvas.evaluate(
        "c => [[c.height, c.width],"
        " Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]"
    )
    return np.array(pixels, dtype=np.int64).reshape(size[0], size[1], 4)[..., :3]


def assert_state(root, data, photo: int, layer: int, rank: int, mode: str) -> None:
    """The page shows this photo, layer, class and mode, drawn from the stored codes."""
    entry, c = data["photos"][photo], data["photos"][photo]["classes"][rank]
    lut = unpack(data["cmap"]["rgb"]).reshape(256, 3)
    expect(root).to_have_attribute("data-photo", entry["name"])
    expect(root).to_have_attribute("data-layer", data["layers"][layer]["name"])
    expect(root).to_have_attribute("data-class", str(c["index"]))
    expect(root).to_have_attribute("data-mode", mode)
    expect(root.locator('[data-role="class-name"]')).to_have_text(c["name"])
    expect(root.locator('[data-role="class-index"]')).to_have_text(str(c["index"]))
    expect(root.locator('[data-role="probability"]')).to_have_text(c["text"])
    photo_img = root.locator('[data-role="photo"]')
    expect(photo_img).to_have_attribute("data-name", entry["name"])
    loaded = photo_img.evaluate("i => i.complete && [i.naturalWidth, i.naturalHeight]")
    assert loaded == [data["input_size"]] * 2
    heat = root.locator('[data-role="heat"]')
    if mode == "cam":
        expect(heat).to_be_visible()
        expect(root.locator('[data-role="features"]')).to_be_hidden()
        m = data["map_size"]
        codes = unpack(entry["cams"][layer][rank]).reshape(m, m)
        np.testing.assert_array_equal(drawn_rgb(heat), lut[codes])
        return
    expect(heat).to_be_hidden()
    f = entry["features"][layer]
    boxes = root.locator('[data-role="features"] figure')
    expect(boxes).to_have_count(len(f["channels"]))
    for i, ch in enumerate(f["channels"]):
        box = boxes.nth(i)
        expect(box).to_have_attribute("data-channel", str(ch["index"]))
        expect(box.locator('[data-role="range"]')).to_have_text(ch["text"])
        codes = unpack(ch["map"]).reshape(f["height"], f["width"])
        np.testing.assert_array_equal(drawn_rgb(box.locator("canvas")), lut[codes])


def test_standalone_page(browser_context, tmp_path, one_thread):
    model = tiny_model()
    photos = {"chelsea": sample_photo("chelsea"), "camera": sample_photo("camera")}
    fig = AttributionExplorer(model, photos, LAYERS, input_size=SIZE, map_size=MAP)
    grey = np.random.default_rng(5).integers(0, 256, (48, 40)).astype(np.uint8)
    odd = AttributionExplorer(
        model, {"noise": grey}, ["mid"], classes=1, channels=1, input_size=32, map_size=32
    )
    data = fig.data
    # the stored numbers are the library's (the drawn ones are checked against them below)
    rows = np.arange(MAP) * (SIZE // MAP) + (SIZE // MAP) // 2
    for p, entry in enumerate(data["photos"]):
        x = preprocess(photos[entry["name"]], SIZE)
        with torch.no_grad():
            probabilities = model(x).softmax(dim=1)[0]
        for rank, c in enumerate(entry["classes"]):
            assert c["text"] == f"{float(probabilities[c['index']]):.1%}"
            library = grad_cam(model, LAYERS[2], x, c["index"])[np.ix_(rows, rows)]
            stored = unpack(entry["cams"][2][rank]).reshape(MAP, MAP)
            assert np.abs(stored - 255 * library).max() <= 1, (p, rank)

    with widget_page(browser_context, tmp_path / "site", [fig.to_html(), odd.to_html()]) as page:
        root, other = page.locator(WIDGET).nth(0), page.locator(WIDGET).nth(1)
        expect(root).to_have_attribute("data-ready", "true")
        assert_state(root, data, photo=0, layer=0, rank=0, mode="cam")

        root.locator('select[data-control="class"]').select_option("2")
        assert_state(root, data, photo=0, layer=0, rank=2, mode="cam")
        root.locator('select[data-control="layer"]').select_option("2")
        assert_state(root, data, photo=0, layer=2, rank=2, mode="cam")
        # another photo: its own top classes fill the menu, the rank stays
        root.locator('select[data-control="photo"]').select_option("1")
        assert_state(root, data, photo=1, layer=2, rank=2, mode="cam")
        options = root.locator('select[data-control="class"] option')
        expect(options).to_have_count(3)
        first = data["photos"][1]["classes"][0]
        expect(options.nth(0)).to_have_text(f"1. {first['name']} ({first['text']})")

        root.locator('[data-action="mode-features"]').click()
        expect(root.locator('[data-action="mode-features"]')).to_have_attribute(
            "aria-pressed", "true"
        )
        assert_state(root, data, photo=1, layer=2, rank=2, mode="features")
        root.locator('select[data-control="layer"]').select_option("0")
        assert_state(root, data, photo=1, layer=0, rank=2, mode="features")
        expect(root.locator(".cnnbook-status")).to_contain_text("most active of the 8 channels")
        root.locator('select[data-control="photo"]').select_option("0")
        assert_state(root, data, photo=0, layer=0, rank=2, mode="features")
        root.locator('[data-action="mode-cam"]').click()
        assert_state(root, data, photo=0, layer=0, rank=2, mode="cam")

        # one photo, one layer, one class, one channel: everything still draws
        expect(other).to_have_attribute("data-ready", "true")
        assert_state(other, odd.data, photo=0, layer=0, rank=0, mode="cam")
        other.locator('[data-action="mode-features"]').click()
        assert_state(other, odd.data, photo=0, layer=0, rank=0, mode="features")
        expect(other.locator('select[data-control="class"] option')).to_have_count(1)

        leaked = page.evaluate("names => names.filter(n => n in window)", list(OWN_NAMES))
        assert not leaked, f"names leaked into the page's globals: {leaked}"
    assert "function mountAttributionExplorer" in read_asset("attribution_explorer.js")


def test_book_page(browser_context, built_book):
    """Chapter 13 in the built book: the explorer switches photo, layer, class and mode."""
    skip_unless_in_book(built_book, BOOK_PAGE)
    with checked_book_page(browser_context, built_book, BOOK_PAGE) as page:
        root, data = ready_widget(page, WIDGET)
        root.scroll_into_view_if_needed()
        assert [p["name"] for p in data["photos"]] == ["chelsea", "coffee", "astronaut"]
        assert data["photos"][0]["classes"][0]["name"] == "Egyptian cat"
        assert_state(root, data, photo=0, layer=0, rank=0, mode="cam")
        root.locator('select[data-control="class"]').select_option("1")
        root.locator('select[data-control="layer"]').select_option("1")
        assert_state(root, data, photo=0, layer=1, rank=1, mode="cam")
        root.locator('select[data-control="photo"]').select_option("1")
        assert_state(root, data, photo=1, layer=1, rank=1, mode="cam")
        root.locator('[data-action="mode-features"]').click()
        assert_state(root, data, photo=1, layer=1, rank=1, mode="features")

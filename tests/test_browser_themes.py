"""The kernel-free widgets follow the page's theme (issue 17): on a page marked dark as the
book's theme marks it (data-theme="dark" on <html>) or as JupyterLab does
(data-jp-theme-light="false" on <body>), every widget paints a dark panel; in every theme
each visible text keeps a WCAG contrast of at least 4.5 against what is behind it; and a
canvas that draws chrome redraws in the new colours when the theme switches.

One bare page holds all seven widgets, a few of them stepped forward so that the current,
done, padded and hatched cells are on screen too. The built book's chapter pages are
checked in dark mode as well (skipped without a build), and the widgets' .css files are
held to data colours only, so that every chrome colour stays a themed property of
base.css. JupyterLab's real dark theme: tests/test_browser_jupyterlab.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from browser_utils import (
    THEMES,
    background_luminance,
    checked_book_page,
    contrast_ratio,
    low_contrast_texts,
    ready_widget,
    relative_luminance,
    skip_unless_in_book,
    widget_page,
    write_page,
)
from test_widget_attribution_explorer import LAYERS, MAP, SIZE, tiny_model

from cnnbook.detection import make_anchors
from cnnbook.models.lenet import LeNet
from cnnbook.photos import sample_photo
from cnnbook.scenes import make_scenes
from cnnbook.widgets import ConvArithmetic, ReceptiveField, SlidingKernel
from cnnbook.widgets._html import read_asset
from cnnbook.widgets.attribution_explorer import AttributionExplorer
from cnnbook.widgets.detection_explorer import DetectionExplorer
from cnnbook.widgets.draw_digit import DrawDigit
from cnnbook.widgets.sliding_kernel import EXAMPLE_INPUT, EXAMPLE_KERNEL
from cnnbook.widgets.upsampling import UpsamplingExplorer

sync_api = pytest.importorskip("playwright.sync_api")

WIDGETS = (
    "sliding-kernel",
    "conv-arithmetic",
    "receptive-field",
    "upsampling",
    "draw-digit",
    "attribution-explorer",
    "detection-explorer",
)
# WCAG 2 AA for normal text; the dark panel's luminance is at most this
MIN_CONTRAST = 4.5
DARK_PANEL = 0.2
LIGHT_PANEL = 0.8
# The colours a widget's .css may write out: data colours, the same in both themes (viridis
# yellow, its hatch and purple; the viridis overlap counts and the white text on the dark
# ones; MNIST's black canvas, the grey bars; the receptive field's frame, its dark edge and
# the sky-blue effective field). Every other colour is chrome: a property of base.css.
DATA_COLOURS = {
    "#fde725", "#f3d500", "#fdf08a", "#440154",
    "#b5de2b", "#6ece58", "#35b779", "#26828e", "#3b528b", "#482878", "#ffffff",
    "#000000", "#8a8a93", "#1d1d1f", "#56b4e9",
}  # fmt: skip
# the chapter page that shows each widget in the built book
BOOK_PAGES = {
    "sliding-kernel": "02_convolution_operation.html",
    "conv-arithmetic": "03_conv_arithmetic.html",
    "receptive-field": "04_receptive_fields.html",
    "draw-digit": "07_lenet.html",
    "attribution-explorer": "13_attribution.html",
    "detection-explorer": "15_object_detection.html",
    "upsampling": "16_segmentation.html",
}


@pytest.fixture(scope="module")
def fragments() -> list[str]:
    """The HTML of one figure of each widget, in the order of ``WIDGETS``."""
    torch.manual_seed(0)
    digits = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    scenes = make_scenes(6, seed=3)
    photos = {"chelsea": sample_photo("chelsea")}
    figures = [
        SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL, padding=1),
        ConvArithmetic(input_size=3, kernel_size=3, stride=2, padding=1, transposed=True),
        ReceptiveField(sample_photo("chelsea"), layers=["conv3", "pool2"], max_layers=2, size=32),
        UpsamplingExplorer(kernel_size=2, stride=3),
        DrawDigit(LeNet().eval(), digits, [1, 2, 3]),
        AttributionExplorer(tiny_model(), photos, LAYERS, input_size=SIZE, map_size=MAP),
        DetectionExplorer(scenes.images[4], scenes.boxes[4], make_anchors((8, 8), 8, (12.0, 20.0))),
    ]
    return [f.to_html() for f in figures]


def step_forward(page) -> None:
    """Step the stepping figures a few times: current, done and written cells show."""
    for name in ("sliding-kernel", "conv-arithmetic", "upsampling"):
        root, _ = ready_widget(page, f'[data-widget="{name}"]')
        step = root.locator('[data-action="step"]')
        for _ in range(2):
            if step.is_enabled():
                step.click()


@pytest.mark.browser
@pytest.mark.parametrize("theme", sorted(THEMES))
def test_every_widget_follows_the_theme_and_keeps_its_text_readable(
    browser_context, tmp_path, fragments, theme
):
    with widget_page(browser_context, tmp_path / "site", fragments, theme=theme) as page:
        step_forward(page)
        failures = []
        for name in WIDGETS:
            root, _ = ready_widget(page, f'[data-widget="{name}"]')
            luminance = background_luminance(root)
            if theme == "light":
                assert luminance > LIGHT_PANEL, (name, luminance)
            else:
                assert luminance < DARK_PANEL, (name, luminance)
            scheme = root.evaluate("r => getComputedStyle(r).colorScheme")
            assert scheme == ("light" if theme == "light" else "dark"), (name, scheme)
            failures += [f"{name}: {line}" for line in low_contrast_texts(root, MIN_CONTRAST)]
        assert not failures, "text below 4.5:1 contrast:\n" + "\n".join(failures)


def canvas_mean(root, selector: str) -> float:
    """Mean of the RGB channels a canvas holds now, 0-255."""
    return root.locator(selector).evaluate(
        """c => {
          const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let s = 0;
          for (let i = 0; i < d.length; i += 4) { s += d[i] + d[i + 1] + d[i + 2]; }
          return s / (0.75 * d.length);
        }"""
    )


@pytest.mark.browser
@pytest.mark.parametrize("element", ["html", "body"])
def test_a_theme_switch_redraws_the_canvas_chrome(browser_context, tmp_path, element):
    """The receptive-field figure's output map fills its canvas with the panel's colour."""
    fig = ReceptiveField(sample_photo("chelsea"), layers=["conv3"], max_layers=1, size=32)
    with widget_page(browser_context, tmp_path / "site", [fig.to_html()]) as page:
        root, _ = ready_widget(page, '[data-widget="receptive-field"]')
        light = canvas_mean(root, '[data-role="output-map"]')
        if element == "html":
            page.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")
        else:
            page.evaluate("document.body.setAttribute('data-jp-theme-light', 'false')")
        dark = canvas_mean(root, '[data-role="output-map"]')
        assert background_luminance(root) < DARK_PANEL
        # white panel with the photo at 35 % against a near-black one: far darker
        assert dark < light - 100, (light, dark)
        page.evaluate(
            "document.documentElement.removeAttribute('data-theme');"
            "document.body.removeAttribute('data-jp-theme-light')"
        )
        assert abs(canvas_mean(root, '[data-role="output-map"]') - light) < 1


def test_widget_css_writes_out_data_colours_only():
    for name in sorted({w.replace("-", "_") for w in WIDGETS}):
        css = re.sub(r"/\*.*?\*/", "", read_asset(f"{name}.css"), flags=re.DOTALL)
        colours = {c.lower() for c in re.findall(r"#[0-9a-fA-F]{3,8}\b", css)}
        assert colours <= DATA_COLOURS, f"{name}.css: chrome colours {colours - DATA_COLOURS}"
        # translucent: the dimming around a field, a red tint over a too-large kernel
        for colour in re.findall(r"rgba?\([^)]*\)", css):
            assert colour.startswith(("rgba(0, 0, 0,", "rgba(178, 24, 43,")), (name, colour)


def test_contrast_follows_wcag():
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert contrast_ratio((119, 119, 119), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio((10, 20, 30), (10, 20, 30)) == 1
    with pytest.raises(ValueError, match="rgb"):
        relative_luminance((0, 0, 300))


def test_write_page_marks_the_theme_and_refuses_unknown_ones(tmp_path):
    assert '<html lang="en" data-theme="dark">' in write_page(
        tmp_path / "a", ["<p>x</p>"], theme="book-dark"
    ).read_text(encoding="utf-8")
    assert '<body data-jp-theme-light="false">' in write_page(
        tmp_path / "b", ["<p>x</p>"], theme="jupyterlab-dark"
    ).read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="theme"):
        write_page(tmp_path / "c", [], theme="sepia")


@pytest.mark.browser
@pytest.mark.parametrize("name", WIDGETS)
def test_widgets_in_the_dark_book(built_book, browser_context, name):
    """In the book's dark mode the theme puts no light card behind a widget's output and
    leaves a widget's photo as it is (tools/static/book.css); the widget itself is dark."""
    path = Path("chapters") / BOOK_PAGES[name]
    skip_unless_in_book(built_book, path)
    with checked_book_page(browser_context, built_book, path) as page:
        page.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")
        roots = page.locator(f'[data-widget="{name}"]')
        assert roots.count() >= 1
        for k in range(roots.count()):
            root = roots.nth(k)
            root.scroll_into_view_if_needed()
            assert background_luminance(root) < DARK_PANEL
            wrapper = root.evaluate(
                "r => [getComputedStyle(r.parentElement).backgroundColor,"
                " getComputedStyle(r.parentElement).paddingTop]"
            )
            assert wrapper == ["rgba(0, 0, 0, 0)", "0px"], wrapper
            assert not low_contrast_texts(root, MIN_CONTRAST)
            for img in root.locator("img").all():
                style = img.evaluate(
                    "e => [getComputedStyle(e).filter, getComputedStyle(e).paddingTop]"
                )
                assert style[0] in ("none", "grayscale(1)") and style[1] == "0px", style

"""Every widget's display bundle is readable without a script: a decodable PNG of sensible
size, inside the HTML fallback and as image/png; the HTML book still prefers the widget."""

from __future__ import annotations

import base64
import io
import re

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest
import yaml
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnnbook.photos import sample_photo  # noqa: E402
from cnnbook.widgets import ConvArithmetic, ReceptiveField, SlidingKernel  # noqa: E402
from cnnbook.widgets._html import MAX_STATIC_PNG_BYTES, render_widget  # noqa: E402
from cnnbook.widgets.live import LiveExplorer, explorer  # noqa: E402
from cnnbook.widgets.sliding_kernel import EXAMPLE_INPUT, EXAMPLE_KERNEL  # noqa: E402
from cnnbook.widgets.static import format_number  # noqa: E402

PICTURE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def figures() -> dict:
    return {
        "sliding": SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL),
        "sliding-padded": SlidingKernel(np.arange(64).reshape(8, 8) / 7, EXAMPLE_KERNEL, padding=1),
        "arithmetic": ConvArithmetic(),
        "transposed": ConvArithmetic(
            input_size=3, kernel_size=3, stride=2, padding=1, transposed=True, output_padding=1
        ),
        "no-output": ConvArithmetic(input_size=2, kernel_size=5),
        "receptive": ReceptiveField(
            sample_photo("chelsea"), layers=["conv3", "pool2", "conv3"], max_layers=3, size=32
        ),
    }


def _image(b64: str) -> Image.Image:
    raw = base64.b64decode(b64, validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    assert 1_000 < len(raw) <= MAX_STATIC_PNG_BYTES, f"{len(raw)} bytes"
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


def _non_blank(image: Image.Image) -> None:
    """A real drawing: big enough to read, and more than one colour."""
    width, height = image.size
    assert 250 <= width <= 900 and 120 <= height <= 700, image.size
    colours = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 8


@pytest.mark.parametrize(
    "name", ["sliding", "sliding-padded", "arithmetic", "transposed", "no-output", "receptive"]
)
def test_bundle_has_html_png_and_one_plain_line(figures, name):
    figure = figures[name]
    bundle = figure._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    _non_blank(_image(bundle["image/png"]))
    # the same picture sits in the HTML's no-script fallback (JupyterLab, untrusted)
    inline = PICTURE.findall(bundle["text/html"])
    assert inline == [bundle["image/png"]]
    plain = bundle["text/plain"]
    assert "\n" not in plain and figure.title in plain and "interactive" in plain
    assert figure._repr_html_().count('<div class="cnnbook-no-js" data-role="no-js">') == 1


def test_picture_is_drawn_once_and_matches_the_first_state(figures):
    figure = figures["sliding"]
    assert figure.static_png() is figure.static_png()  # cached: to_html and the bundle share it
    # the first output value the picture writes is the one the widget computed
    assert format_number(figure.output()[0, 0], 2) == "15"
    other = SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL, stride=2)
    assert other.static_png() != figure.static_png()  # the caption names the stride


def test_fallback_keeps_the_note_and_refuses_other_bytes():
    widget = dict(
        widget="sliding-kernel",
        data={},
        label="x",
        js_file="sliding_kernel.js",
        css_file="sliding_kernel.css",
        entry="mountSlidingKernel",
    )
    html = render_widget(**widget)
    assert "<img" not in html and "needs JavaScript" in html
    with pytest.raises(TypeError, match="static_png"):
        render_widget(**widget, static_png=b"GIF89a")


def test_live_explorer_bundle_has_view_png_and_plain_line():
    def draw(k):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, k])
        return fig

    slider = widgets.IntSlider(value=2, min=1, max=5)
    box = explorer(draw, k=slider)
    assert isinstance(box, LiveExplorer) and isinstance(box, widgets.VBox)
    bundle = box._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    first = bundle["image/png"]
    Image.open(io.BytesIO(base64.b64decode(first))).load()
    assert "VBox" not in bundle["text/plain"] and "(k)" in bundle["text/plain"]
    slider.value = 4  # the bundle follows the figure the explorer shows now
    assert box._repr_mimebundle_()["image/png"] != first


def test_html_book_prefers_the_widget_to_its_picture(repo_root):
    """myst-nb's HTML builder picks the first MIME type of its priority list in a bundle."""
    from myst_nb.core.render import get_mime_priority

    config = yaml.safe_load((repo_root / "_config.yml").read_text())
    overrides = config["sphinx"]["config"].get("nb_mime_priority_overrides", [])
    order = get_mime_priority("html", overrides)
    widget_view = "application/vnd.jupyter.widget-view+json"
    assert order.index("text/html") < order.index("image/png")
    assert order.index(widget_view) < order.index("image/png")

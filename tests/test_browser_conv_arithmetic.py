"""The conv-arithmetic widget in headless Chromium: on a bare page and in the built book.

Each test moves the controls and checks the size the figure shows against the shape
PyTorch computes for the same layer, that configurations without output show the reason
and hide the output grid, and that the page made no request outside 127.0.0.1 and logged
no error.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from browser_utils import checked_book_page, ready_widget, skip_unless_in_book, widget_page

from cnnbook.widgets.conv_arithmetic import RANGES, ConvArithmetic

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WIDGET = '[data-widget="conv-arithmetic"]'
BOOK_PAGE = Path("chapters") / "03_conv_arithmetic.html"
NAMES = ("input", "kernel", "stride", "padding", "dilation", "output_padding")


def torch_size(config: dict, transposed: bool) -> int | None:
    """Output side PyTorch computes for a 1-channel W x W input, None if it refuses."""
    x = torch.zeros(1, 1, config["input"], config["input"])
    w = torch.zeros(1, 1, config["kernel"], config["kernel"])
    kwargs = {k: config[k] for k in ("stride", "padding", "dilation")}
    try:
        if transposed:
            y = F.conv_transpose2d(x, w, output_padding=config.get("output_padding", 0), **kwargs)
        else:
            y = F.conv2d(x, w, **kwargs)
    except RuntimeError:
        return None
    return int(y.shape[-1])


def set_controls(root, config: dict, transposed: bool | None = None) -> None:
    """Choose values in the figure's menus (and tick or untick 'Transposed')."""
    if transposed is not None:
        root.locator('[data-control="transposed"]').set_checked(transposed)
    for name in NAMES:
        if name in config:
            root.locator(f'select[data-control="{name}"]').select_option(str(config[name]))


def assert_shows(root, size: int | None) -> None:
    """The figure shows this output size, or (None) the reason and no output grid."""
    error = root.locator('[data-role="error"]')
    if size is None:
        expect(root).to_have_attribute("data-valid", "false")
        expect(error).to_be_visible()
        expect(root.locator('[data-role="output-panel"]')).to_be_hidden()
        expect(root.locator('[data-role="output-size"]')).to_have_text("none")
        assert "no output" in root.locator('[data-role="formula"]').inner_text()
        return
    expect(root).to_have_attribute("data-valid", "true")
    expect(root).to_have_attribute("data-output-size", str(size))
    expect(root.locator('[data-role="output-size"]')).to_have_text(f"{size} \u00d7 {size}")
    expect(error).to_be_hidden()
    expect(root.locator('[data-role="output-panel"]')).to_be_visible()
    assert root.locator('[data-role="formula"]').inner_text().rstrip().endswith(f"= {size}")


def tap_cells(root, role: str) -> list[tuple[int, int]]:
    """(row, col) of the highlighted kernel taps in one grid (cells are in row-major order)."""
    grid = root.locator(f'[data-role="{role}"]')
    cols = int(grid.get_attribute("data-cols"))
    indices = grid.evaluate(
        "g => Array.from(g.querySelectorAll('.cnnbook-ca-cell'))"
        ".map((c, i) => c.classList.contains('cnnbook-ca-tap') ? i : -1).filter(i => i >= 0)"
    )
    return [divmod(i, cols) for i in indices]


def random_configs(n: int, transposed: bool, seed: int) -> list[dict]:
    rng = random.Random(seed)
    names = NAMES if transposed else NAMES[:-1]
    return [{k: rng.randint(*RANGES[k]) for k in names} for _ in range(n)]


def test_standalone_page(browser_context, tmp_path, one_thread):
    fragments = [
        ConvArithmetic().to_html(),
        ConvArithmetic(3, 3, stride=2, padding=1, transposed=True, output_padding=1).to_html(),
    ]
    with widget_page(browser_context, tmp_path / "site", fragments) as page:
        first, second = page.locator(WIDGET).nth(0), page.locator(WIDGET).nth(1)
        assert first.get_attribute("id") != second.get_attribute("id")

        # the default figure: 5 x 5 input, 3 x 3 kernel -> 3 x 3, nine taps at the corner
        assert_shows(first, 3)
        expect(first.locator('[data-control="output_padding"]')).to_be_hidden()
        assert tap_cells(first, "input-grid") == [(r, c) for r in range(3) for c in range(3)]
        assert first.locator('[data-role="output-grid"]').get_attribute("data-rows") == "3"

        # hand-picked and random configurations, each against PyTorch's shape
        chosen = [
            {"input": 7, "kernel": 3, "stride": 2, "padding": 1, "dilation": 1},
            {"input": 12, "kernel": 5, "stride": 3, "padding": 2, "dilation": 2},
            {"input": 6, "kernel": 3, "stride": 1, "padding": 0, "dilation": 2},
            {"input": 1, "kernel": 1, "stride": 4, "padding": 4, "dilation": 3},
        ]
        for config in chosen + random_configs(12, transposed=False, seed=0):
            set_controls(first, config)
            assert_shows(first, torch_size(config, transposed=False))

        # no output: a 5-wide kernel on a 2 x 2 input (padded to 4 x 4)
        set_controls(first, {"input": 2, "kernel": 5, "stride": 1, "padding": 1, "dilation": 1})
        assert (
            torch_size({"input": 2, "kernel": 5, "stride": 1, "padding": 1, "dilation": 1}, False)
            is None
        )
        assert_shows(first, None)
        expect(first.locator('[data-role="error"]')).to_have_text(
            "the dilated kernel (5) is larger than the padded input (4): no output"
        )
        expect(first.locator('[data-action="step"]')).to_be_disabled()
        # ... and back
        set_controls(first, {"padding": 2})
        assert_shows(first, 2)  # (2 + 2 * 2 - 5) / 1 + 1

        # dilation 2, stride 2: taps two cells apart, the next position two columns on
        set_controls(first, {"input": 7, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2})
        assert_shows(
            first,
            torch_size({"input": 7, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2}, False),
        )
        first.locator('[data-action="step"]').click()
        expect(first).to_have_attribute("data-out-col", "1")
        assert tap_cells(first, "input-grid") == [(r, c) for r in (0, 2, 4) for c in (2, 4, 6)]

        # transposed mode: output_padding appears, sizes follow ConvTranspose2d
        set_controls(first, {}, transposed=True)
        expect(first.locator('[data-control="output_padding"]')).to_be_visible()
        expect(first).to_have_attribute("data-mode", "transposed")
        for config in [
            {
                "input": 3,
                "kernel": 3,
                "stride": 2,
                "padding": 1,
                "dilation": 1,
                "output_padding": 1,
            },
            {
                "input": 4,
                "kernel": 4,
                "stride": 2,
                "padding": 1,
                "dilation": 1,
                "output_padding": 0,
            },
            {
                "input": 5,
                "kernel": 3,
                "stride": 3,
                "padding": 0,
                "dilation": 2,
                "output_padding": 2,
            },
        ] + random_configs(10, transposed=True, seed=1):
            set_controls(first, config)
            assert_shows(first, torch_size(config, transposed=True))
        set_controls(
            first, {"input": 3, "kernel": 3, "stride": 1, "dilation": 1, "output_padding": 1}
        )
        assert_shows(first, None)
        expect(first.locator('[data-role="error"]')).to_contain_text(
            "output_padding (1) must be smaller than stride (1) or dilation (1)"
        )
        # each input cell scatters a k x k patch, stride apart, into the result
        set_controls(
            first, {"input": 3, "kernel": 3, "stride": 2, "padding": 0, "output_padding": 0}
        )
        assert_shows(first, 7)
        first.locator('[data-action="step"]').click()
        expect(first).to_have_attribute("data-in-col", "1")
        assert tap_cells(first, "output-grid") == [(r, c) for r in range(3) for c in (2, 3, 4)]

        # back to an ordinary convolution
        set_controls(first, {"input": 5, "kernel": 3, "stride": 1, "padding": 0}, transposed=False)
        assert_shows(first, 3)

        # the second figure starts transposed and did not move
        expect(second).to_have_attribute("data-mode", "transposed")
        assert_shows(second, 6)
        expect(second.locator('[data-control="transposed"]')).to_be_checked()


@pytest.mark.browser
def test_widget_in_the_built_book(built_book, browser_context, one_thread):
    skip_unless_in_book(built_book, BOOK_PAGE)
    with checked_book_page(browser_context, built_book, BOOK_PAGE) as page:
        root, data = ready_widget(page, WIDGET)
        initial = data["initial"]
        assert_shows(root, torch_size(initial, initial["transposed"]))
        config = {**initial, "stride": 2 if initial["stride"] != 2 else 1}
        set_controls(root, {"stride": config["stride"]})
        assert_shows(root, torch_size(config, initial["transposed"]))

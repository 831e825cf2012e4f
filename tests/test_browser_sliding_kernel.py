"""The sliding-kernel widget in headless Chromium: on a bare page and in the built book.

Each test steps the figure and checks the moved window and the shown value against
``cnnbook.numpy_ops.conv2d``, and that the page made no request outside 127.0.0.1 and
logged no error.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from browser_utils import checked_book_page, ready_widget, widget_page

from cnnbook.numpy_ops import conv2d
from cnnbook.widgets.sliding_kernel import EXAMPLE_INPUT, EXAMPLE_KERNEL, SlidingKernel

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WIDGET = '[data-widget="sliding-kernel"]'
# (2, 2) image and (4, 4) kernel: fits only with padding >= 1, one output at padding 1
TINY_IMAGE = np.array([[0.25, -1.0], [2.0, 0.5]])
TINY_KERNEL = np.linspace(-1.0, 1.0, 16).reshape(4, 4)
BOOK_PAGE = Path("chapters") / "02_convolution_operation.html"


def reference(image, kernel, stride: int, padding: int, bias: float = 0.0) -> np.ndarray:
    """numpy_ops.conv2d on one image and kernel: (H, W), (k_h, k_w) -> (H_out, W_out)."""
    x = np.asarray(image, dtype=np.float64)[None, None]
    w = np.asarray(kernel, dtype=np.float64)[None, None]
    return conv2d(x, w, bias=np.array([bias]), stride=stride, padding=padding)[0, 0]


def assert_state(root, *, window: tuple[int, int], out: tuple[int, int]) -> None:
    """The root's data attributes name this window corner and output position."""
    expect(root).to_have_attribute("data-window-row", str(window[0]))
    expect(root).to_have_attribute("data-window-col", str(window[1]))
    expect(root).to_have_attribute("data-out-row", str(out[0]))
    expect(root).to_have_attribute("data-out-col", str(out[1]))


def assert_shows(root, value: float, decimals: int) -> None:
    """The current-value element shows ``value`` with exactly ``decimals`` digits."""
    text = root.locator('[data-role="current-value"]').inner_text().strip()
    pattern = r"-?\d+" + (rf"\.\d{{{decimals}}}" if decimals else "")
    assert re.fullmatch(pattern, text), f"{text!r} is not a number with {decimals} decimals"
    # JavaScript's toFixed and Python's format may round an exact tie differently
    assert float(text) == pytest.approx(value, abs=0.5 * 10**-decimals + 1e-9), (
        f"widget shows {text}, numpy gives {value}"
    )


def output_shape(root) -> tuple[int, int]:
    grid = root.locator('[data-role="output-grid"]')
    rows, cols = int(grid.get_attribute("data-rows")), int(grid.get_attribute("data-cols"))
    assert grid.locator(":scope > *").count() == rows * cols, "one cell per output value"
    return rows, cols


def test_standalone_page_two_instances(browser_context, tmp_path):
    fragments = [
        SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL).to_html(),
        SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL).to_html(),
        SlidingKernel(TINY_IMAGE, TINY_KERNEL, padding=1, bias=0.5, decimals=1).to_html(),
    ]
    with widget_page(browser_context, tmp_path / "site", fragments, "sliding kernel") as page:
        first, second = page.locator(WIDGET).nth(0), page.locator(WIDGET).nth(1)
        assert first.get_attribute("id") != second.get_attribute("id")
        assert_state(first, window=(0, 0), out=(0, 0))
        assert_shows(first, 15.0, decimals=2)

        # stride 1: three steps go (0, 0) -> (0, 1) -> (0, 2) -> (1, 0)
        expected = reference(EXAMPLE_INPUT, EXAMPLE_KERNEL, stride=1, padding=0)
        assert output_shape(first) == expected.shape == (3, 3)
        for _ in range(3):
            first.locator('[data-action="step"]').click()
        assert_state(first, window=(1, 0), out=(1, 0))
        assert_shows(first, expected[1, 0], decimals=2)
        first.locator('[data-action="back"]').click()
        assert_state(first, window=(0, 2), out=(0, 2))
        assert_shows(first, expected[0, 2], decimals=2)

        # stride 2: the grids are redrawn, the figure starts over, a step moves 2 columns
        first.locator('select[data-control="stride"]').select_option("2")
        expected = reference(EXAMPLE_INPUT, EXAMPLE_KERNEL, stride=2, padding=0)
        assert output_shape(first) == expected.shape == (2, 2)
        assert_state(first, window=(0, 0), out=(0, 0))
        assert_shows(first, expected[0, 0], decimals=2)
        first.locator('[data-action="step"]').click()
        assert_state(first, window=(0, 2), out=(0, 1))
        assert_shows(first, expected[0, 1], decimals=2)

        # padding 1: a ring of zeros, the window starts on it
        first.locator('select[data-control="padding"]').select_option("1")
        expected = reference(EXAMPLE_INPUT, EXAMPLE_KERNEL, stride=2, padding=1)
        assert output_shape(first) == expected.shape == (3, 3)
        assert first.locator('[data-role="input-grid"]').get_attribute("data-rows") == "7"
        first.locator('[data-action="step"]').click()
        first.locator('[data-action="step"]').click()
        assert_state(first, window=(0, 4), out=(0, 2))
        assert_shows(first, expected[0, 2], decimals=2)
        first.locator('[data-action="reset"]').click()
        assert_state(first, window=(0, 0), out=(0, 0))

        # Play runs to the last position on its own (8 steps of 0.7 s) and stops there
        play = first.locator('[data-action="play"]')
        play.click()
        expect(play).to_have_attribute("aria-pressed", "true")
        expect(first).to_have_attribute("data-position", "8", timeout=15_000)
        assert_state(first, window=(4, 4), out=(2, 2))
        expect(play).to_have_attribute("aria-pressed", "false")
        assert_shows(first, expected[2, 2], decimals=2)

        # the other copy of the same figure did not move
        assert_state(second, window=(0, 0), out=(0, 0))
        assert_shows(second, 15.0, decimals=2)
        expect(second.locator('select[data-control="stride"]')).to_have_value("1")
        assert "sum of products = 15.00" in second.locator('[aria-live="polite"]').inner_text()

        # a third figure: bias, one decimal, and a padding at which the kernel does not fit
        third = page.locator(WIDGET).nth(2)
        expected = reference(TINY_IMAGE, TINY_KERNEL, stride=1, padding=1, bias=0.5)
        assert output_shape(third) == expected.shape == (1, 1)
        assert_shows(third, expected[0, 0], decimals=1)
        expect(third.locator('select[data-control="padding"] option[value="0"]')).to_be_disabled()
        expect(third.locator('[data-action="step"]')).to_be_disabled()
        assert "plus bias 0.5" in third.locator('[aria-live="polite"]').inner_text()


@pytest.mark.browser
def test_widget_in_the_built_book(built_book, browser_context):
    book: Path = built_book
    assert (book / BOOK_PAGE).exists(), f"{BOOK_PAGE} is missing from the built book {book}"

    with checked_book_page(browser_context, book, BOOK_PAGE) as page:
        root, data = ready_widget(page, WIDGET)
        expect(root).to_have_attribute("data-window-row", re.compile(r"\d+"))

        stride, padding, decimals = data["stride"], data["padding"], data["decimals"]
        expected = reference(data["image"], data["kernel"], stride, padding, data["bias"])
        assert output_shape(root) == expected.shape
        assert_state(root, window=(0, 0), out=(0, 0))
        assert_shows(root, expected[0, 0], decimals)

        # one step: next output in row-major order, window moved by the stride
        W_out = expected.shape[1]
        i, j = (0, 1) if W_out > 1 else (1, 0)
        assert expected.size > 1, "the chapter's figure should have more than one position"
        root.locator('[data-action="step"]').click()
        assert_state(root, window=(i * stride, j * stride), out=(i, j))
        assert_shows(root, expected[i, j], decimals)

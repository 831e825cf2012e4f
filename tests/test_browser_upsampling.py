"""The upsampling explorer in headless Chromium: on a bare page and in the built book.

The tests pick kernel sizes and strides (the limits included), read the numbers the page
shows (output size, values, overlap counts, resize + conv) and compare them with PyTorch
computed here; they step through the stamps and compare every running sum with a scatter
done by hand; and they check that the page made no request outside 127.0.0.1 and logged
no error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from browser_utils import checked_book_page, ready_widget, skip_unless_in_book, widget_page

from cnnbook.widgets.upsampling import EXAMPLE_INPUT, UpsamplingExplorer

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WIDGET = '[data-widget="upsampling"]'
BOOK_PAGE = Path("chapters") / "16_segmentation.html"
FLOAT_INPUT = np.array([[0.5, -1.25, 2.0, 0.0], [1.5, 0.25, -0.75, 1.0]])


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


def shown(root, role: str) -> np.ndarray:
    """The numbers a grid shows, (rows, cols) float, NaN for a blank cell."""
    grid = root.locator(f'[data-role="{role}"]')
    rows, cols = int(grid.get_attribute("data-rows")), int(grid.get_attribute("data-cols"))
    texts = grid.locator(".cnnbook-up-cell").all_inner_texts()
    assert len(texts) == rows * cols, "one cell per value"
    values = [float(t.replace("\u2212", "-")) if t.strip() else np.nan for t in texts]
    return np.array(values).reshape(rows, cols)


def choose(root, k: int, s: int) -> None:
    root.locator('select[data-control="kernel-size"]').select_option(str(k))
    root.locator('select[data-control="stride"]').select_option(str(s))
    expect(root).to_have_attribute("data-kernel-size", str(k))
    expect(root).to_have_attribute("data-stride", str(s))


def assert_choice_equals_torch(root, image, kernel, k: int, s: int, decimals: int) -> None:
    """Every grid of the finished state shows torch's numbers (to the shown decimals)."""
    tol = 0.5 * 10**-decimals + 1e-9
    expect(root).to_have_attribute("data-complete", "true")
    out = torch_transposed(image, kernel, s)
    H, W = image.shape
    assert out.shape == ((H - 1) * s + k, (W - 1) * s + k)
    np.testing.assert_allclose(shown(root, "output-grid"), out, rtol=0, atol=tol)
    counts = torch_transposed(np.ones_like(image), np.ones((k, k)), s)
    np.testing.assert_array_equal(shown(root, "counts-grid"), counts)
    gaps = root.locator('[data-role="counts-grid"] .cnnbook-up-gap').count()
    assert gaps == int((counts == 0).sum()), "every hole, and only holes, is marked as one"
    rc = torch_resize_conv(image, kernel, s)
    assert rc.shape == (H * s, W * s)
    np.testing.assert_allclose(shown(root, "resize-output-grid"), rc, rtol=0, atol=tol)
    rc_counts = torch_resize_conv(np.ones_like(image), np.ones((k, k)), s)
    np.testing.assert_array_equal(shown(root, "resize-counts-grid"), rc_counts)
    np.testing.assert_array_equal(shown(root, "kernel-grid"), kernel)


def assert_step(root, image, kernel, k: int, s: int, n: int) -> None:
    """After stamps 0..n the output shows the scatter of those stamps, blank where none yet."""
    H, W = image.shape
    i, j = divmod(n, W)
    expect(root).to_have_attribute("data-stamp", str(n))
    assert (root.get_attribute("data-src-row"), root.get_attribute("data-src-col")) == (
        str(i),
        str(j),
    )
    assert root.get_attribute("data-at-row") == str(i * s)
    assert root.get_attribute("data-at-col") == str(j * s)
    done = (np.arange(H * W) <= n).reshape(H, W)
    partial = torch_transposed(np.where(done, image, 0.0), kernel, s)
    covered = torch_transposed(done.astype(float), np.ones((k, k)), s)
    out, counts = shown(root, "output-grid"), shown(root, "counts-grid")
    last = n == H * W - 1
    reached = covered > 0
    np.testing.assert_allclose(out[reached], partial[reached], rtol=0, atol=0.006)
    np.testing.assert_array_equal(counts[reached], covered[reached])
    if not last:  # cells no stamp has reached yet are blank
        assert np.isnan(out[~reached]).all() and np.isnan(counts[~reached]).all()
    np.testing.assert_allclose(shown(root, "stamp-grid"), image[i, j] * kernel, atol=0.006)


@pytest.mark.browser
def test_standalone_page_every_limit(browser_context, tmp_path):
    default = UpsamplingExplorer()
    floats = UpsamplingExplorer(FLOAT_INPUT, kernel_size=2, stride=3, kernels="ones")
    fragments = [default.to_html(), floats.to_html()]
    with widget_page(browser_context, tmp_path / "site", fragments, "upsampling") as page:
        leaked = page.evaluate("() => typeof mountUpsampling !== 'undefined'")
        assert not leaked, "mountUpsampling leaked into the page's globals"
        root = page.locator(WIDGET).nth(0)
        other = page.locator(WIDGET).nth(1)
        assert root.get_attribute("id") != other.get_attribute("id")

        # the first state: k = 3, s = 2, every stamp added, the 1-2-4 checkerboard
        expect(root).to_have_attribute("data-stamp", "8")
        tent = {k: default.kernels[k] for k in range(1, 6)}
        assert_choice_equals_torch(root, EXAMPLE_INPUT, tent[3], 3, 2, decimals=2)
        assert sorted(np.unique(shown(root, "counts-grid")).tolist()) == [1, 2, 4]
        expect(root.locator(".cnnbook-status")).to_contain_text("checkerboard")

        # the limits and the cases between: k = 1 = s, k < s (holes), k = 5 with s = 4
        for k, s, word in [
            (1, 1, "multiple"),
            (1, 4, "no stamp at all"),
            (2, 3, "no stamp at all"),
            (4, 2, "multiple"),
            (5, 4, "checkerboard"),
            (5, 1, "multiple"),
        ]:
            choose(root, k, s)
            assert_choice_equals_torch(root, EXAMPLE_INPUT, tent[k], k, s, decimals=2)
            expect(root.locator(".cnnbook-status")).to_contain_text(word)
        # k = 1, s = 1 is the identity
        choose(root, 1, 1)
        np.testing.assert_array_equal(shown(root, "output-grid"), EXAMPLE_INPUT)

        # the second figure (float input, ones kernels) did not follow the first
        expect(other).to_have_attribute("data-kernel-size", "2")
        assert_choice_equals_torch(other, FLOAT_INPUT, np.ones((2, 2)), 2, 3, decimals=2)
        choose(other, 5, 2)
        assert_choice_equals_torch(other, FLOAT_INPUT, np.ones((5, 5)), 5, 2, decimals=2)


@pytest.mark.browser
def test_step_through_the_stamps(browser_context, tmp_path):
    fig = UpsamplingExplorer(FLOAT_INPUT, kernel_size=3, stride=2)
    kernel = fig.kernels[3]
    with widget_page(browser_context, tmp_path / "site", [fig.to_html()], "stamps") as page:
        root = page.locator(WIDGET).first
        step = root.locator('[data-action="step"]')
        expect(step).to_be_disabled()  # the figure starts with the finished sum
        root.locator('[data-action="reset"]').click()
        expect(root).to_have_attribute("data-complete", "false")
        expect(root.locator('[data-action="back"]')).to_be_disabled()
        assert_step(root, FLOAT_INPUT, kernel, 3, 2, 0)
        expect(root.locator(".cnnbook-progress")).to_have_text("stamp 1 of 8")
        for n in range(1, 8):
            step.click()
            assert_step(root, FLOAT_INPUT, kernel, 3, 2, n)
        expect(root).to_have_attribute("data-complete", "true")
        expect(step).to_be_disabled()
        assert_choice_equals_torch(root, FLOAT_INPUT, kernel, 3, 2, decimals=2)
        root.locator('[data-action="back"]').click()
        assert_step(root, FLOAT_INPUT, kernel, 3, 2, 6)

        # holes: k = 1 < s = 4, step to the second stamp; a new choice starts finished
        choose(root, 1, 4)
        expect(root).to_have_attribute("data-stamp", "7")
        root.locator('[data-action="reset"]').click()
        step.click()
        assert_step(root, FLOAT_INPUT, fig.kernels[1], 1, 4, 1)

        # Play runs to the end by itself and stops there
        root.locator('[data-action="play"]').click()
        expect(root).to_have_attribute("data-complete", "true", timeout=15_000)
        expect(root.locator('[data-action="play"]')).to_have_attribute("aria-pressed", "false")
        assert_choice_equals_torch(root, FLOAT_INPUT, fig.kernels[1], 1, 4, decimals=2)


@pytest.mark.browser
def test_widget_in_the_built_book(built_book, browser_context):
    skip_unless_in_book(built_book, BOOK_PAGE)
    with checked_book_page(browser_context, built_book, BOOK_PAGE) as page:
        root, data = ready_widget(page, WIDGET)
        root.scroll_into_view_if_needed()
        image = np.array(data["image"], dtype=np.float64)
        k, s = data["kernel_size"], data["stride"]
        kernels = {int(key): np.array(v) for key, v in data["kernels"].items()}
        assert_choice_equals_torch(root, image, kernels[k], k, s, data["decimals"])
        for k, s in [(1, 1), (4, 2), (2, 4)]:
            if k in kernels and s in data["strides"]:
                choose(root, k, s)
                assert_choice_equals_torch(root, image, kernels[k], k, s, data["decimals"])
        root.locator('[data-action="reset"]').click()
        root.locator('[data-action="step"]').click()
        assert_step(root, image, kernels[k], k, s, 1)

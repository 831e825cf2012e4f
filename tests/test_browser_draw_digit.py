"""The draw-a-digit widget in headless Chromium: on a bare page and in the built book.

The page runs LeNet itself, so the test feeds it real MNIST test digits through the
figure's documented hook (a ``cnnbook:load-digit`` event on its root) and compares the ten
probabilities it shows (``data-probabilities``) with PyTorch's; then it draws a stroke
with the mouse, clears the canvas and sends a malformed image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from browser_utils import checked_book_page, ready_widget, skip_unless_in_book, widget_page

from cnnbook.models.lenet import LeNet
from cnnbook.widgets.draw_digit import MNIST_MEAN, MNIST_STD, DrawDigit

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WIDGET = '[data-widget="draw-digit"]'
BOOK_PAGE = Path("chapters") / "07_lenet.html"
TOLERANCE = 1e-4
N_DIGITS = 20


@pytest.fixture(scope="module")
def mnist_sets() -> tuple[object, object]:
    """MNIST's training and test sets from the offline mirror (skips without them)."""
    from cnnbook.data import DatasetNotFoundError, mnist

    try:
        return mnist(train=True), mnist(train=False)
    except DatasetNotFoundError as err:  # pragma: no cover - CI has the data
        pytest.skip(f"MNIST is not available: {err}")


@pytest.fixture(scope="module")
def mnist_digits(mnist_sets) -> tuple[np.ndarray, np.ndarray]:
    """The first 20 MNIST test digits, (20, 28, 28) float32 in [0, 1], and their labels."""
    test_set = mnist_sets[1]
    images = test_set.data[:N_DIGITS].numpy().astype(np.float32) / 255
    return images, test_set.targets[:N_DIGITS].numpy()


def odd_lenet(seed: int) -> LeNet:
    """A seeded LeNet with batch norm (random running statistics), sigmoid and average
    pooling, its logits spread by scaling the last layer."""
    torch.manual_seed(seed)
    model = LeNet(activation="sigmoid", pool="avg", batchnorm=True).eval()
    with torch.no_grad():
        model.fc3.weight.mul_(20)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
    return model


def readout_lenet(mnist_sets, seed: int, mean: float, std: float) -> LeNet:
    """A seeded LeNet whose last layer is fitted by ridge regression (to scaled one-hot
    targets) on 2,000 MNIST training digits: no training loop, yet its probabilities differ
    from digit to digit and are far from uniform, so a wrong layer in the page shows."""
    torch.manual_seed(seed)
    model = LeNet().eval()
    with torch.no_grad():
        train = mnist_sets[0]
        x = (train.data[:2000, None].float() / 255 - mean) / std
        features = torch.nn.Sequential(*list(model.children())[:-1])(x)  # (2000, 84)
        design = torch.cat([features, torch.ones(len(x), 1)], dim=1).double()
        targets = 8.0 * torch.nn.functional.one_hot(train.targets[:2000], 10).double()
        # ridge, so the weights stay moderate: huge cancelling weights would make torch's
        # own float32 rounding, not the page, the larger error
        gram = design.T @ design
        ridge = (
            1e-2
            * features.double().var(dim=0).mean()
            * len(x)
            * torch.eye(len(gram), dtype=gram.dtype)
        )
        solution = torch.linalg.solve(gram + ridge, design.T @ targets)  # (85, 10)
        model.fc3.weight.copy_(solution[:-1].T.float())
        model.fc3.bias.copy_(solution[-1].float())
    return model


def torch_probabilities(model, images: np.ndarray, mean: float, std: float) -> np.ndarray:
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28)
    with torch.no_grad():
        return torch.softmax(model((x - mean) / std), dim=1).double().numpy()


def shown(root) -> np.ndarray:
    """The ten probabilities the figure shows, from its data-probabilities attribute."""
    return np.array([float(v) for v in root.get_attribute("data-probabilities").split(",")])


def load_digit(root, pixels: np.ndarray) -> None:
    root.evaluate(
        "(r, p) => r.dispatchEvent(new CustomEvent('cnnbook:load-digit', {detail: {pixels: p}}))",
        [float(v) for v in np.asarray(pixels).ravel()],
    )


def draw_stroke(page, root, points) -> None:
    """Press the mouse at the first point (canvas pixels 0-28), move through the rest, release."""
    box = root.locator('[data-role="canvas"]').bounding_box()

    def screen(p):
        return box["x"] + p[0] * box["width"] / 28, box["y"] + p[1] * box["height"] / 28

    page.mouse.move(*screen(points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*screen(p), steps=5)
    page.mouse.up()


@pytest.mark.browser
def test_bare_page_matches_torch(browser_context, tmp_path, mnist_sets, mnist_digits):
    images, labels = mnist_digits
    model = readout_lenet(mnist_sets, 0, MNIST_MEAN, MNIST_STD)
    other = odd_lenet(1)
    fig = DrawDigit(model, examples=images[:5], labels=labels[:5].tolist())
    fig2 = DrawDigit(other, mean=0.2, std=0.4)
    want = torch_probabilities(model, images, MNIST_MEAN, MNIST_STD)
    assert len(set(want.argmax(axis=1).tolist())) >= 5, "the 20 digits must not look alike"
    assert np.median(want.max(axis=1)) > 0.5, "far from uniform probabilities"

    with widget_page(browser_context, tmp_path / "site", [fig.to_html(), fig2.to_html()]) as page:
        assert not page.evaluate("'mountDrawDigit' in window"), "no globals"
        root, data = ready_widget(page, WIDGET)
        second = page.locator(WIDGET).nth(1)

        # the first state is the first example, as Python computed it
        assert np.abs(shown(root) - fig.first_probabilities).max() <= TOLERANCE
        assert np.abs(np.array(data["first_probabilities"]) - fig.first_probabilities).max() == 0

        # 20 real MNIST test digits through the page hook
        worst = 0.0
        for image, expected in zip(images, want, strict=True):
            load_digit(root, image)
            got = shown(root)
            worst = max(worst, float(np.abs(got - expected).max()))
            expect(root).to_have_attribute("data-prediction", str(int(expected.argmax())))
        print(f"max |page - torch| over {N_DIGITS} MNIST digits: {worst:.2e}")
        assert worst <= TOLERANCE

        # the example buttons load the stored (uint8) digits
        root.locator('[data-action="example-3"]').click()
        stored = np.round(images[3] * 255) / 255
        expected = torch_probabilities(model, stored, MNIST_MEAN, MNIST_STD)[0]
        assert np.abs(shown(root) - expected).max() <= TOLERANCE
        status = root.locator(".cnnbook-status")
        expect(status).to_contain_text(f"this test digit is a {labels[3]}")

        # empty canvas: the output for an all-background image, no NaN
        root.locator('[data-action="clear"]').click()
        expect(root).to_have_attribute("data-ink", "0")
        blank = shown(root)
        assert np.all(np.isfinite(blank))
        zeros = np.zeros((28, 28), dtype=np.float32)
        expected = torch_probabilities(model, zeros, MNIST_MEAN, MNIST_STD)[0]
        assert np.abs(blank - expected).max() <= TOLERANCE
        expect(status).to_contain_text("empty")

        # a stroke with the mouse: a "1" down the middle
        root.scroll_into_view_if_needed()
        draw_stroke(page, root, [(14, 4), (14.5, 14), (15, 24)])
        # the redraw runs at the next animation frame
        expect(root).not_to_have_attribute("data-ink", "0")
        drawn = shown(root)
        assert np.abs(drawn - blank).max() > 1e-3, "the stroke must change the probabilities"
        assert drawn.sum() == pytest.approx(1, abs=1e-9)
        expect(status).to_contain_text(f"reads a {int(drawn.argmax())} ")
        expect(status).not_to_contain_text("test digit")
        ink = float(root.get_attribute("data-ink"))
        assert 20 < ink < 200, f"a stroke of about 20 pixels, 2-3 wide: ink {ink}"
        # every layer is drawn: one row per module layer, one map per channel
        rows = root.locator('[data-role="feature-maps"] [data-layer]')
        expect(rows).to_have_count(len(data["layers"]))
        expect(root.locator('[data-layer="conv1"] canvas')).to_have_count(6)
        expect(root.locator('[data-layer="pool2"] canvas')).to_have_count(16)
        expect(root.locator('[data-layer="fc3"] canvas')).to_have_count(1)

        # malformed input through the hook: an error line, the numbers stay
        load_digit(root, np.zeros(783))
        expect(root.locator('[data-role="error"]')).to_be_visible()
        assert np.array_equal(shown(root), drawn)

        # the second figure (batch norm, sigmoid, average pooling; its own mean and std)
        # started empty and did not follow the first
        want2 = torch_probabilities(other, images[:4], 0.2, 0.4)
        assert (
            np.abs(shown(second) - torch_probabilities(other, zeros, 0.2, 0.4)[0]).max()
            <= TOLERANCE
        )
        for image, expected in zip(images[:4], want2, strict=True):
            load_digit(second, image)
            assert np.abs(shown(second) - expected).max() <= TOLERANCE
        assert np.array_equal(shown(root), drawn)


@pytest.mark.browser
def test_widget_in_the_built_book(built_book, browser_context):
    skip_unless_in_book(built_book, BOOK_PAGE)
    with checked_book_page(browser_context, built_book, BOOK_PAGE) as page:
        root, data = ready_widget(page, WIDGET)
        root.scroll_into_view_if_needed()
        first = np.array(data["first_probabilities"])
        assert np.abs(shown(root) - first).max() <= TOLERANCE, "the page computes what torch did"
        label = data["examples"][0]["label"]
        expect(root).to_have_attribute("data-prediction", str(label))  # a trained LeNet
        root.locator('[data-action="clear"]').click()
        expect(root).to_have_attribute("data-ink", "0")
        blank = shown(root)
        assert np.all(np.isfinite(blank)) and blank.sum() == pytest.approx(1, abs=1e-9)
        draw_stroke(page, root, [(14, 4), (14.5, 14), (15, 24)])
        expect(root).not_to_have_attribute("data-ink", "0")
        drawn = shown(root)
        assert np.abs(drawn - blank).max() > 1e-3 and drawn.sum() == pytest.approx(1, abs=1e-9)

"""The detection explorer in headless Chromium: on a bare page and in the built book.

The tests move the sliders (by value and with the Home / End keys), step through NMS and
check that the counts and kept boxes the page shows equal those of
``cnnbook.detection.match_anchors``, ``cnnbook.detection.nms`` and ``torchvision.ops.nms``,
and that the page made no request outside 127.0.0.1 and logged no error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from browser_utils import checked_book_page, ready_widget, skip_unless_in_book, widget_page

from cnnbook.detection import make_anchors, match_anchors, nms
from cnnbook.scenes import CLASSES, make_scenes
from cnnbook.widgets.detection_explorer import DetectionExplorer

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WIDGET = '[data-widget="detection-explorer"]'
BOOK_PAGE = Path("chapters") / "15_object_detection.html"
ANCHORS = make_anchors((8, 8), 8, (12.0, 20.0, 32.0))
# the script's own names: none may become a page global
SCRIPT_NAMES = ["mountDetectionExplorer", "unpack", "runNms", "matchAnchors", "stepper", "el"]


def set_slider(root, name: str, k: int) -> None:
    """Move a slider to position k as a reader's drag does (an input event)."""
    root.locator(f'input[data-control="{name}"]').evaluate(
        "(e, k) => { e.value = String(k); e.dispatchEvent(new Event('input', {bubbles: true})); }",
        k,
    )


def press(root, name: str, key: str) -> None:
    root.locator(f'input[data-control="{name}"]').press(key)


def expected_kept(boxes, scores, score: float, iou: float) -> list[int]:
    """Kept boxes by torchvision (and cnnbook.detection, asserted equal), as box indices."""
    cand = (scores > score).nonzero(as_tuple=True)[0]
    theirs = cand[torchvision.ops.nms(boxes[cand], scores[cand], iou)].tolist()
    assert cand[nms(boxes[cand], scores[cand], iou)].tolist() == theirs
    return theirs


def assert_matching(root, gt, fg: float, bg: float) -> None:
    """The page's counts are match_anchors' at (fg, bg)."""
    expect(root).to_have_attribute("data-fg", str(round(fg * 100)))
    expect(root).to_have_attribute("data-bg", str(round(bg * 100)))
    m = match_anchors(ANCHORS, gt, fg, bg)
    strict = match_anchors(ANCHORS, gt, fg, bg, allow_low_quality=False)
    for attr, value in (
        ("data-positives", (m >= 0).sum()),
        ("data-negatives", (m == -1).sum()),
        ("data-ignored", (m == -2).sum()),
        ("data-claimed", ((m >= 0) & (strict < 0)).sum()),
    ):
        expect(root).to_have_attribute(attr, str(int(value)))
    counts = root.locator('[data-role="match-counts"]')
    expect(counts).to_contain_text(f"{int((m >= 0).sum())} positive")
    expect(counts).to_contain_text(f"{int((m == -2).sum())} ignored")


def assert_nms(root, fig, score: float, iou: float) -> list[int]:
    """The page's final kept boxes (and the step it shows: the last) are torchvision's."""
    expect(root).to_have_attribute("data-score", str(round(score * 100)))
    expect(root).to_have_attribute("data-nms", str(round(iou * 100)))
    kept = expected_kept(fig.boxes, fig.scores, score, iou)
    expect(root).to_have_attribute("data-final-kept", ",".join(map(str, kept)))
    expect(root).to_have_attribute("data-kept-total", str(len(kept)))
    expect(root).to_have_attribute("data-candidates", str(int((fig.scores > score).sum())))
    expect(root).to_have_attribute("data-step", str(len(kept)))
    expect(root.locator('[data-role="nms-counts"]')).to_contain_text(f"keeps {len(kept)} of")
    return kept


def test_standalone_page(browser_context, tmp_path):
    scenes = make_scenes(8, seed=3)
    gt = scenes.boxes[4]
    fig = DetectionExplorer(scenes.images[4], gt, ANCHORS)
    # odd input: a zero-area true box and zero-area scored boxes
    flat_gt = torch.tensor([[10.0, 10.0, 30.0, 40.0], [20.0, 20.0, 20.0, 35.0]])
    flat_boxes = torch.tensor(
        [[11.0, 10.0, 30.0, 41.0], [12.0, 12.0, 28.0, 38.0], [20.0, 20.0, 20.0, 35.0]]
        + [[20.0, 20.0, 20.0, 35.0]]
    )
    flat = DetectionExplorer(
        scenes.images[0], flat_gt, ANCHORS, flat_boxes, torch.tensor([0.9, 0.8, 0.7, 0.6])
    )
    with widget_page(browser_context, tmp_path / "site", [fig.to_html(), flat.to_html()]) as page:
        root, other = page.locator(WIDGET).nth(0), page.locator(WIDGET).nth(1)
        expect(root).to_have_attribute("data-ready", "true")
        leaked = page.evaluate("names => names.filter(n => n in window)", SCRIPT_NAMES)
        assert not leaked, f"names leaked into the page's globals: {leaked}"

        # the scene is drawn from the embedded pixels (scale 4: image pixel (7, 5) at 30, 22)
        pixel = root.locator('[data-role="match-canvas"]').evaluate(
            "c => Array.from(c.getContext('2d').getImageData(22, 30, 1, 1).data.slice(0, 3))"
        )
        dimmed = [round(0.75 * v) for v in fig.image[7, 5].tolist()]  # under the 25% veil
        assert all(abs(a - b) <= 2 for a, b in zip(pixel, dimmed, strict=True)), pixel

        # first state: the chapter's thresholds
        assert_matching(root, gt, 0.5, 0.4)
        assert_nms(root, fig, 0.5, 0.5)

        # anchor matching at several slider positions
        for fg, bg in ((0.7, 0.4), (0.7, 0.1), (0.3, 0.1), (0.55, 0.55)):
            set_slider(root, "fg-iou", round(fg * 100))
            set_slider(root, "bg-iou", round(bg * 100))
            assert_matching(root, gt, fg, bg)
        # bg above fg pulls fg along (match_anchors needs bg <= fg), and the other way
        set_slider(root, "bg-iou", 80)
        assert_matching(root, gt, 0.8, 0.8)
        set_slider(root, "fg-iou", 20)
        assert_matching(root, gt, 0.2, 0.2)
        # the limits, with the keyboard
        press(root, "fg-iou", "End")
        assert_matching(root, gt, 1.0, 0.2)
        press(root, "bg-iou", "Home")
        assert_matching(root, gt, 1.0, 0.0)
        expect(root).to_have_attribute("data-positives", root.get_attribute("data-claimed"))
        press(root, "fg-iou", "Home")
        assert_matching(root, gt, 0.0, 0.0)
        expect(root).to_have_attribute("data-positives", "192")
        press(root, "fg-iou", "ArrowRight")
        assert_matching(root, gt, 0.01, 0.0)

        # NMS at several positions, then the limits
        for score, iou in ((0.3, 0.5), (0.3, 0.2), (0.7, 0.6), (0.05, 0.35)):
            set_slider(root, "score", round(score * 100))
            set_slider(root, "nms-iou", round(iou * 100))
            assert_nms(root, fig, score, iou)
        press(root, "nms-iou", "Home")
        assert_nms(root, fig, 0.05, 0.0)
        press(root, "nms-iou", "End")
        kept = assert_nms(root, fig, 0.05, 1.0)
        assert len(kept) == int((fig.scores > 0.05).sum()), "IoU > 1 never happens"
        press(root, "score", "End")
        assert_nms(root, fig, 1.0, 1.0)
        expect(root).to_have_attribute("data-candidates", "0")
        expect(root.locator(".cnnbook-status")).to_contain_text("nothing to suppress")
        press(root, "score", "Home")
        assert_nms(root, fig, 0.0, 1.0)

        # step through NMS at (0.3, 0.5): each step keeps the next box of the trace and
        # suppresses what Python's trace says
        set_slider(root, "score", 30)
        set_slider(root, "nms-iou", 50)
        trace = fig.nms_trace(0.3, 0.5)
        assert [k for k, _ in trace] == assert_nms(root, fig, 0.3, 0.5)
        root.locator('[data-action="reset"]').click()
        expect(root).to_have_attribute("data-step", "0")
        expect(root).to_have_attribute("data-kept", "")
        expect(root).to_have_attribute("data-suppressed", "0")
        n_cand = int((fig.scores > 0.3).sum())
        expect(root).to_have_attribute("data-remaining", str(n_cand))
        suppressed = 0
        for step, (box, victims) in enumerate(trace[:4], start=1):
            root.locator('[data-action="step"]').click()
            suppressed += len(victims)
            expect(root).to_have_attribute("data-step", str(step))
            kept_so_far = ",".join(str(k) for k, _ in trace[:step])
            expect(root).to_have_attribute("data-kept", kept_so_far)
            expect(root).to_have_attribute("data-suppressed", str(suppressed))
            expect(root).to_have_attribute("data-remaining", str(n_cand - step - suppressed))
            expect(root.locator(".cnnbook-status")).to_contain_text(f"keep box {box} ")
        root.locator('[data-action="back"]').click()
        expect(root).to_have_attribute("data-step", "3")
        # Play runs to the end
        root.locator('[data-action="play"]').click()
        expect(root).to_have_attribute("data-step", str(len(trace)), timeout=30_000)
        expect(root).to_have_attribute("data-remaining", "0")
        expect(root.locator(".cnnbook-status")).to_contain_text("done")

        # the second figure: zero-area boxes have IoU 0 with everything, so they survive
        assert_matching(other, flat_gt, 0.5, 0.4)
        expect(other).to_have_attribute("data-final-kept", "0,2,3")
        set_slider(other, "nms-iou", 0)
        expect(other).to_have_attribute(
            "data-final-kept",
            ",".join(map(str, expected_kept(flat.boxes, flat.scores, 0.5, 0.0))),
        )
        expect(other).to_have_attribute("data-final-kept", "0,2,3")
        # and the first figure did not follow the second
        expect(root).to_have_attribute("data-nms", "50")


@pytest.mark.browser
def test_widget_in_the_built_book(built_book, browser_context):
    skip_unless_in_book(built_book, BOOK_PAGE)
    with checked_book_page(browser_context, built_book, BOOK_PAGE) as page:
        root, data = ready_widget(page, WIDGET)
        root.scroll_into_view_if_needed()
        # the chapter's call, made again here: its payload must be the page's
        scenes = make_scenes(8, seed=3)
        fig = DetectionExplorer(
            scenes.images[4],
            scenes.boxes[4],
            ANCHORS,
            gt_labels=scenes.labels[4],
            class_names=dict(enumerate(CLASSES, start=1)),
            title="Anchor matching and NMS on scene 4",
        )
        assert data == fig.data
        gt = scenes.boxes[4]
        assert_matching(root, gt, 0.5, 0.4)
        assert_nms(root, fig, 0.5, 0.5)
        set_slider(root, "fg-iou", 70)
        set_slider(root, "bg-iou", 30)
        assert_matching(root, gt, 0.7, 0.3)
        press(root, "nms-iou", "Home")
        assert_nms(root, fig, 0.5, 0.0)
        set_slider(root, "score", 20)
        set_slider(root, "nms-iou", 40)
        assert_nms(root, fig, 0.2, 0.4)
        root.locator('[data-action="reset"]').click()
        root.locator('[data-action="step"]').click()
        first = fig.nms_trace(0.2, 0.4)[0][0]
        expect(root).to_have_attribute("data-kept", str(first))

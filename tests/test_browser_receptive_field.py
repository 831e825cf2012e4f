"""The receptive-field widget in headless Chromium: on a bare page and in the built book.

Each test picks output units and stacks and checks that the region lit up on the photo
has the size and place of the theoretical receptive field (cnnbook.arith, clipped at the
photo's border), and that the page made no request outside 127.0.0.1 and logged no error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_utils import checked_book_page, ready_widget, skip_unless_in_book, widget_page

from cnnbook.arith import receptive_field
from cnnbook.photos import sample_photo
from cnnbook.widgets.receptive_field import ReceptiveField, stack_specs

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WIDGET = '[data-widget="receptive-field"]'
BOOK_PAGE = Path("chapters") / "04_receptive_fields.html"


def expected_box(keys, unit: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) in photo pixels of a unit's field, clipped to the photo.

    From cnnbook.arith: unit i is centred on start + i * jump and spans rf pixels.
    """
    rf, jump, start = receptive_field(stack_specs(keys))
    first = [round(start + u * jump - (rf - 1) / 2) for u in unit]
    last = [f + rf - 1 for f in first]
    top, left = (max(f, 0) for f in first)
    bottom, right = (min(v, size - 1) for v in last)
    return top, left, bottom - top + 1, right - left + 1


def assert_box(root, keys, unit: tuple[int, int], size: int, scale: int) -> None:
    """The lit-up region is the unit's field: in data attributes and in screen pixels."""
    expect(root).to_have_attribute("data-unit-row", str(unit[0]))
    expect(root).to_have_attribute("data-unit-col", str(unit[1]))
    top, left, height, width = expected_box(keys, unit, size)
    box = root.locator('[data-role="rf-box"]')
    expect(box).to_be_visible()
    got = [int(box.get_attribute(f"data-{k}")) for k in ("top", "left", "height", "width")]
    assert got == [top, left, height, width], f"{keys} unit {unit}: box {got}"
    drawn = box.bounding_box()
    stage = root.locator('[data-role="photo-stage"]').bounding_box()
    assert drawn["width"] == pytest.approx(width * scale, abs=1)
    assert drawn["height"] == pytest.approx(height * scale, abs=1)
    # stage border is 1 px; the field starts `left` photo pixels inside it
    assert drawn["x"] - (stage["x"] + 1) == pytest.approx(left * scale, abs=1)
    assert drawn["y"] - (stage["y"] + 1) == pytest.approx(top * scale, abs=1)


def click_unit(page, root, unit: tuple[int, int], hover_only: bool = False) -> None:
    """Click (or hover) the middle of one unit of the output map."""
    canvas = root.locator('[data-role="output-map"]')
    b = canvas.bounding_box()
    out = int(root.get_attribute("data-out-size"))
    x = b["x"] + 1 + (unit[1] + 0.5) * (b["width"] - 2) / out
    y = b["y"] + 1 + (unit[0] + 0.5) * (b["height"] - 2) / out
    if hover_only:
        page.mouse.move(x, y)
    else:
        page.mouse.click(x, y)


def choose_stack(root, keys, max_layers: int = 6) -> None:
    for i in range(max_layers):
        key = keys[i] if i < len(keys) else "none"
        root.locator(f'select[data-control="layer-{i + 1}"]').select_option(key)


def test_standalone_page(browser_context, tmp_path):
    photo = sample_photo("chelsea")
    fig = ReceptiveField(photo)
    small = ReceptiveField(sample_photo("astronaut"), layers=["pool2"] * 3, size=20)
    scale = fig.data["scale"]
    default = ["conv3", "conv3", "pool2", "conv3"]

    with widget_page(browser_context, tmp_path / "site", [fig.to_html(), small.to_html()]) as page:
        root, other = page.locator(WIDGET).nth(0), page.locator(WIDGET).nth(1)

        # the photo is drawn from the embedded pixels
        pixel = root.locator('[data-role="photo"]').evaluate(
            "c => Array.from(c.getContext('2d').getImageData(5, 7, 1, 1).data.slice(0, 3))"
        )
        assert pixel == fig.photo[7, 5].tolist()

        # first stack: 32 x 32 output, rf 10, the centre unit selected, its ERF shown
        expect(root).to_have_attribute("data-stack", ",".join(default))
        expect(root).to_have_attribute("data-out-size", "32")
        expect(root).to_have_attribute("data-rf", "10")
        assert_box(root, default, (16, 16), 64, scale)
        expect(root).to_have_attribute("data-erf-shown", "true")
        expect(root.locator('[data-role="rf-stats"]')).to_contain_text("10 \u00d7 10 px")
        preset = next(p for p in fig.data["presets"] if p["keys"] == default)
        side = root.locator('[data-role="erf-square"]').get_attribute("data-side")
        assert side == str(preset["erf"]["core_side"])

        # a corner unit: the field is clipped by the photo's border; the ERF (measured for
        # the centre unit) is hidden until the centre unit is back
        click_unit(page, root, (0, 0))
        assert_box(root, default, (0, 0), 64, scale)
        assert expected_box(default, (0, 0), 64)[2] < 10
        expect(root).to_have_attribute("data-erf-shown", "false")
        root.locator('[data-action="centre"]').click()
        assert_box(root, default, (16, 16), 64, scale)
        expect(root).to_have_attribute("data-erf-shown", "true")
        click_unit(page, root, (31, 5))
        assert_box(root, default, (31, 5), 64, scale)
        # hovering previews another unit; the arrow keys move the selection
        click_unit(page, root, (10, 20), hover_only=True)
        assert_box(root, default, (10, 20), 64, scale)
        root.locator('[data-role="output-map"]').focus()
        page.mouse.move(0, 0)
        page.keyboard.press("ArrowRight")
        assert_box(root, default, (31, 6), 64, scale)
        page.keyboard.press("ArrowDown")  # already on the last row: stays
        assert_box(root, default, (31, 6), 64, scale)
        page.keyboard.press("ArrowUp")
        assert_box(root, default, (30, 6), 64, scale)

        # a fifth layer: the field grows by 2 * jump = 4, no preset, so no measured ERF
        stack = default + ["conv3"]
        root.locator('select[data-control="layer-5"]').select_option("conv3")
        expect(root).to_have_attribute("data-rf", "14")
        assert_box(root, stack, (16, 16), 64, scale)
        expect(root).to_have_attribute("data-erf-shown", "false")
        expect(root.locator('[data-role="erf-square"]')).to_be_hidden()
        expect(root.locator('[data-role="erf-stats"]')).to_contain_text("presets only")
        expect(root.locator('select[data-control="preset"]')).to_have_value("custom")

        # a dilated and a strided stack (typed in), then a preset
        for stack in (
            ["dil3", "dil3", "s2conv3"],
            ["s2conv3", "pool2", "dil3", "conv3", "s2conv3"],
        ):
            choose_stack(root, stack)
            info = fig.stack_info(stack)
            expect(root).to_have_attribute("data-rf", str(info["rf"]))
            expect(root).to_have_attribute("data-out-size", str(info["out"]))
            centre = (info["out"] // 2, info["out"] // 2)
            assert_box(root, stack, centre, 64, scale)
            click_unit(page, root, (0, info["out"] - 1))
            assert_box(root, stack, (0, info["out"] - 1), 64, scale)
        six = "six 3\u00d73 convs"
        root.locator('select[data-control="preset"]').select_option(label=six)
        expect(root).to_have_attribute("data-stack", ",".join(["conv3"] * 6))
        expect(root.locator('select[data-control="layer-6"]')).to_have_value("conv3")
        assert_box(root, ["conv3"] * 6, (32, 32), 64, scale)
        expect(root).to_have_attribute("data-erf-shown", "true")
        root.locator('[data-control="show-erf"]').uncheck()
        expect(root).to_have_attribute("data-erf-shown", "false")
        expect(root.locator('[data-role="layer-table"] tbody tr')).to_have_count(7)

        # the second figure: a 20-pixel photo; five poolings leave nothing
        expect(other).to_have_attribute("data-out-size", "2")
        assert_box(other, ["pool2"] * 3, (1, 1), 20, small.data["scale"])
        choose_stack(other, ["pool2"] * 5)
        expect(other).to_have_attribute("data-valid", "false")
        expect(other.locator('[data-role="error"]')).to_be_visible()
        expect(other.locator('[data-role="error"]')).to_contain_text("Layer 5")
        expect(other.locator('[data-role="output-panel"]')).to_be_hidden()
        expect(other.locator('[data-role="rf-box"]')).to_be_hidden()
        choose_stack(other, ["pool2"] * 4)
        expect(other).to_have_attribute("data-valid", "true")
        expect(other.locator('[data-role="error"]')).to_be_hidden()
        assert_box(other, ["pool2"] * 4, (0, 0), 20, small.data["scale"])

        # the first figure did not follow the second
        expect(root).to_have_attribute("data-stack", ",".join(["conv3"] * 6))


@pytest.mark.browser
def test_widget_in_the_built_book(built_book, browser_context):
    skip_unless_in_book(built_book, BOOK_PAGE)
    with checked_book_page(browser_context, built_book, BOOK_PAGE) as page:
        root, data = ready_widget(page, WIDGET)
        size, scale = data["size"], data["scale"]
        keys = data["layers"]
        root.scroll_into_view_if_needed()
        out = int(root.get_attribute("data-out-size"))
        assert_box(root, keys, (out // 2, out // 2), size, scale)
        click_unit(page, root, (0, 0))
        assert_box(root, keys, (0, 0), size, scale)
        # one more 3 x 3 conv (or, if every slot is full, a different last layer)
        slot = min(len(keys), data["max_layers"] - 1)
        new = "conv3" if slot == len(keys) or keys[slot] != "conv3" else "pool2"
        root.locator(f'select[data-control="layer-{slot + 1}"]').select_option(new)
        stack = keys[:slot] + [new] + keys[slot + 1 :]
        expect(root).to_have_attribute("data-stack", ",".join(stack))
        out = int(root.get_attribute("data-out-size"))
        assert_box(root, stack, (out // 2, out // 2), size, scale)

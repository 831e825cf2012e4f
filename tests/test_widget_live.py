"""cnnbook.widgets.live.explorer: the figure lives in the Output widget's state and follows
the controls."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from cnnbook.widgets.live import explorer  # noqa: E402


def _draw(k: int):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title(f"k = {k}")
    return fig


def _output(box: widgets.VBox) -> widgets.Output:
    return next(child for child in box.children if isinstance(child, widgets.Output))


def test_initial_figure_is_stored_in_widget_state():
    box = explorer(_draw, k=widgets.IntSlider(value=2, min=1, max=5))
    outputs = _output(box).outputs
    assert len(outputs) == 1 and "image/png" in outputs[0]["data"]
    assert "cnnbook-live" in box._dom_classes
    note = box.children[0]
    assert "Live explorer" in note.value and "cnnbook-live-note" in note._dom_classes


def test_moving_a_control_redraws_once():
    calls = []

    def draw(k):
        calls.append(k)
        return _draw(k)

    slider = widgets.IntSlider(value=1, min=1, max=5)
    box = explorer(draw, k=slider)
    first = _output(box).outputs[0]["data"]["image/png"]
    slider.value = 4
    assert calls == [1, 4]
    outputs = _output(box).outputs
    assert len(outputs) == 1 and outputs[0]["data"]["image/png"] != first
    assert slider.continuous_update is False


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(TypeError, match="draw"):
        explorer("not callable", k=widgets.IntSlider())
    with pytest.raises(ValueError, match="at least one control"):
        explorer(_draw)
    with pytest.raises(TypeError, match="control 'k'"):
        explorer(_draw, k=[1, 2, 3])
    with pytest.raises(TypeError, match="note"):
        explorer(_draw, note=3, k=widgets.IntSlider())
    with pytest.raises(TypeError, match="Figure or None"):
        explorer(lambda k: "figure", k=widgets.IntSlider())

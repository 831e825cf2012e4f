"""Live explorers: ipywidgets controls that redraw a matplotlib figure in a running kernel.

Unlike the kernel-free widgets of this package, a live explorer recomputes its figure in
Python, so it needs a kernel (Jupyter, Colab, VS Code). The figure is stored in the
``Output`` widget's own state (``append_display_data``), not sent as a side message, so a
notebook executed by nbclient or nbval saves the initial figure with the widget state and
the static HTML book shows it, with a note saying how to make the controls live.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Image
from matplotlib.figure import Figure

DEFAULT_NOTE = (
    "<b>Live explorer.</b> In the HTML book this shows its initial state only. "
    "Run the notebook (locally, or with the Colab or Binder button at the top of the page) "
    "and the controls redraw the figure."
)


def _check_controls(controls: dict[str, object]) -> None:
    if not controls:
        raise ValueError("explorer needs at least one control, e.g. layer=widgets.Dropdown(...)")
    for name, control in controls.items():
        if not isinstance(control, widgets.ValueWidget):
            raise TypeError(
                f"control {name!r} must be an ipywidgets value widget (Dropdown, IntSlider, ...), "
                f"got {type(control).__name__}"
            )


def _render(draw: Callable[..., Figure | None], values: dict[str, object]) -> Figure:
    figure = draw(**values)
    if figure is None:
        figure = plt.gcf()
    if not isinstance(figure, Figure):
        kind = type(figure).__name__
        raise TypeError(f"draw must return a matplotlib Figure or None, got {kind}")
    return figure


def _png(figure: Figure, dpi: int = 90) -> Image:
    """The figure as PNG bytes: the same in every frontend, whatever matplotlib backend."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")


def explorer(
    draw: Callable[..., Figure | None], *, note: str | None = None, **controls: widgets.ValueWidget
) -> widgets.VBox:
    """Controls plus the figure ``draw(**values)`` for their current values.

    draw: called with one keyword per control (its current ``.value``); returns the Figure
        it made, or None after drawing on the current figure.
    note: HTML shown above the controls; default explains the static/live difference.
    controls: ipywidgets value widgets, keyed by the argument name ``draw`` expects.
    Display the result as the last expression of a cell.
    """
    if not callable(draw):
        raise TypeError(f"draw must be callable, got {type(draw).__name__}")
    if note is not None and not isinstance(note, str):
        raise TypeError(f"note must be a string of HTML or None, got {type(note).__name__}")
    _check_controls(controls)
    output = widgets.Output()

    def redraw(_change: object = None) -> None:
        figure = _render(draw, {name: c.value for name, c in controls.items()})
        output.outputs = ()
        output.append_display_data(_png(figure))
        plt.close(figure)  # the Output widget holds the PNG; no second copy below the cell

    for control in controls.values():
        if "continuous_update" in control.trait_names():
            control.continuous_update = False  # redraw on release: each draw runs a model
        control.observe(redraw, names="value")
    redraw()
    header = widgets.HTML(DEFAULT_NOTE if note is None else note)
    header.add_class("cnnbook-live-note")
    box = widgets.VBox([header, widgets.HBox(list(controls.values())), output])
    box.add_class("cnnbook-live")
    return box

"""Live explorers: ipywidgets controls that redraw a matplotlib figure in a running kernel.

Unlike the kernel-free widgets of this package, a live explorer recomputes its figure in
Python, so it needs a kernel (Jupyter, Colab, VS Code). The figure is stored in the
``Output`` widget's own state (``append_display_data``), not sent as a side message, so a
notebook executed by nbclient or nbval saves the initial figure with the widget state and
the static HTML book shows it, with a note saying how to make the controls live.
"""

from __future__ import annotations

import base64
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


class LiveExplorer(widgets.VBox):
    """The explorer's box; its display bundle also holds a PNG of the current figure.

    JupyterLab and Notebook 7 do not render widget views in an untrusted notebook (every
    downloaded one), and no front end can without the widget state: they fall back to
    ``text/plain``, which for a widget is ``VBox(children=...)``. An ``image/png`` next to
    the view is what they show instead; front ends that render the widget prefer the view.
    """

    def __init__(self, children: list[widgets.Widget], *, names: tuple[str, ...]) -> None:
        super().__init__(children)
        self.control_names = names  # draw's argument names, for the text/plain line

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs)
        output = next(child for child in self.children if isinstance(child, widgets.Output))
        if output.outputs:
            png = output.outputs[-1]["data"]["image/png"]
            if isinstance(png, bytes):
                png = base64.b64encode(png).decode("ascii")
            bundle["image/png"] = png
        names = ", ".join(self.control_names)
        bundle["text/plain"] = (
            f"Live explorer ({names}): its figure for the current values; run the notebook "
            "with a kernel to use the controls"
        )
        return bundle


def explorer(
    draw: Callable[..., Figure | None], *, note: str | None = None, **controls: widgets.ValueWidget
) -> LiveExplorer:
    """Controls plus the figure ``draw(**values)`` for their current values.

    draw: called with one keyword per control (its current ``.value``); returns the Figure
        it made, or None after drawing on the current figure.
    note: HTML shown above the controls; default explains the static/live difference.
    controls: ipywidgets value widgets, keyed by the argument name ``draw`` expects.
    Display the result as the last expression of a cell: its bundle carries the widget
    view and a PNG of the current figure (``LiveExplorer``).
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
    box = LiveExplorer(
        [header, widgets.HBox(list(controls.values())), output], names=tuple(controls)
    )
    box.add_class("cnnbook-live")
    return box

"""The live training plot: ``History`` curves redrawn after each epoch in a Jupyter kernel.

Outside Jupyter (a script, a test) there is nothing to redraw; ``show_history`` then draws
the curves once with pyplot.
"""

from __future__ import annotations

from cnnbook.history import History


def in_jupyter_kernel() -> bool:
    """True when running inside a Jupyter kernel (where display handles can update)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LivePlot:
    """Redraws the History after each epoch in a Jupyter kernel through a display handle.

    The figure is a bare matplotlib Figure rendered to PNG here, so no backend is needed
    and nbclient (the book build, nbval) stores the last image as a static output.
    """

    def __init__(self) -> None:
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(6.8, 3.2), layout="constrained")  # the text column
        self.axes = self.fig.subplots(1, 2)
        self.handle = None

    def update(self, history: History) -> None:
        import io

        from IPython.display import Image, display

        """Draw ``history`` and show it: a new output the first time, replaced after."""
        history.plot(self.axes)
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=80)
        image = Image(data=buffer.getvalue(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def show_history(history: History) -> None:
    """Draw a finished History once: a PNG output in Jupyter, else a pyplot figure."""
    if in_jupyter_kernel():
        LivePlot().update(history)
    else:
        history.plot()

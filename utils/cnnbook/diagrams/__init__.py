"""Explanatory diagrams: pictures of mechanisms and architectures, drawn as code.

A plot in the book shows data; a diagram shows how something works (a kernel volume
sliding over channels, a residual block, anchors on an image). Every diagram is a
function that returns a matplotlib ``Figure`` drawn in one visual language
(``cnnbook.diagrams.style``: one palette of roles, one font size, shapes for tensors and
layers), and a chapter shows it with ``style.show``, which displays it as SVG so it stays
sharp on any screen. Architecture and block diagrams are drawn from the real
``nn.Module`` through a forward pass (``cnnbook.diagrams.architecture``), so a picture
cannot disagree with the code it shows.

Export policy (as ``cnnbook.models``): the package exports nothing; import each function
from the module that defines it, e.g. ``from cnnbook.diagrams.style import show``.
"""

__all__: list[str] = []

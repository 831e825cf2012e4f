"""Shared plumbing of the kernel-free widgets: one self-contained HTML string per figure.

A kernel-free widget is Python that computes every number up front and a small script
that only draws and navigates. The string built here carries everything inline (style,
script, data as JSON), so it works in JupyterLab, Colab, VS Code and the static HTML book
without a kernel, a CDN or a module loader.

Layout of the string::

    <div class="cnnbook-widget cnnbook-NAME" data-widget="NAME" id="..." role="figure">
      <style>...</style>                         base.css, then the widget's .css file
      <script type="application/json" data-role="widget-data">...</script>
      <div data-role="no-js"><img src="data:image/png;base64,..."><p>...</p></div>
                                                  a picture of the first state; removed
                                                  once the script runs
      <script>(function () { ... base.js ...; ... the widget's .js file ...;
                             ENTRY(root, data); })();</script>
    </div>

base.css and base.js hold what every widget shares (the box, controls and text lines;
helpers such as ``el`` and ``stepper``). The .js file declares one function
``ENTRY(root, data)`` that uses those helpers; wrapping both files in one function
expression keeps every name out of the page's globals, so several widgets, or the same
one twice, can share a page.

Where no script runs (an untrusted notebook in JupyterLab or Notebook 7, which also strip
``<style>``; a PDF), the fallback ``div`` shows: a PNG of the figure's first state (see
``static.py``) and a line saying how to make it interactive. ``StaticFallback`` gives a
widget class a display bundle with that PNG also as ``image/png``, for front ends and
converters that cannot use HTML at all.
"""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from importlib import resources
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure

from cnnbook.widgets.static import figure_png

__all__ = [
    "StaticFallback",
    "json_for_script",
    "new_element_id",
    "pack_uint",
    "read_asset",
    "render_widget",
]

# Shared by every widget, inlined before the widget's own files.
BASE_CSS = "base.css"
BASE_JS = "base.js"

_NO_JS_TEXT = (
    "A picture of this interactive figure's first state: the figure itself needs "
    "JavaScript. Run the cell in Jupyter, Colab or VS Code (in a trusted notebook), or read "
    "it in the HTML version of the book."
)
# What a figure's image/png is at most (a test checks every widget's picture against it).
MAX_STATIC_PNG_BYTES = 60_000


def read_asset(name: str) -> str:
    """Text of a file shipped in the ``cnnbook.widgets`` package, e.g. ``"sliding_kernel.js"``."""
    if not isinstance(name, str) or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain file name inside cnnbook/widgets, got {name!r}")
    text = resources.files("cnnbook.widgets").joinpath(name).read_text(encoding="utf-8")
    # A literal "</script" or "</style" would end the inline element early.
    if re.search(r"</(script|style)", text, flags=re.IGNORECASE):
        raise ValueError(f"{name} must not contain '</script' or '</style'")
    if not text.isascii():
        raise ValueError(f"{name} must be ASCII (write other characters as \\u escapes)")
    return text


def new_element_id(prefix: str) -> str:
    """A page-unique element id such as ``cnnbook-sliding-kernel-3f2a9c1b0d4e``.

    Random rather than counted: two notebooks rendered into one page (or one output shown
    twice) must still get distinct ids.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", prefix):
        raise ValueError(f"prefix must start with a letter and use [A-Za-z0-9_-], got {prefix!r}")
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def json_for_script(data: object) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``.

    Escapes ``<``, ``>`` and ``&`` so that no string in the data (a title, say) can close
    the script element, and every non-ASCII character, so the page's encoding does not
    matter; NaN and infinity are refused because JSON cannot carry them.
    """
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def pack_uint(values: object) -> dict:
    """Non-negative integers as compact JSON: ``{"dtype": "uint8"|"uint16", "b64": ...}``.

    values: any shape, flattened in C order; uint8 when every value is below 256, else
    uint16 (little-endian). Base64 costs 1.33 characters per byte, against about 3 to 4
    for a JSON list of small numbers. A script decodes it with ``atob`` (see
    base.js, ``unpack``).
    """
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"values must be integers, got dtype {array.dtype}")
    flat = array.astype(np.int64).ravel()
    if flat.size and (flat.min() < 0 or flat.max() > 0xFFFF):
        raise ValueError("values must lie in [0, 65535]")
    dtype = "uint8" if not flat.size or flat.max() < 256 else "uint16"
    raw = flat.astype("u1" if dtype == "uint8" else "<u2").tobytes()
    return {"dtype": dtype, "b64": base64.b64encode(raw).decode("ascii")}


def render_widget(
    *,
    widget: str,
    data: object,
    label: str,
    js_file: str,
    css_file: str,
    entry: str,
    static_png: bytes | None = None,
) -> str:
    """Wrap a widget's style, data and script into one self-contained HTML string.

    widget: the name used in ``data-widget`` and the CSS class ``cnnbook-<widget>``;
    data: JSON-serialisable numbers the script renders; label: the figure's aria-label;
    js_file / css_file: file names in this package, inlined after base.js / base.css;
    entry: the function the .js file declares, called as ``entry(root, data)``;
    static_png: PNG bytes of the figure's first state, shown (with the note) where no
    script runs; None: the note alone.
    """
    if not re.fullmatch(r"[a-z][a-z0-9-]*", widget):
        raise ValueError(f"widget must be lower-case letters, digits and '-', got {widget!r}")
    if not re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", entry):
        raise ValueError(f"entry must be a JavaScript identifier, got {entry!r}")
    css = read_asset(BASE_CSS) + "\n" + read_asset(css_file)
    js = read_asset(BASE_JS) + "\n" + read_asset(js_file)
    # ASCII only (non-ASCII label characters as &#...; references): a page served without
    # a charset must still show the same text.
    label = html.escape(label, quote=True).encode("ascii", "xmlcharrefreplace").decode("ascii")
    element_id = new_element_id(f"cnnbook-{widget}")
    payload = json_for_script(data)
    picture = ""
    if static_png is not None:
        if not isinstance(static_png, bytes) or not static_png.startswith(b"\x89PNG\r\n"):
            raise TypeError("static_png must be the bytes of a PNG image or None")
        encoded = base64.b64encode(static_png).decode("ascii")
        picture = (
            f'<img src="data:image/png;base64,{encoded}" alt="{label}" '
            'style="max-width: 100%; height: auto">'
        )
    # The script finds its root as its own ancestor (right even if a front end copies the
    # output, ids and all), else by id (document.currentScript is null in some front
    # ends), and runs at most once per root, should a front end re-run it.
    boot = (
        "(function () {\n"
        '"use strict";\n'
        "var me = document.currentScript;\n"
        f"var root = (me && me.closest && me.closest('[data-widget=\"{widget}\"]')) ||\n"
        f'  document.getElementById("{element_id}");\n'
        "if (!root || root.getAttribute('data-ready') === 'true') { return; }\n"
        "root.setAttribute('data-ready', 'true');\n"
        "var data = JSON.parse("
        "root.querySelector('script[data-role=\"widget-data\"]').textContent);\n"
        f"{js}\n"
        f"{entry}(root, data);\n"
        "})();"
    )
    return (
        f'<div class="cnnbook-widget cnnbook-{widget}" data-widget="{widget}" '
        f'id="{element_id}" role="figure" aria-label="{label}">\n'
        f"<style>\n{css}\n</style>\n"
        f'<script type="application/json" data-role="widget-data">{payload}</script>\n'
        f'<div class="cnnbook-no-js" data-role="no-js">{picture}'
        f"<p>{html.escape(_NO_JS_TEXT)}</p></div>\n"
        f"<script>\n{boot}\n</script>\n"
        "</div>"
    )


class StaticFallback:
    """Mixin of the kernel-free widgets: a display bundle readable without a script.

    A subclass defines ``to_html()`` (which should pass ``static_png()`` to
    ``render_widget``), ``title`` and ``_static_figure()`` (a matplotlib Figure of the
    first state, see ``static.py``). The bundle holds ``text/html`` (the widget, its
    fallback picture inside), ``image/png`` (the same picture: for PDF and other
    converters without HTML) and a one-line ``text/plain``. Front ends that can show HTML
    prefer it (JupyterLab, Colab, VS Code, myst-nb's HTML builder), so the picture never
    replaces a working widget.
    """

    title: str
    # One line of text/plain: what the figure is and how to make it interactive.
    PLAIN_TEXT: ClassVar[str] = (
        "{title} (interactive figure; run the cell in a trusted notebook or read the HTML "
        "book to use it)"
    )

    def to_html(self) -> str:  # pragma: no cover - every widget class defines it
        raise NotImplementedError

    def _static_figure(self) -> Figure:  # pragma: no cover - every widget class defines it
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self.to_html()

    def static_png(self) -> bytes:
        """PNG bytes of the figure's first state (drawn once, then kept)."""
        cached = self.__dict__.get("_static_png_bytes")
        if cached is None:
            cached = figure_png(self._static_figure())
            self.__dict__["_static_png_bytes"] = cached
        return cached

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict:
        return {
            "text/html": self.to_html(),
            "image/png": base64.b64encode(self.static_png()).decode("ascii"),
            "text/plain": self.PLAIN_TEXT.format(title=self.title),
        }

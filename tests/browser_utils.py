"""Reusable pieces of the tests of the kernel-free widgets (tests/test_widget_*.py and
tests/test_browser_*.py). The fixtures ``browser_context`` and ``one_thread`` live in
conftest.py.

The widget HTML string, no browser:
- ``embedded_data(html)``: the JSON payload of the one widget in ``html``.
- ``widget_script(html)``: the script the widget runs (base.js and its own .js).
- ``assert_self_contained(html, widget, entry)``: no external resources, ASCII, one root,
  one data script, style and script inline; returns the payload.

Headless Chromium:
- ``require_chromium()``: path of Debian's Chromium; skips locally, fails under CI.
- ``serve_directory(root)``: a background HTTP server on 127.0.0.1, yields its base URL.
- ``launch_chromium(playwright, user_data_dir)``: a browser context with the flags that work
  on the build machines and no network beyond 127.0.0.1.
- ``PageRecorder``: records every request, console error and page error of a page;
  ``assert_clean()`` fails on any of them.
- ``write_page(directory, fragments, theme=...)``: a bare HTML page holding widget HTML
  strings, light or marked dark as the book's theme or JupyterLab marks it (``THEMES``).
- ``checked_page(context, site, path)``: serve and open a page; at the end of the block
  fail on any error or request outside 127.0.0.1 (``PageRecorder``).
- ``widget_page(context, directory, fragments)``: ``write_page`` + ``checked_page``, and
  no widget helper may leak into the page's globals.
- ``checked_book_page(context, book, path)``: ``checked_page`` on a page of the built book,
  tolerating only ``KNOWN_BOOK_ERRORS`` (console errors of the book's theme).
- ``skip_unless_in_book(book, path)``: skip while a chapter is not in the built book yet.
- ``ready_widget(page, selector)``: the first widget matching ``selector`` once its script
  has started, and its JSON payload.
- ``widget_data(root)``: the JSON payload of a widget on a page (a Playwright locator).

Colours (WCAG 2 definitions):
- ``relative_luminance(rgb)``, ``contrast_ratio(a, b)``.
- ``background_luminance(root)``: relative luminance of an element's own background.
- ``low_contrast_texts(root, minimum)``: every visible text inside ``root`` whose contrast
  against its effective background (the first non-transparent one up the tree, every
  colour of a gradient) is below ``minimum``.

Usage::

    def test_figure(browser_context, tmp_path):
        with widget_page(browser_context, tmp_path / "site", [Figure().to_html()]) as page:
            root = page.locator('[data-widget="figure"]').first
            ...
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from cnnbook.widgets._html import read_asset

if TYPE_CHECKING:  # Playwright is only needed once a browser test runs
    from playwright.sync_api import BrowserContext, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1"}
# Errors of the book's theme that a page may log without failing a test. Empty: the two
# the theme used to log (a duplicated thebe script, an empty colour mode) are fixed by
# tools/sphinx_ext/book_fixes.py. Add a pattern here only with the reason next to it.
KNOWN_BOOK_ERRORS: tuple[str, ...] = ()
IGNORED_SCHEMES = {"data", "about", "blob"}
# Whatever widget HTML holds, it must not load anything from elsewhere.
FORBIDDEN_IN_WIDGET_HTML = (
    "http://",
    "https://",
    "src=",
    "require(",
    "<link",
    "@import",
    "import(",
)
WIDGET_DATA = re.compile(
    r'<script type="application/json" data-role="widget-data">(.*?)</script>', re.DOTALL
)
# The fallback picture inside the "no-js" block (see _html.render_widget).
STATIC_PICTURE = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"]*" [^>]*>')
WIDGET_SCRIPT = re.compile(r"<script>\n(.*?)\n</script>", re.DOTALL)
# every script of the kernel-free widgets, so a new widget's globals are checked too
WIDGET_SCRIPTS = tuple(
    sorted(f.name for f in resources.files("cnnbook.widgets").iterdir() if f.name.endswith(".js"))
)


# ----------------------------------------------------------------------------- widget HTML


def embedded_data(html: str) -> dict:
    """The JSON payload inside one widget's HTML."""
    found = WIDGET_DATA.findall(html)
    assert len(found) == 1, f"expected one data script, found {len(found)}"
    return json.loads(found[0])


def widget_script(html: str) -> str:
    """The inline script of one widget's HTML: base.js, the widget's .js and the call."""
    found = WIDGET_SCRIPT.findall(html)
    assert len(found) == 1, f"expected one inline script, found {len(found)}"
    return found[0]


def assert_self_contained(html: str, widget: str, entry: str) -> dict:
    """Check a widget's HTML needs nothing but itself; return its JSON payload.

    widget: the name in ``data-widget`` (``"sliding-kernel"``); entry: the function the
    widget's .js declares (``"mountSlidingKernel"``).
    """
    # The one src= allowed: the fallback picture, inline as a data: URI.
    html_without_picture = STATIC_PICTURE.sub("", html)
    assert html_without_picture.count("<img") == 0, "one <img> at most: the fallback picture"
    for forbidden in FORBIDDEN_IN_WIDGET_HTML:
        assert forbidden not in html_without_picture, f"widget HTML must not contain {forbidden!r}"
    assert html.isascii(), "pure ASCII: the page's encoding must not matter"
    assert html.startswith(f'<div class="cnnbook-widget cnnbook-{widget}"')
    assert f'data-widget="{widget}"' in html
    assert 'role="figure"' in html and "aria-label=" in html
    assert "<style>" in html and f"{entry}(root, data);" in html
    # the shared files are inlined (style and script), the script in the same wrapper
    assert read_asset("base.css") in html
    script = widget_script(html)
    assert script.startswith("(function () {") and read_asset("base.js") in script
    return embedded_data(html)


# ----------------------------------------------------------------------------- the browser


def require_chromium() -> Path:
    """Chromium's path; skip the test if it is missing, but fail when ``CI`` is set."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without a log line per request in the test output."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 at a free port in a background thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def launch_chromium(playwright, user_data_dir: Path):
    """A persistent Chromium context in a fresh profile directory (Playwright sync API)."""
    executable = require_chromium()
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(executable),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1200, "height": 900},
    )


# How a page says which theme it shows: (attributes of <html>, attributes of <body>).
# "book-dark" is pydata-sphinx-theme's dark mode, "jupyterlab-dark" JupyterLab's dark theme;
# the widgets follow both (base.css).
THEMES = {
    "light": ("", ""),
    "book-dark": (' data-theme="dark"', ""),
    "jupyterlab-dark": ("", ' data-jp-theme-light="false"'),
}


def write_page(
    directory: Path, fragments: list[str], title: str = "widget test", theme: str = "light"
) -> Path:
    """Write ``directory/index.html``: a bare page with the HTML ``fragments`` in order.

    theme: a key of ``THEMES``: the page marks itself dark as the book or JupyterLab does.
    """
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {sorted(THEMES)}, got {theme!r}")
    html_attrs, body_attrs = THEMES[theme]
    directory.mkdir(parents=True, exist_ok=True)
    page = (
        f'<!doctype html><html lang="en"{html_attrs}><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body{body_attrs}>\n"
        + "\n".join(fragments)
        + "\n</body></html>\n"
    )
    path = directory / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def widget_data(root: Locator) -> dict:
    """The JSON payload of the widget ``root`` (a Playwright locator) on a page."""
    return json.loads(root.locator('script[data-role="widget-data"]').text_content())


def ready_widget(page: Page, selector: str) -> tuple[Locator, dict]:
    """The first widget matching ``selector`` once its script has started; and its data."""
    from playwright.sync_api import expect

    root = page.locator(selector).first
    expect(root).to_have_attribute("data-ready", "true")
    return root, widget_data(root)


def skip_unless_in_book(book: Path, path: Path) -> None:
    """Skip the test while the chapter page ``path`` is not in the built ``book`` yet."""
    if not (book / path).exists():
        pytest.skip(f"{path} is not in the built book {book} yet (chapter not written)")


def widget_globals() -> list[str]:
    """Every name the widget scripts declare at their top level (functions, variables)."""
    pattern = re.compile(r"^(?:function|var) ([A-Za-z_$][\w$]*)", re.MULTILINE)
    return sorted({name for f in WIDGET_SCRIPTS for name in pattern.findall(read_asset(f))})


def is_local(url: str) -> bool:
    """True for 127.0.0.1 URLs and for data:/about:/blob: URLs, which leave no machine."""
    parts = urlsplit(url)
    return parts.scheme in IGNORED_SCHEMES or parts.hostname in LOCAL_HOSTS


class PageRecorder:
    """Record a page's requests, console errors and uncaught errors.

    Requests that would leave 127.0.0.1 are aborted (a test must never reach the network)
    and remembered, so ``assert_clean`` reports them. ``known_errors``: regular
    expressions of page or console errors that are not the tested page's fault (say what
    and why where you pass them); matching errors are kept in ``ignored``.
    """

    def __init__(self, page, known_errors: tuple[str, ...] = ()) -> None:
        self.page = page
        self.known_errors = [re.compile(pattern) for pattern in known_errors]
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.ignored: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self._keep(self.page_errors, str(error)))
        page.route("**/*", self._route)

    def _keep(self, errors: list[str], text: str) -> None:
        if any(pattern.search(text) for pattern in self.known_errors):
            self.ignored.append(text)
        else:
            errors.append(text)

    def _on_console(self, message) -> None:
        if message.type == "error":
            self._keep(self.console_errors, message.text)

    def _route(self, route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def external_requests(self) -> list[str]:
        """Every requested URL that is not on 127.0.0.1 (data:/about:/blob: ignored)."""
        return sorted({u for u in self.requests + self.blocked if not is_local(u)})

    def assert_clean(self) -> None:
        """Fail if the page asked for anything outside 127.0.0.1 or logged any error."""
        external = self.external_requests()
        assert not external, f"requests outside 127.0.0.1: {external}"
        assert not self.page_errors, f"uncaught page errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


@contextlib.contextmanager
def checked_page(
    context: BrowserContext,
    site: Path,
    path: str = "index.html",
    known_errors: tuple[str, ...] = (),
) -> Iterator[Page]:
    """Serve ``site``, open ``path`` in a new page of ``context`` and yield the page.

    When the block ends without error, fail if the page asked for anything outside
    127.0.0.1 or logged an error not matched by ``known_errors`` (see ``PageRecorder``).
    """
    with serve_directory(site) as base:
        page = context.new_page()
        recorder = PageRecorder(page, known_errors=known_errors)
        page.goto(f"{base}/{path}", wait_until="load")
        yield page
        recorder.assert_clean()


@contextlib.contextmanager
def widget_page(
    context: BrowserContext,
    directory: Path,
    fragments: list[str],
    title: str = "widget test",
    theme: str = "light",
) -> Iterator[Page]:
    """``checked_page`` on a bare page of widget HTML ``fragments`` (see ``write_page``).

    Also fails if a name of the widget scripts became a page global: each widget's
    script runs in its own function scope.
    """
    write_page(directory, fragments, title, theme)
    with checked_page(context, directory) as page:
        yield page
        leaked = page.evaluate("names => names.filter(n => n in window)", widget_globals())
        assert not leaked, f"widget names leaked into the page's globals: {leaked}"


def checked_book_page(
    context: BrowserContext, book: Path, path: Path
) -> contextlib.AbstractContextManager[Page]:
    """``checked_page`` on ``path`` of the built book; only the theme's known errors pass."""
    return checked_page(context, book, path.as_posix(), known_errors=KNOWN_BOOK_ERRORS)


# ----------------------------------------------------------------------------- colours


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as 0-255 channels."""
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"rgb must be three channels in [0, 255], got {rgb!r}")

    def linear(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours, from 1 (same) to 21 (black on white)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# Colours in the browser: every computed colour reads "rgb(r, g, b)" or "rgba(r, g, b, a)".
# For each visible text (an element with text of its own, a menu showing its choice, but
# not a disabled control: WCAG exempts those) it returns the text colour and the
# background colours behind it: up the tree to the first opaque background colour, with
# every colour of a gradient on the way (hatching) as a candidate of its own and
# translucent layers composited, so the caller can take the worst case.
_TEXT_COLOURS_JS = """
root => {
  const parse = s => {
    const m = s.match(/rgba?\\(([^)]*)\\)/);
    if (!m) { return null; }
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, below) => [0, 1, 2].map(i => top[3] * top[i] + (1 - top[3]) * below[i]);
  const backgrounds = node => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const style = getComputedStyle(n);
      const stops = (style.backgroundImage.match(/rgba?\\([^)]*\\)/g) || []).map(parse);
      const colour = parse(style.backgroundColor);
      if (stops.length) { layers.push({stops: stops}); }
      if (colour && colour[3] > 0) { layers.push({stops: [colour]}); }
      if (colour && colour[3] >= 1) { break; }
    }
    // composite from the bottom layer up, every stop of every layer a case of its own
    let cases = [[255, 255, 255]];
    for (let i = layers.length - 1; i >= 0; i -= 1) {
      const next = [];
      layers[i].stops.forEach(s => cases.forEach(c => next.push(over(s, c))));
      cases = next;
    }
    return cases;
  };
  const out = [];
  root.querySelectorAll("*").forEach(node => {
    const own = Array.from(node.childNodes).some(
      c => c.nodeType === Node.TEXT_NODE && c.textContent.trim());
    if (!(own || node.tagName === "SELECT") || node.closest("[disabled], option, script, style")) {
      return;
    }
    const style = getComputedStyle(node);
    if (!node.getClientRects().length || style.visibility !== "visible") { return; }
    const bgs = backgrounds(node);
    const fg = parse(style.color);
    out.push({
      text: (node.tagName === "SELECT" ? node.value : node.textContent).trim().slice(0, 40),
      tag: node.tagName.toLowerCase(),
      cls: node.className && node.className.baseVal === undefined ? node.className : "",
      fg: bgs.map(b => over(fg, b)),
      bgs: bgs,
    });
  });
  return out;
}
"""


def background_luminance(root: Locator) -> float:
    """Relative luminance of the background colour ``root`` paints itself (must be opaque)."""
    colour = root.evaluate("r => getComputedStyle(r).backgroundColor")
    channels = [float(v) for v in re.findall(r"[\d.]+", colour)]
    assert len(channels) == 3 or channels[3] == 1, f"background is not opaque: {colour}"
    return relative_luminance(tuple(channels[:3]))


def low_contrast_texts(root: Locator, minimum: float = 4.5) -> list[str]:
    """Every visible text inside ``root`` below ``minimum`` contrast against what is behind
    it (the worst case over every background colour found, see ``_TEXT_COLOURS_JS``), as
    readable lines; empty when all pass. Also fails if ``root`` holds no text at all."""
    texts = root.evaluate(_TEXT_COLOURS_JS)
    assert texts, "no visible text found"
    failures = []
    for item in texts:
        worst = min(contrast_ratio(fg, bg) for fg, bg in zip(item["fg"], item["bgs"], strict=True))
        if worst < minimum:
            failures.append(
                f"{worst:.2f}: <{item['tag']} class={item['cls']!r}> {item['text']!r} "
                f"fg {item['fg'][0]} on {item['bgs']}"
            )
    return failures

"""Reusable pieces of the headless-Chromium tests of the kernel-free widgets.

- ``require_chromium()``: path of Debian's Chromium; skips locally, fails under CI.
- ``serve_directory(root)``: a background HTTP server on 127.0.0.1, yields its base URL.
- ``launch_chromium(playwright, user_data_dir)``: a browser context with the flags that work
  on the build machines and no network beyond 127.0.0.1.
- ``PageRecorder``: records every request, console error and page error of a page;
  ``assert_clean()`` fails on any of them.
- ``write_page(directory, fragments)``: a bare HTML page holding widget HTML strings.
- ``KNOWN_BOOK_ERRORS``: console errors of the book's theme, for ``PageRecorder``.

Usage::

    with serve_directory(tmp_path) as base, sync_playwright() as pw:
        context = launch_chromium(pw, tmp_path / "profile")
        page = context.new_page()
        rec = PageRecorder(page)
        page.goto(f"{base}/page.html")
        ...
        rec.assert_clean()
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

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
# Errors of the book's theme, not of any widget (remove an entry once pages load without it):
# - Jupyter Book 1 here (sphinx-thebe 0.3.1 on Sphinx 7.4) writes the inline script
#   `const THEBE_JS_URL = ...` twice into every page, so the second copy throws;
# - pydata-sphinx-theme logs this on a first visit, when no light/dark choice is stored yet.
KNOWN_BOOK_ERRORS = (
    r"Identifier 'THEBE_JS_URL' has already been declared",
    r"^Got invalid theme mode: \. Resetting to auto\.$",
)
IGNORED_SCHEMES = {"data", "about", "blob"}


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


def write_page(directory: Path, fragments: list[str], title: str = "widget test") -> Path:
    """Write ``directory/index.html``: a bare page with the HTML ``fragments`` in order."""
    directory.mkdir(parents=True, exist_ok=True)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body>\n" + "\n".join(fragments) + "\n</body></html>\n"
    )
    path = directory / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


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

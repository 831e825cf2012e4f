"""Shared fixtures: the repository root, the built HTML book, a headless Chromium context
for the widgets' browser tests and a one-thread torch for tiny reference computations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK_HTML = ROOT / "_build" / "html"
BUILD_LOG = ROOT / "_build" / "book-build.log"
# -W: a warning (broken reference, failed cell, missing file) fails the build. `make book`
# uses the same flags (tests/test_tooling.py).
BOOK_BUILD_FLAGS = ["--builder", "html", "-W", "--keep-going"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Build the HTML book once per test session and return it.

    Notebooks that nbval already ran in this session come from the jupyter-cache that
    tools/nbval_cache.py fills; any other notebook is executed by the build.

    Set ``CNNBOOK_REUSE_BOOK=1`` to reuse an existing ``_build/html`` while iterating on
    tests locally; CI never sets it.
    """
    if os.environ.get("CNNBOOK_REUSE_BOOK") == "1" and (BOOK_HTML / "index.html").exists():
        return BOOK_HTML
    vendored = ROOT / "_vendor" / "vendor" / "requirejs" / "require.js"
    if not vendored.exists():
        pytest.fail(f"{vendored} is missing: run `npm ci && python tools/vendor.py` (make install)")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    BUILD_LOG.parent.mkdir(exist_ok=True)
    cmd = [str(jupyter_book), "build", str(ROOT), *BOOK_BUILD_FLAGS]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    BUILD_LOG.write_text(result.stdout + "\n" + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        pytest.fail(f"jupyter-book build failed (full log in {BUILD_LOG}):\n{tail}")
    return BOOK_HTML


@pytest.fixture(scope="module")
def chromium_playwright():
    """Playwright's sync API, once per test module; skips if Chromium or Playwright is missing."""
    from browser_utils import require_chromium  # here: most tests never open a browser

    sync_api = pytest.importorskip("playwright.sync_api")
    require_chromium()
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser_context(chromium_playwright, tmp_path):
    """A fresh headless Chromium context (see browser_utils.launch_chromium), closed after."""
    from browser_utils import launch_chromium

    ctx = launch_chromium(chromium_playwright, tmp_path / "chromium-profile")
    yield ctx
    ctx.close()


@pytest.fixture
def one_thread():
    """Tiny CPU tensors: a second thread only costs time on a busy machine."""
    import torch  # here, so that tests without torch do not pay for importing it

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

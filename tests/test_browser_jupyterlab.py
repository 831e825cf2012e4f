"""A saved notebook opened untrusted in JupyterLab shows a picture for every widget.

JupyterLab strips ``<script>``/``<style>`` from untrusted HTML and does not render widget
views there, so the kernel-free widgets would show only their "needs JavaScript" note and
a live explorer its ``VBox(children=...)`` text. This test executes a small notebook
(nbclient) that displays each kernel-free widget and a live explorer, saves it unsigned,
serves it with a real JupyterLab on 127.0.0.1 and checks in headless Chromium that every
widget output shows an image of non-zero size and that no output reads ``VBox(``.
Screenshots of the top and the end are left in the test's tmp folder and in /tmp
(cnnbook-jupyterlab-untrusted.png, cnnbook-jupyterlab-untrusted-end.png).

A second test does the same with a real chapter as a reader downloads it: chapter 2
(the sliding kernel) executed top to bottom and saved, unsigned.

A third opens the small notebook signed (trusted: the widgets' scripts run) in JupyterLab's
dark theme and checks that the widgets follow it (issue 17): a dark panel and readable text.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from browser_utils import background_luminance, low_contrast_texts

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/cnnbook-jupyterlab-untrusted.png")
ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "chapters" / "02_convolution_operation.ipynb"
CELLS = [
    "import matplotlib\nmatplotlib.use('Agg')\nimport ipywidgets as widgets\n"
    "import matplotlib.pyplot as plt\nfrom cnnbook.photos import sample_photo\n"
    "from cnnbook.widgets import ConvArithmetic, ReceptiveField, SlidingKernel\n"
    "from cnnbook.widgets.live import explorer\n"
    "from cnnbook.widgets.sliding_kernel import EXAMPLE_INPUT, EXAMPLE_KERNEL",
    "SlidingKernel(EXAMPLE_INPUT, EXAMPLE_KERNEL)",
    "ConvArithmetic()",
    "ReceptiveField(sample_photo('chelsea'), layers=['conv3', 'pool2'], max_layers=2, size=32)",
    "def draw(k):\n    fig, ax = plt.subplots(figsize=(3, 2))\n    ax.plot(range(5), "
    "[k * i for i in range(5)])\n    return fig\n\nexplorer(draw, k=widgets.IntSlider(value=2))",
]
WIDGET_CELLS = 4  # every cell but the imports shows one widget


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _executed_notebook(path: Path, trusted_in: Path | None = None) -> None:
    """Run CELLS with nbclient and save the notebook with its outputs, unsigned; or signed
    in the trust database of the Jupyter data directory ``trusted_in``."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    if trusted_in is not None:
        from nbformat.sign import NotebookNotary

        trusted_in.mkdir(parents=True, exist_ok=True)
        NotebookNotary(data_dir=str(trusted_in)).sign(nb)
    nbformat.write(nb, path)  # nbformat.write does not sign: untrusted unless signed above


def _lab_settings(directory: Path, dark: bool = False) -> None:
    """Render every cell (no virtual scrolling) and ask no news question over the page;
    dark: in the theme "JupyterLab Dark"."""
    settings = {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false"},
    }
    if dark:
        settings["apputils-extension/themes"] = {"theme": "JupyterLab Dark"}
    for name, value in settings.items():
        target = directory / "@jupyterlab" / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))


@contextlib.contextmanager
def jupyterlab(root: Path, home: Path, dark: bool = False) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving ``root``; yields its base URL with token.

    Its Jupyter data directory (trust database) is ``home / "data"``; dark: the dark theme.
    """
    port, token = _free_port(), secrets.token_hex(16)
    _lab_settings(home / "settings", dark)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),  # a fresh trust database: nothing is trusted
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines often run as root
    log = home / "jupyterlab.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield f"{base}/lab/tree/{{path}}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def test_untrusted_notebook_shows_a_picture_for_every_widget(browser_context, tmp_path):
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("JupyterLab is not installed in this environment")
    root = tmp_path / "notebooks"
    root.mkdir()
    _executed_notebook(root / "widgets.ipynb")
    with jupyterlab(root, tmp_path / "jupyter") as url:
        page = browser_context.new_page()
        page.goto(url.format(path="widgets.ipynb"))
        outputs = page.locator(".jp-Cell .jp-OutputArea-output")
        outputs.nth(WIDGET_CELLS - 1).wait_for(timeout=45_000)
        # every picture decoded and laid out
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-OutputArea-output img')]"
            ".every(img => img.complete && img.naturalWidth > 0)",
            timeout=15_000,
        )
        # JupyterLab scrolls inside the notebook panel: one shot at the top, one at the end
        page.screenshot(path=str(tmp_path / "jupyterlab.png"))
        shutil.copyfile(tmp_path / "jupyterlab.png", SCREENSHOT)
        outputs.nth(WIDGET_CELLS - 1).scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "jupyterlab-end.png"))
        shutil.copyfile(
            tmp_path / "jupyterlab-end.png", SCREENSHOT.with_name(SCREENSHOT.stem + "-end.png")
        )
        assert outputs.count() == WIDGET_CELLS
        for i in range(WIDGET_CELLS):
            output = outputs.nth(i)
            text = output.inner_text()
            assert "VBox(" not in text, f"output {i} shows the widget's text repr: {text[:200]}"
            images = output.locator("img")
            assert images.count() == 1, f"output {i}: {images.count()} images"
            box = images.first.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 50, f"output {i}: {box}"
        # untrusted indeed: the HTML widgets' scripts did not run
        assert page.locator('[data-ready="true"]').count() == 0
        assert "needs JavaScript" in outputs.nth(0).inner_text()


def _executed_chapter(path: Path) -> int:
    """Execute CHAPTER top to bottom, save it unsigned; the number of widget outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(CHAPTER, as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(CHAPTER.parent)}},
    ).execute()
    nbformat.write(nb, path)
    return sum(
        "cnnbook-widget" in str(out.get("data", {}).get("text/html", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )


def test_untrusted_executed_chapter_shows_its_widgets_as_pictures(browser_context, tmp_path):
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("JupyterLab is not installed in this environment")
    root = tmp_path / "notebooks"
    root.mkdir()
    widgets = _executed_chapter(root / CHAPTER.name)
    assert widgets >= 1, f"{CHAPTER.name} should show the sliding kernel"
    with jupyterlab(root, tmp_path / "jupyter") as url:
        page = browser_context.new_page()
        page.goto(url.format(path=CHAPTER.name))
        notes = page.locator(".jp-OutputArea-output", has_text="needs JavaScript")
        notes.nth(widgets - 1).wait_for(timeout=60_000)
        assert notes.count() == widgets, f"{notes.count()} of {widgets} widgets show their note"
        for i in range(widgets):
            image = notes.nth(i).locator("img")
            image.first.scroll_into_view_if_needed()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=image.first.element_handle()
            )
            box = image.first.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 50, f"widget {i}: {box}"
        notes.first.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "chapter.png"))
        shutil.copyfile(
            tmp_path / "chapter.png", SCREENSHOT.with_name("cnnbook-jupyterlab-chapter.png")
        )
        shown = "\n".join(page.locator(".jp-OutputArea").all_inner_texts())
        assert "SlidingKernel(" not in shown and "VBox(" not in shown, "a widget shows as text"


def test_trusted_widgets_follow_the_dark_theme(browser_context, tmp_path):
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("JupyterLab is not installed in this environment")
    root = tmp_path / "notebooks"
    root.mkdir()
    home = tmp_path / "jupyter"
    _executed_notebook(root / "widgets.ipynb", trusted_in=home / "data")
    with jupyterlab(root, home, dark=True) as url:
        page = browser_context.new_page()
        page.goto(url.format(path="widgets.ipynb"))
        roots = page.locator('.jp-OutputArea-output [data-ready="true"]')
        roots.nth(2).wait_for(timeout=60_000)  # the three kernel-free widgets ran
        assert page.locator("body").get_attribute("data-jp-theme-light") == "false"
        page.screenshot(path=str(tmp_path / "jupyterlab-dark.png"))
        shutil.copyfile(
            tmp_path / "jupyterlab-dark.png", SCREENSHOT.with_name("cnnbook-jupyterlab-dark.png")
        )
        for i in range(roots.count()):
            root_i = roots.nth(i)
            root_i.scroll_into_view_if_needed()
            assert background_luminance(root_i) < 0.2, f"widget {i} is not dark"
            assert not low_contrast_texts(root_i), f"widget {i} has text below 4.5:1"

"""The vendored ipywidgets manager with the book's shims, in headless Chromium, no book build.

The book's own pages only hold tqdm bars, which need neither the Font Awesome icons nor a
typeset label; this page holds widgets that need both, loaded exactly as ``_config.yml``
loads the scripts, from a page one folder below ``_static/`` like every chapter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from browser_utils import checked_page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
VENDORED = ROOT / "_vendor" / "vendor"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def book_scripts() -> list[str]:
    """The paths under ``_static/`` of the widget scripts and MathJax, in the book's order."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    return [*config["nb_ipywidgets_js"], config["mathjax_path"]]


def widget_page_html(state: dict, views: list[dict], scripts: list[str]) -> str:
    """A chapter-like page: the scripts from ``../_static/``, the state and the views."""
    head = [f'<script src="../_static/{path}"></script>' for path in scripts[:-1]]
    head.append(f'<script defer src="../_static/{scripts[-1]}"></script>')  # MathJax
    head.append(f'<script type="{WIDGET_STATE}">{json.dumps(state)}</script>')
    body = [f'<script type="{WIDGET_VIEW}">{json.dumps(view)}</script>' for view in views]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>widgets</title>'
        + "".join(head)
        + "</head><body><p>Math on the page: \\(x^2\\)</p>"
        + "".join(body)
        + "</body></html>"
    )


def test_manager_renders_icons_and_labels_offline(browser_context, tmp_path: Path):
    ipywidgets = pytest.importorskip("ipywidgets")
    from ipywidgets.embed import embed_data

    if not (VENDORED / "html-manager" / "embed-amd.js").exists():
        pytest.fail(f"{VENDORED} is incomplete: run `npm ci && python tools/vendor.py`")
    site = tmp_path / "site"
    shutil.copytree(VENDORED, site / "_static" / "vendor")
    # a described control: the manager typesets its label (MathJax 2 API, the Hub shim);
    # Play's buttons are Font Awesome icons (the fonts' folder, the assets-path shim)
    box = ipywidgets.VBox(
        [ipywidgets.Dropdown(options=["3x3", "5x5"], description="Kernel"), ipywidgets.Play()]
    )
    data = embed_data(views=[box])
    chapter = site / "chapters" / "widgets.html"
    chapter.parent.mkdir()
    chapter.write_text(widget_page_html(data["manager_state"], data["view_specs"], book_scripts()))

    with checked_page(browser_context, site, "chapters/widgets.html") as page:
        page.wait_for_selector(".widget-dropdown select", timeout=20_000)
        page.locator(".widget-play .fa").first.wait_for(timeout=20_000)
        fonts = page.evaluate(
            """() => document.fonts.ready.then(() => performance
                .getEntriesByType("resource")
                .map((entry) => entry.name)
                .filter((url) => /[.](woff2?|ttf|eot)$/.test(url)))"""
        )
        assert page.locator(".widget-dropdown label").inner_text() == "Kernel"
        # a page error (MathJax.Hub missing) or a 404 font fails at the end of the block
    icon_fonts = [url for url in fonts if "/_static/vendor/mathjax/" not in url]
    assert icon_fonts, f"the Play buttons' icon font was never requested: {fonts}"
    assert all("/_static/vendor/html-manager/" in url for url in icon_fonts), icon_fonts

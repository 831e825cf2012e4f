"""The HTML book: every chapter built with executed outputs, offline-ready, launchable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parent.parent
CDN = re.compile(r"""(src|href)=["']https?://[^"']*(cdn|jsdelivr|unpkg|cdnjs)[^"']*["']""")


def _chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"]]


def _notebooks() -> list[str]:
    """Pages built from notebooks: only these get launch buttons (Markdown pages have no kernel)."""
    return [c for c in _chapters() if (ROOT / f"{c}.ipynb").exists()]


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def test_every_chapter_page_is_built_with_outputs(built_book: Path):
    assert (built_book / "index.html").exists()
    for chapter in _chapters():
        page = built_book / f"{chapter}.html"
        assert page.exists(), f"{page} was not built"
        html = page.read_text()
        if (ROOT / f"{chapter}.ipynb").exists():
            assert "cnnbook profile:" in html, f"{page.name}: the setup cell's output is missing"
            if re.match(r"chapters/\d\d_", chapter):  # numbered chapters (profile_notes)
                assert "These outputs come from the" in html, f"{page.name}: no profile note"
        assert "Traceback" not in html, f"{page.name} shows a traceback"


def test_pages_load_scripts_from_the_book_not_from_cdns(built_book: Path):
    vendored = built_book / "_static" / "vendor"
    for rel in ("requirejs/require.js", "html-manager/embed-amd.js", "mathjax/tex-mml-chtml.js"):
        assert (vendored / rel).exists(), f"vendored {rel} missing from the built book"
    for chapter in _chapters():
        html = (built_book / f"{chapter}.html").read_text()
        offenders = CDN.findall(html)
        assert not offenders, f"{chapter}: loads from a CDN: {offenders}"
        if "application/vnd.jupyter.widget-state+json" in html:  # live ipywidgets on the page
            assert "_static/vendor/requirejs/require.js" in html
            assert "_static/vendor/html-manager/embed-amd.js" in html


def test_pages_leave_out_the_themes_icon_script(built_book: Path):
    """tools/templates/layout.html turns pydata-sphinx-theme's 1.5 MB fontawesome.js into an
    inert block; the theme's stylesheet still draws the icons with the web fonts."""
    css = next((built_book / "_static" / "styles").glob("pydata-sphinx-theme.css")).read_text()
    assert "Font Awesome" in css and ".fa-github" in css, "the theme's CSS no longer has icons"
    for page in built_book.rglob("*.html"):
        if "_static" in page.parts:  # the theme's own templates, copied as they are
            continue
        html = page.read_text()
        loads = re.search(r'<script src="[^"]*scripts/fontawesome\.js', html)
        assert not loads, f"{page.relative_to(built_book)} loads fontawesome.js"


def test_launch_buttons_point_at_the_notebook(built_book: Path):
    url = _config()["repository"]["url"].rstrip("/")
    owner_repo = url.split("github.com/")[1]
    assert _notebooks(), "the table of contents lists no notebooks"
    for chapter in _notebooks():
        html = (built_book / f"{chapter}.html").read_text()
        colab = f"https://colab.research.google.com/github/{owner_repo}/blob/main/{chapter}.ipynb"
        assert colab in html, f"{chapter}: no Colab button for {colab}"
        binder = f"https://mybinder.org/v2/gh/{owner_repo}/main?urlpath="
        assert binder in html and f"{chapter}.ipynb" in html, f"{chapter}: no Binder button"


def test_math_uses_the_vendored_mathjax(built_book: Path):
    pages = [(built_book / f"{c}.html").read_text() for c in _chapters()]
    with_math = [p for p in pages if "math notranslate" in p]
    assert with_math, "no chapter page renders math; expected formulas in chapters 1-2"
    for html in with_math:
        assert "_static/vendor/mathjax/tex-mml-chtml.js" in html


def test_sliding_kernel_widget_is_in_chapter_2(built_book: Path):
    html = (built_book / "chapters" / "02_convolution_operation.html").read_text()
    assert 'data-widget="sliding-kernel"' in html


def test_no_page_repeats_a_script(built_book: Path):
    """A repeated inline `const` declaration throws in the browser (see book_fixes.py)."""
    for chapter in ["intro", *_chapters()]:
        html = (built_book / f"{chapter}.html").read_text()
        head = html.split("</head>", 1)[0]
        scripts = re.findall(r"<script[^>]*>.*?</script>", head, re.S)
        repeated = {s[:80] for s in scripts if scripts.count(s) > 1}
        assert not repeated, f"{chapter}: scripts included twice: {sorted(repeated)}"


def test_widget_manager_finds_its_fonts(built_book: Path):
    """The ipywidgets manager loads icon fonts relative to a path we set, not the page."""
    shim = (built_book / "_static" / "vendor" / "widgets-assets-path.js").read_text()
    assert "__jupyter_widgets_assets_path__" in shim
    for chapter in _chapters():
        html = (built_book / f"{chapter}.html").read_text()
        if "_static/vendor/html-manager/embed-amd.js" in html:
            order = [
                html.index(f"_static/vendor/{name}")
                for name in ("requirejs/require.js", "widgets-assets-path.js", "html-manager/")
            ]
            assert order == sorted(order), f"{chapter}: load require.js, the shim, the manager"


PAGE_BUDGET = 3 * 1024 * 1024
IMG = re.compile(r"<img\b[^>]*>", re.S)
ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')


def _images(html: str) -> list[dict[str, str]]:
    return [dict(ATTR.findall(tag)) for tag in IMG.findall(html)]


def test_no_chapter_page_with_its_images_is_above_3_mb(built_book: Path):
    heavy = {}
    for chapter in _chapters():
        page = built_book / f"{chapter}.html"
        html = page.read_text()
        sources = {img["src"] for img in _images(html) if not img["src"].startswith("data:")}
        size = page.stat().st_size + sum((page.parent / s).stat().st_size for s in sources)
        if size > PAGE_BUDGET:
            heavy[chapter] = f"{size / 2**20:.2f} MB"
    assert not heavy, f"pages over 3 MB (compress figures, lower their DPI): {heavy}"


def test_every_figure_has_alt_text(built_book: Path):
    """Output figures get the prose before them as alt text (tools/sphinx_ext/figure_alt.py)."""
    for chapter in _chapters():
        for img in _images((built_book / f"{chapter}.html").read_text()):
            alt = img.get("alt", "").strip()
            source = img.get("src", "")
            assert alt, f"{chapter}: image {source[:60]} has no alt text"
            looks_like_a_file = re.search(r"\.(png|jpe?g|svg|gif)$", alt, re.I)
            assert not looks_like_a_file, f"{chapter}: alt text of {source[:60]} is a file name"


def test_no_notebook_page_shows_hidden_tests(built_book: Path):
    """The check cells run at build time, but tools/sphinx_ext/hidden_tests.py hides their
    hidden part, on the page and in the notebook offered for download."""
    for chapter in _notebooks():
        html = (built_book / f"{chapter}.html").read_text()
        assert "HIDDEN TESTS" not in html, f"{chapter}.html shows hidden tests"
    for download in built_book.glob("_sources/**/*.ipynb"):
        assert "BEGIN HIDDEN TESTS" not in download.read_text(), download.name


MATPLOTLIB_REPR = re.compile(r"&lt;(matplotlib\.|Figure size|Axes:)|^Text\(", re.M)


def _uses_live_widgets(chapter: str) -> bool:
    """A notebook that builds ipywidgets explorers (cnnbook.widgets.live) on purpose."""
    notebook = ROOT / f"{chapter}.ipynb"
    return notebook.exists() and "cnnbook.widgets.live" in notebook.read_text()


def test_no_page_loads_the_widget_manager(built_book: Path):
    """Progress bars become one line of text and live explorers their note and first figure
    (tools/widget_outputs.py): with no kernel behind the page nothing needs replaying, so no
    page loads the 15 MB widget manager."""
    loading = {
        c
        for c in _chapters()
        if "html-manager/embed-amd.js" in (built_book / f"{c}.html").read_text()
    }
    assert not loading, f"pages that load the widget manager: {sorted(loading)}"
    live = {c for c in _chapters() if _uses_live_widgets(c)}
    assert live, "expected the live explorers of chapters 12-13"
    for chapter in live:
        html = (built_book / f"{chapter}.html").read_text()
        assert "cnnbook-live-static" in html, f"{chapter}: no live explorer shown as a figure"


def test_no_page_shows_a_matplotlib_repr_or_a_progress_widget(built_book: Path):
    for chapter in _notebooks():
        html = (built_book / f"{chapter}.html").read_text()
        outputs = html.split('class="cell_output')[1:]  # each output area to the page's end
        text = "\n".join(re.sub(r"<[^>]+>", "", o.split('class="cell ', 1)[0]) for o in outputs)
        reprs = MATPLOTLIB_REPR.findall(text)
        assert not reprs, f"{chapter}: matplotlib reprs in the page: {reprs[:3]}"
        bars = re.findall(r"\d+%\|[^\n]*\|", text)  # tqdm's text bar drawn with |
        assert not bars, f"{chapter}: a progress bar drawn as text: {bars[:2]}"

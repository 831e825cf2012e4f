"""The PDF book (`make pdf`): built by XeLaTeX, complete, fonts embedded, widgets as images.

The tests that build the whole PDF are marked ``pdf`` and left out of the default run
(see README, Tests): ``make test-pdf`` runs them. The first test needs no TeX: it builds a
one-notebook book with the LaTeX builder and this book's settings to check that a widget
output is printed as its PNG.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from tools_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
build_pdf = load_tool("build_pdf.py")

HIDDEN_TESTS_EXTENSION = ROOT / "tools" / "sphinx_ext" / "hidden_tests.py"
# A 1x1 PNG: a bundle's static image.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _chapter_titles() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    titles = []
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            path = ROOT / f"{chapter['file']}.ipynb"
            if path.exists():
                cells = nbformat.read(path, as_version=4).cells
                text = next(c.source for c in cells if c.cell_type == "markdown")
            else:
                text = (ROOT / f"{chapter['file']}.md").read_text()
            titles.append(re.search(r"^# (.+)$", text, re.M).group(1).strip())
    return titles


def test_latex_prints_a_widget_bundle_as_its_png(tmp_path: Path):
    """An output with a widget view, HTML, a PNG and a text repr becomes the PNG."""
    book = tmp_path / "book"
    book.mkdir()
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {
                    "model_id": "0" * 32,
                    "version_major": 2,
                    "version_minor": 0,
                },
                "text/html": "<div>HTML-OF-THE-WIDGET</div>",
                "image/png": base64.b64encode(PNG_1X1).decode(),
                "text/plain": "SlidingKernel(image 5x5, kernel 3x3)",
            },
        )
    ]
    notebook.cells = [nbformat.v4.new_markdown_cell("# A widget"), cell]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.write(notebook, book / "page.ipynb")
    ours = _config()["sphinx"]["config"]
    config = {
        "title": "t",
        "author": "a",
        "execute": {"execute_notebooks": "off"},
        "latex": _config()["latex"],
        "sphinx": {
            "config": {
                "nb_mime_priority_overrides": ours["nb_mime_priority_overrides"],
                "suppress_warnings": ours["suppress_warnings"],
            }
        },
    }
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jupyter_book), "build", str(book), "--builder", "latex", "-W"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    tex = (book / "_build" / "latex" / "cnnbook.tex").read_text()
    assert r"\sphinxincludegraphics" in tex, "the widget's PNG is not in the LaTeX"
    assert "SlidingKernel" not in tex, "the widget printed as its text repr"
    assert "HTML-OF-THE-WIDGET" not in tex


@pytest.fixture(scope="session")
def built_pdf() -> Path:
    """Build the PDF once per session (notebook outputs from the jupyter-cache).

    Set ``CNNBOOK_REUSE_PDF=1`` to check an existing ``_build/latex/cnnbook.pdf`` while
    iterating on these tests; CI never sets it.
    """
    if os.environ.get("CNNBOOK_REUSE_PDF") == "1" and build_pdf.PDF.exists():
        return build_pdf.PDF
    if build_pdf.missing_tex_tools() or shutil.which("pdffonts") is None:
        message = "TeX Live or poppler-utils is missing: run `make tex` (as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        return build_pdf.build_pdf()
    except build_pdf.PdfBuildError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def pdf_text(built_pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(built_pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.pdf
def test_pdf_has_the_whole_book(built_pdf: Path, pdf_text: str):
    info = subprocess.run(["pdfinfo", str(built_pdf)], capture_output=True, text=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    chapters = _chapter_titles()
    assert pages > 10 * len(chapters), f"only {pages} pages for {len(chapters)} chapters"
    flat = " ".join(pdf_text.split()).replace("\u2019", "'")  # typographic apostrophes
    missing = [title for title in chapters if " ".join(title.split()) not in flat]
    assert not missing, f"chapter titles not in the PDF: {missing}"
    times = json.loads(build_pdf.TIMES.read_text()) if build_pdf.TIMES.exists() else {}
    print(f"\nPDF: {pages} pages, {built_pdf.stat().st_size / 2**20:.1f} MB, {times}")


@pytest.mark.pdf
def test_title_page_names_the_book_and_its_authors(built_pdf: Path):
    config = _config()
    first = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-f", "1", "-l", "1", str(built_pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(first.split())
    assert config["title"] in flat and config["author"] in flat, flat[:300]
    info = subprocess.run(["pdfinfo", str(built_pdf)], capture_output=True, text=True).stdout
    assert re.search(rf"^Title:\s+{re.escape(config['title'])}$", info, re.M), info
    assert re.search(rf"^Author:\s+{re.escape(config['author'])}$", info, re.M), info


@pytest.mark.pdf
def test_every_font_is_embedded(built_pdf: Path):
    rows = subprocess.run(
        ["pdffonts", str(built_pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    assert rows, "pdffonts lists no fonts"
    # columns: name type encoding emb sub uni object ID; name and type may hold spaces
    not_embedded = [row for row in rows if row.split()[-5] != "yes"]
    assert not not_embedded, f"fonts not embedded: {not_embedded}"


@pytest.mark.pdf
def test_no_missing_figure_reference_or_glyph(built_pdf: Path, pdf_text: str):
    log = (built_pdf.parent / "cnnbook.log").read_text(errors="replace")
    problems = [
        line
        for line in log.splitlines()
        if re.search(r"File `.*' not found|not found on input line|Missing character", line)
        or re.search(r"(Reference|Citation) .* undefined", line)
    ]
    assert not problems, "LaTeX log:\n" + "\n".join(problems[:20])
    assert "??" not in pdf_text, "unresolved reference (??) in the PDF"
    assert "Traceback" not in pdf_text, "a notebook output shows a traceback"


@pytest.mark.pdf
def test_install_cells_are_left_out(pdf_text: str):
    """The `remove-cell` install cell at the top of every chapter is not printed."""
    repo = _config()["repository"]["url"].rstrip("/")
    assert f"git+{repo}" not in pdf_text
    assert "This installs the book" not in pdf_text


@pytest.mark.pdf
def test_hidden_tests_are_left_out(pdf_text: str):
    if not HIDDEN_TESTS_EXTENSION.exists():
        pytest.skip(f"{HIDDEN_TESTS_EXTENSION.relative_to(ROOT)} (strips hidden tests) not merged")
    # marker lines as code prints them (Appendix C may name the markers in its prose)
    markers = re.findall(r"^\s*#+\s*(?:BEGIN|END) HIDDEN TESTS\s*$", pdf_text, re.M)
    assert not markers, f"{len(markers)} hidden-test marker lines printed, e.g. {markers[:3]}"

"""tools/sphinx_ext/hidden_tests.py: the HTML book never shows the hidden tests."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from docutils import nodes
from tools_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
ext = load_tool("sphinx_ext/hidden_tests.py")

CHECK = (
    "check_function(f, g, cases)\n### BEGIN HIDDEN TESTS\n"
    "check_function(f, g, secret_cases)\n### END HIDDEN TESTS\nprint('after')\n"
)


def test_strip_hidden_keeps_the_rest():
    assert ext.strip_hidden(CHECK) == "check_function(f, g, cases)\nprint('after')\n"
    assert ext.strip_hidden("x = 1") == "x = 1"


def test_literal_blocks_in_a_doctree_are_rewritten():
    doc = nodes.document(None, None)
    block = nodes.literal_block(CHECK, CHECK)
    other = nodes.literal_block("y = 2", "y = 2")
    doc += [block, other]
    assert ext.remove_hidden_tests(doc) == 1
    assert "secret_cases" not in block.astext() and "HIDDEN" not in block.astext()
    assert block.astext().startswith("check_function(f, g, cases)") and other.astext() == "y = 2"


def test_a_tiny_myst_nb_build_hides_them(tmp_path: Path):
    """Sphinx + myst-nb (execution off) on one notebook: the page and the download."""
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tools' / 'sphinx_ext')!r})\n"
        "extensions = ['myst_nb', 'hidden_tests']\nnb_execution_mode = 'off'\n"
        "exclude_patterns = ['_build']\n"
    )
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Page"), nbformat.v4.new_code_cell(CHECK)]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, src / "index.ipynb")
    out = tmp_path / "html"
    assert build_main(["-q", "-b", "html", str(src), str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "cases" in page and "secret_cases" not in page and "HIDDEN TESTS" not in page
    for download in out.glob("_sources/**/*.ipynb"):
        assert "secret_cases" not in download.read_text()
    sys.modules.pop("hidden_tests", None)

"""Keep exercises' hidden tests out of the published book.

A check cell ends with the teacher's extra checks between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. The cell still runs when the book is built (its outputs, a tick
per check, are kept), but the HTML shows the cell without those lines: on
``doctree-read`` every code block is rewritten without them, markers included. The
notebooks offered for download (``_sources/``) get the same treatment when the build
finishes. The tests stay in the repository, so an open book's hidden tests are for
self-study; a course keeps its own in a private folder (``make grade
GRADE_FLAGS=--private-tests=DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def strip_hidden(text: str) -> str:
    """``text`` without the hidden-test regions (marker lines included)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == BEGIN:
            inside = True
        elif stripped == END:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out).rstrip("\n") + ("\n" if text.endswith("\n") and out else "")


def remove_hidden_tests(doctree: nodes.Node) -> int:
    """Rewrite every literal block that holds hidden tests; return how many changed."""
    changed = 0
    for block in list(doctree.findall(nodes.literal_block)):
        text = block.astext()
        if BEGIN not in text:
            continue
        shown = strip_hidden(text)
        block.children = []
        block += nodes.Text(shown)
        block.rawsource = shown
        changed += 1
    return changed


def _on_doctree_read(app, doctree) -> None:
    remove_hidden_tests(doctree)


def strip_notebook_file(path: Path) -> bool:
    """Remove hidden tests from the code cells of a notebook file; True if it changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    changed = False
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "code" and BEGIN in text:
            cell["source"] = strip_hidden(text)
            changed = True
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def _on_build_finished(app, exception) -> None:
    if exception is None:
        for path in Path(app.outdir).glob("_sources/**/*.ipynb"):
            strip_notebook_file(path)


def setup(app):
    app.connect("doctree-read", _on_doctree_read)
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

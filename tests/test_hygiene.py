"""The repository's own rules: clean notebooks, a complete table of contents, one URL."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import yaml
from tools_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
# Numbered chapters teach and end with exercises; lettered appendices are reference pages.
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
NAME = re.compile(r"^(\d\d|[A-Z])_[a-z0-9_]+\.ipynb$")


def _load_tool(name: str):
    return load_tool(f"{name}.py")


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def _sources(nb, kind: str) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == kind)


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 2, "chapters/ should hold the chapter notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_toc_and_named_by_number(path: Path):
    assert NAME.match(path.name), f"{path.name} should be named NN_slug.ipynb (X_slug: appendix)"
    stem = path.relative_to(ROOT).with_suffix("").as_posix()
    assert stem in _toc_files(), f"{stem} is missing from _toc.yml"


def test_every_toc_entry_exists():
    for entry in _toc_files():
        matches = list(ROOT.glob(entry + ".*"))
        assert matches, f"_toc.yml lists {entry}, but no such file exists"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_the_required_parts(path: Path):
    nb = nbformat.read(path, as_version=4)
    text, code = _sources(nb, "markdown"), _sources(nb, "code")
    for heading in (
        "What you will learn",
        "Prerequisites",
        "## Summary",
        "## Exercises",
        "## Interview questions",
    ):
        assert heading in text, f"{path.name} has no '{heading}' section"
    assert len(re.findall(r"^### Exercise", text, re.M)) >= 3, (
        f"{path.name}: fewer than 3 exercises"
    )
    assert code.count("### BEGIN SOLUTION") >= 3, f"{path.name}: exercises need solution markers"
    assert code.count("### BEGIN SOLUTION") == code.count("### END SOLUTION")
    assert "check_" in code, f"{path.name}: exercises should be checked automatically"
    assert re.search(r"^\s*assert ", code, re.M), f"{path.name}: no assert checks a claim"
    assert ":class: dropdown" in text, f"{path.name}: interview answers should be collapsed"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def _sync_tool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, ROOT / "tools" / "sync_install_cell.py", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_cells_match_the_configured_repository_and_version():
    run = _sync_tool("--check")
    assert run.returncode == 0, f"stale install cells:\n{run.stdout}{run.stderr}"


def test_sync_check_fails_on_a_stale_cell_or_a_version_mismatch(tmp_path: Path):
    for name in ("_config.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "chapters").mkdir()
    for path in NOTEBOOKS[:2]:
        shutil.copy(path, tmp_path / "chapters" / path.name)
    first, second = (p.name for p in NOTEBOOKS[:2])
    assert _sync_tool("--check", "--root", tmp_path).returncode == 0

    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    version = _load_tool("sync_install_cell").project_version(ROOT)
    pyproject.write_text(text.replace(f'version = "{version}"', 'version = "9.9.9"', 1))
    run = _sync_tool("--check", "--root", tmp_path)
    assert run.returncode == 1 and first in run.stdout and second in run.stdout, run.stdout
    assert "v9.9.9" in run.stdout, "the message should name the expected release"
    pyproject.write_text(text)

    nb = nbformat.read(tmp_path / "chapters" / second, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace(f"@v{version}", "")  # the moving branch
    nbformat.write(nb, tmp_path / "chapters" / second)
    run = _sync_tool("--check", "--root", tmp_path)
    assert run.returncode == 1 and second in run.stdout and first not in run.stdout, run.stdout

    assert _sync_tool("--root", tmp_path).returncode == 0
    assert _sync_tool("--check", "--root", tmp_path).returncode == 0
    synced = nbformat.read(tmp_path / "chapters" / second, as_version=4)
    original = nbformat.read(NOTEBOOKS[1], as_version=4)
    assert synced.cells == original.cells, "sync should restore exactly the committed cells"


def test_the_version_is_written_once():
    """pyproject's version = the tag every install cell installs = cnnbook.__version__."""
    version = _load_tool("sync_install_cell").project_version(ROOT)
    for path in NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0].source
        assert f'@v{version}"' in first, f"{path.name} does not install v{version}"
        assert f"/v{version}.zip" in first, f"{path.name}: the fallback names another version"
    import cnnbook

    # An editable install leaves a setuptools egg-info in utils/ beside the pip-installed
    # dist-info; only the latter says where it was installed from.
    found = list(importlib.metadata.distributions(name="cnnbook"))
    installed = next((d for d in found if d.read_text("direct_url.json")), found[0])
    assert cnnbook.__version__ == installed.version, "__version__ should come from the metadata"
    origin = json.loads(installed.read_text("direct_url.json") or "{}").get("url")
    if origin != ROOT.as_uri():
        pytest.skip(f"cnnbook is installed from {origin}, not this checkout")
    assert installed.version == version, "reinstall (make install): the metadata is stale"


def test_requirements_are_ranges():
    pinned = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    ]
    assert not pinned, f"requirements.txt should use ranges, not exact pins: {pinned}"
    assert "-e ." in (ROOT / "requirements.txt").read_text()


def _headings(path: Path) -> list[int]:
    if path.suffix == ".md":
        text = path.read_text()
    else:
        text = _sources(nbformat.read(path, as_version=4), "markdown")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code and admonition blocks
    return [len(m.group(1)) for m in re.finditer(r"^(#{1,6}) ", text, re.M)]


@pytest.mark.parametrize("entry", _toc_files(), ids=str)
def test_headings_are_in_order(entry: str):
    """One title, and no level skipped: screen readers navigate pages by their headings."""
    path = next(p for p in ROOT.glob(entry + ".*") if p.suffix in (".md", ".ipynb"))
    levels = _headings(path)
    assert levels and levels[0] == 1 and levels.count(1) == 1, f"{path.name}: one # title first"
    jumps = [(a, b) for a, b in zip(levels, levels[1:], strict=False) if b > a + 1]
    assert not jumps, f"{path.name}: heading levels skip: {jumps}"


def test_teachers_guide_lists_every_exercise_as_the_chapters_define_it():
    """Appendix D's exercise table is written from the chapters (tools/course_plan.py)."""
    run = subprocess.run(
        [sys.executable, ROOT / "tools" / "course_plan.py", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    guide = (ROOT / "chapters" / "D_teachers_guide.md").read_text()
    for path in CHAPTERS:
        assert f"]({path.name})" in guide, f"the guide's course plan leaves out {path.name}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_four_exercises_of_three_kinds_with_difficulty(path: Path):
    parsed = _load_tool("exercises").parse(nbformat.read(path, as_version=4))
    found = list(parsed.exercises.values())
    unmarked = [ex.number for ex in found if ex.kind is None]
    assert not unmarked, f"{path.name}: exercises without '(kind, ★★)' in the heading: {unmarked}"
    assert len(found) >= 4, f"{path.name}: {len(found)} exercises, at least 4 expected"
    kinds = {ex.kind for ex in found}
    assert len(kinds) >= 3, f"{path.name}: exercises of {sorted(kinds)} only, 3 kinds expected"


# A code cell holds one idea (STYLE.md asks for about 15 lines); 25 is the hard limit.
MAX_CELL_LINES = 25
TEACHING_NOTEBOOKS = NOTEBOOKS + sorted((ROOT / "chapters" / "projects").glob("*.ipynb"))


def _counted_lines(source: str) -> int:
    """Non-blank lines of a code cell, not counting the lines of its import statements.

    So a cell of imports only counts 0, and a setup cell counts only its other code.
    IPython lines (%magic, !shell) are parsed as `pass` so that the rest can be read.
    """
    lines = source.splitlines()
    python = "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    imports = set()
    for node in ast.parse(python).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.update(range(node.lineno, node.end_lineno + 1))
    return sum(1 for n, line in enumerate(lines, 1) if line.strip() and n not in imports)


def _is_check_cell(cell) -> bool:
    """A graded check cell of tools/EXERCISES.md: nbgrader's `grade: true` (written by
    `make sync`) or hidden tests between `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`."""
    return bool(cell.metadata.get("nbgrader", {}).get("grade")) or (
        "### BEGIN HIDDEN TESTS" in cell.source
    )


def _long_cells(nb) -> list[tuple[int, int]]:
    """(cell index, counted lines) of every code cell over MAX_CELL_LINES, check cells exempt."""
    return [
        (i, n)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and not _is_check_cell(cell)
        for n in [_counted_lines(cell.source)]
        if n > MAX_CELL_LINES
    ]


@pytest.mark.parametrize("path", TEACHING_NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_are_at_most_25_lines(path: Path):
    """Split a longer cell at a natural seam with a sentence between, or move repeated code
    into the library (plots: cnnbook.viz); import lines and graded check cells do not count."""
    long = _long_cells(nbformat.read(path, as_version=4))
    assert not long, f"{path.relative_to(ROOT)}: " + "; ".join(
        f"cell {i} has {n} non-blank lines (at most {MAX_CELL_LINES})" for i, n in long
    )


def test_the_cell_length_rule_counts_what_it_says():
    cell = nbformat.v4.new_code_cell
    imports = "import numpy as np\nfrom torch import (\n    nn,\n    optim,\n)\n"
    assert _counted_lines(imports) == 0, "import lines do not count"
    assert _counted_lines("%matplotlib inline\n\nx = 1\n\n\ny = 2\n") == 3, "blank lines do not"
    nb = nbformat.v4.new_notebook()
    body = "\n".join(f"x{i} = {i}" for i in range(26))
    markdown = nbformat.v4.new_markdown_cell(body)
    nb.cells = [cell(imports * 10), cell(body[: body.rindex("\n")]), markdown]
    assert _long_cells(nb) == [], "25 lines of code pass, and markdown is not code"
    nb.cells += [cell(body), cell(body + "\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS")]
    graded = cell(body, metadata={"nbgrader": {"grade": True, "solution": False}})
    nb.cells.append(graded)
    assert _long_cells(nb) == [(3, 26)], "26 lines fail; graded check cells are exempt"


def test_readme_layout_lists_every_library_module_once():
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    listed = Counter(re.findall(r"[\w]+\.py", layout))
    library = ROOT / "utils" / "cnnbook"
    modules = Counter(p.name for p in library.rglob("*.py") if p.name != "__init__.py")
    # names count per file: vit.py exists twice (functions, and models/vit.py's network)
    assert listed == modules, (
        f"README's Layout should list each library module once: missing "
        f"{sorted((modules - listed).elements())}, extra {sorted((listed - modules).elements())}"
    )


# Matplotlib calls that return an object: as a cell's last line, Jupyter prints its repr
# ("Text(0.5, 0.98, ...)", "<matplotlib.legend.Legend at 0x...>") under the figure. A
# trailing ";" does not help in the book: nbval executes with store_history=False, and
# IPython's DisplayHook.quiet() looks for the ";" in the last *stored* input, so the
# executed outputs (which the book shows) kept the repr. plt.show() returns None.
REPR_RETURNING = {
    "annotate",
    "axis",
    "axhline",
    "axvline",
    "bar",
    "barh",
    "colorbar",
    "imshow",
    "legend",
    "plot",
    "scatter",
    "set",
    "set_title",
    "set_xlabel",
    "set_ylabel",
    "set_xticks",
    "set_yticks",
    "set_xticklabels",
    "set_yticklabels",
    "suptitle",
    "text",
    "hist",
    "fill_between",
}
# The book's own plotting helpers (cnnbook.viz) return the Axes they drew on.
VIZ_RETURNING = {
    "annotated_grid",
    "draw_boxes",
    "feature_maps",
    "history_curves",
    "image_grid",
    "overlay",
}


def _ends_in_a_matplotlib_repr(source: str) -> bool:
    code = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False
    if not body:
        return False
    last = body[-1]
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
        return False
    func = last.value.func
    if isinstance(func, ast.Name):
        return func.id in VIZ_RETURNING
    return isinstance(func, ast.Attribute) and func.attr in REPR_RETURNING | VIZ_RETURNING


@pytest.mark.parametrize("path", TEACHING_NOTEBOOKS, ids=lambda p: p.name)
def test_plot_cells_do_not_end_in_a_matplotlib_repr(path: Path):
    cells = nbformat.read(path, as_version=4).cells
    bad = [
        i
        for i, c in enumerate(cells)
        if c.cell_type == "code" and _ends_in_a_matplotlib_repr(c.source)
    ]
    assert not bad, f"{path.name}: cells {bad} end in a matplotlib call; end them with plt.show()"


def test_the_repr_rule_sees_what_it_says():
    assert _ends_in_a_matplotlib_repr('fig.suptitle("x")')
    assert _ends_in_a_matplotlib_repr("ax.legend()")
    assert not _ends_in_a_matplotlib_repr('fig.suptitle("x")\nplt.show()')
    assert _ends_in_a_matplotlib_repr("ax.legend();")  # see above: ";" does not help
    assert not _ends_in_a_matplotlib_repr("model.eval()")
    assert _ends_in_a_matplotlib_repr("history_curves(runs);")
    assert _ends_in_a_matplotlib_repr("viz.image_grid(images)")


def test_plot_only_cells_are_folded_in_the_published_book():
    """`make sync` tags them hide-input (tools/fold_plot_cells.py)."""
    fold = load_tool("fold_plot_cells.py")
    missing = {p.name: fold.untagged(p) for p in fold.notebooks()}
    assert not {k: v for k, v in missing.items() if v}, f"run make sync: {missing}"


def test_a_plot_only_cell_is_told_from_one_that_teaches():
    fold = load_tool("fold_plot_cells.py")
    cells = [
        nbformat.v4.new_code_cell(s)
        for s in (
            "fig, ax = plt.subplots()\nlimit = abs(x).max()\nax.imshow(x, vmax=limit)\nplt.show()",
            "y = conv(x)\nplt.imshow(y)\nplt.show()",  # y is read below: teaching code
            "print(y.shape)",
            "plt.plot(y)\nassert y.min() >= 0\nplt.show()",  # asserts: stays in view
            "show(diagram(3, 4))",
        )
    ]
    assert fold.plot_only_cells(cells) == [0, 4]


def test_long_chapters_mark_what_a_first_reading_can_skip():
    """A chapter too long for one sitting says so at the top and marks optional sections."""
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        if len(nb.cells) < 135:  # chapter 8; chapter 2 (130) is marked too
            continue
        text = _sources(nb, "markdown")
        assert "can be skipped" in nb.cells[1].source, f"{path.name}: no reading note at the top"
        assert "```{admonition} Optional on a first reading" in text, f"{path.name}: nothing marked"


def test_every_chapter_draws_explanatory_diagrams():
    """Issue 16: at least one diagram from cnnbook.diagrams per numbered chapter, 25 or more
    in all, each in a folded cell with its own alt text."""
    total = 0
    for path in CHAPTERS:
        cells = nbformat.read(path, as_version=4).cells
        drawing = [
            c
            for c in cells
            if c.cell_type == "code"
            and "from cnnbook.diagrams." in c.source
            and "show(" in c.source
        ]
        assert drawing, f"{path.name} draws no diagram from cnnbook.diagrams"
        for cell in drawing:
            assert "hide-input" in cell.metadata.get("tags", []), (
                f"{path.name}: fold the diagram code"
            )
            alt = cell.metadata.get("mystnb", {}).get("image", {}).get("alt", "")
            assert len(alt) > 20, f"{path.name}: a diagram cell without its own alt text"
        total += len(drawing)
    assert total >= 25, f"only {total} diagrams in the chapters"


FIGSIZE = re.compile(r"figsize=\(\s*([0-9.]+)\s*,")


def test_figures_fit_the_text_column():
    """A figure wider than the 688 px text column shrinks on the page, and its labels with it
    (issue 17): literal figure widths in chapters and the library are at most 6.8 in."""
    from cnnbook.diagrams.style import MAX_WIDTH_IN

    sources = [
        (p.name, c.source)
        for p in TEACHING_NOTEBOOKS + [ROOT / "intro.ipynb"]
        for c in nbformat.read(p, as_version=4).cells
        if c.cell_type == "code"
    ]
    sources += [(p.name, p.read_text()) for p in (ROOT / "utils").rglob("*.py")]
    wide = [
        (name, float(m.group(1)))
        for name, text in sources
        for m in FIGSIZE.finditer(text)
        if float(m.group(1)) > MAX_WIDTH_IN
    ]
    assert not wide, f"figures wider than the text column: {wide}"


def test_figures_are_sharp_on_high_density_screens():
    """Every teaching notebook that draws calls cnnbook.viz.book_figures in its setup: text
    sizes for the column, and retina PNG (or JPEG at 150 dpi for photos)."""
    for path in TEACHING_NOTEBOOKS:
        code = "\n".join(
            c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
        )
        if "plt." in code:
            assert "book_figures(" in code, f"{path.name}: call book_figures() in its setup cell"

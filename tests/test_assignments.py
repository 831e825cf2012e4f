"""Student versions: solutions and hidden tests removed, and the checks then fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))  # appendices have none

_spec = importlib.util.spec_from_file_location(
    "make_assignments", ROOT / "tools/make_assignments.py"
)
make_assignments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_assignments)


def _notebook(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_solution_is_replaced_at_its_indent():
    nb = _notebook(
        "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n"
        "    ### END SOLUTION\n",
        "print('untouched')",
    )
    student, cleared = make_assignments.student_version(nb)
    assert cleared == 1
    assert student.cells[0].source == "def f(x):\n    '''doc'''\n    raise NotImplementedError"
    assert student.cells[1].source == "print('untouched')"


def test_hidden_tests_and_outputs_are_removed():
    nb = _notebook("check(1)\n### BEGIN HIDDEN TESTS\ncheck(2)\n### END HIDDEN TESTS\n")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[0].execution_count = 3
    student, _ = make_assignments.student_version(nb)
    assert student.cells[0].source == "check(1)"
    assert student.cells[0].outputs == [] and student.cells[0].execution_count is None


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN SOLUTION\nx = 1\n",
        "x = 1\n### END SOLUTION\n",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
    ],
)
def test_unbalanced_markers_are_errors(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        make_assignments.student_version(_notebook(source))


def _setup_and_exercises(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The setup cells (up to the seeding cell) and the exercise section of a chapter."""
    cells, keep, in_exercises = nb.cells, [], False
    setup_end = next(i for i, c in enumerate(cells) if "seed_everything(" in c.source)
    for i, cell in enumerate(cells):
        headings = [line for line in cell.source.splitlines() if line.startswith("## ")]
        if cell.cell_type == "markdown" and headings:
            in_exercises = headings[-1].startswith("## Exercises")
        if cell.cell_type == "code" and (0 < i <= setup_end or in_exercises):
            keep.append(cell)
    nb.cells = keep
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_fails_its_checks_with_not_implemented(path: Path):
    student, cleared = make_assignments.student_version(nbformat.read(path, as_version=4))
    text = "\n".join(c.source for c in student.cells)
    assert cleared >= 3, f"{path.name}: expected at least 3 marked solutions"
    for marker in make_assignments.SOLUTION + make_assignments.HIDDEN:
        assert marker not in text, f"{path.name}: {marker!r} left in the student version"

    nb = _setup_and_exercises(student)
    NotebookClient(
        nb,
        timeout=300,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    names = {e.ename for e in errors}
    assert names == {"NotImplementedError"}, (
        f"{path.name}: the student version should fail only with NotImplementedError, got "
        + "; ".join(f"{e.ename}: {e.evalue}" for e in errors if e.ename != "NotImplementedError")
    )
    assert len(errors) >= 3, f"{path.name}: only {len(errors)} checks failed without solutions"

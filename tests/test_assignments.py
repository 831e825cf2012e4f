"""Student versions: solutions and hidden tests removed, and the checks then fail."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from tools_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
# chapters and projects; appendices have no exercises
NOTEBOOKS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (ROOT / "chapters" / "projects").glob("P[0-9]_*.ipynb")
)

make_assignments = load_tool("make_assignments.py")
grade_assignments = load_tool("grade_assignments.py")


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


@pytest.fixture(scope="module")
def student_versions(tmp_path_factory) -> dict[str, tuple]:
    """Each notebook's student version (and how many solutions it cleared), graded as an
    untouched submission by make grade's own code, two kernels at a time."""
    folder = tmp_path_factory.mktemp("assignments") / "untouched"
    folder.mkdir()
    made = {}
    for path in NOTEBOOKS:
        made[path.name] = make_assignments.student_version(nbformat.read(path, as_version=4))
        nbformat.write(made[path.name][0], folder / path.name)
    submissions = [folder / p.name for p in NOTEBOOKS]
    graded = grade_assignments.grade_all(submissions, jobs=2)
    return {p.name: (*made[p.name], results) for p, results, _ in graded}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_fails_its_checks_with_not_implemented(student_versions, path: Path):
    student, cleared, results = student_versions[path.name]
    text = "\n".join(c.source for c in student.cells)
    assert cleared >= 3, f"{path.name}: expected at least 3 marked solutions"
    for marker in make_assignments.SOLUTION + make_assignments.HIDDEN:
        assert marker not in text, f"{path.name}: {marker!r} left in the student version"
    assert not isinstance(results, Exception), f"{path.name}: {results}"
    assert len(results) >= 3 and sum(r.points for r in results) == 0
    other = [f"{r.exercise}: {r.error}" for r in results if "NotImplementedError" not in r.error]
    assert not other, f"{path.name}: should fail only with NotImplementedError: {other}"

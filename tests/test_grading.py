"""tools/grade_assignments.py grades a submission with the teacher's hidden tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "chapters" / "03_conv_arithmetic.ipynb"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


grader, assignments = _load("grade_assignments"), _load("make_assignments")


def _submission(tmp_path: Path) -> Path:
    """Exercise 3.1 solved, 3.2 subtly wrong (padding counted once), the rest untouched."""
    teacher = nbformat.read(CHAPTER, as_version=4)
    student, _ = assignments.student_version(nbformat.read(CHAPTER, as_version=4))
    solved = grader.exercise_cells(teacher)["Exercise 3.1"][0].source
    cells = grader.exercise_cells(student)
    cells["Exercise 3.1"][0].source = solved
    wrong = "return (W + padding - k) % stride"
    cells["Exercise 3.2"][0].source = cells["Exercise 3.2"][0].source.replace(
        "raise NotImplementedError", wrong
    )
    path = tmp_path / CHAPTER.name
    nbformat.write(student, path)
    return path


def test_exercises_are_found_by_heading():
    groups = grader.exercise_cells(nbformat.read(CHAPTER, as_version=4))
    assert list(groups)[:2] == ["Exercise 3.1", "Exercise 3.2"] and len(groups) >= 3
    assert all(any("### BEGIN SOLUTION" in c.source for c in cells) for cells in groups.values())


def test_grading_passes_a_solution_and_reports_a_subtle_bug(tmp_path: Path):
    path = _submission(tmp_path)
    assert grader.chapter_for(path) == CHAPTER
    results = {r.exercise: r for r in grader.grade(path, CHAPTER)}
    assert results["Exercise 3.1"].passed, results["Exercise 3.1"].error
    wrong = results["Exercise 3.2"]
    assert not wrong.passed and wrong.error.startswith("CheckFailed"), wrong.error
    untouched = [r for title, r in results.items() if title not in ("Exercise 3.1", "Exercise 3.2")]
    assert untouched and all(r.error.startswith("NotImplementedError") for r in untouched)

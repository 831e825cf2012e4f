"""Write student versions of the chapter notebooks for classroom use.

    python tools/make_assignments.py [--out _build/assignments] [chapters/NN_*.ipynb ...]

Exercise solutions sit between nbgrader-style markers inside code cells::

    ### BEGIN SOLUTION
    ...the teacher's answer...
    ### END SOLUTION

and extra checks that students should not see between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. The student version replaces each solution with
``raise NotImplementedError`` (indented like the answer it replaces), deletes hidden
tests, keeps only the first line of written-answer cells (``**Your conclusion** (read
by the teacher):``, then ``YOUR ANSWER HERE``) and clears all outputs. The steps are
nbconvert preprocessors, so the notebooks are read and written by nbformat, never
edited as raw JSON. The same markers, with the cell metadata tools/nbgrader_meta.py
writes from them, let a course use nbgrader instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor, Preprocessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises  # noqa: E402 - the shared marker parser lives next to this tool

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
ANSWER_FIRST_LINE = "**Your conclusion** (read by the teacher):"


def _replace_regions(source: str, markers: tuple[str, str], replacement: str | None) -> str:
    """Replace every marked region (markers included) by ``replacement`` at its indent."""
    begin, end = markers
    out, inside, indent = [], False, ""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise ValueError(f"nested {begin!r}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            if replacement is not None:
                out.append(indent + replacement)
        elif stripped == end:
            if not inside:
                raise ValueError(f"{end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{begin!r} without {end!r}")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


class ClearSolutions(Preprocessor):
    """Replace each marked solution with ``raise NotImplementedError``."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and any(m in cell.source for m in SOLUTION):
            cell.source = _replace_regions(cell.source, SOLUTION, "raise NotImplementedError")
            resources["solutions_cleared"] = resources.get("solutions_cleared", 0) + 1
        return cell, resources


class ClearWrittenAnswers(Preprocessor):
    """Keep the first line of a written-answer cell, replace the model answer."""

    def preprocess_cell(self, cell, resources, index):
        lines = cell.source.strip().splitlines()
        if cell.cell_type == "markdown" and lines and lines[0].strip() == ANSWER_FIRST_LINE:
            cell.source = f"{lines[0]}\n\nYOUR ANSWER HERE"
        return cell, resources


class RemoveHiddenTests(Preprocessor):
    """Delete the checks a teacher keeps for grading."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and any(m in cell.source for m in HIDDEN):
            cell.source = _replace_regions(cell.source, HIDDEN, None)
        return cell, resources


def student_version(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """Return the student notebook and the number of solution cells cleared."""
    resources: dict = {}
    for step in (
        ClearSolutions(),
        RemoveHiddenTests(),
        ClearWrittenAnswers(),
        ClearOutputPreprocessor(),
    ):
        nb, resources = step.preprocess(nb, resources)
    return nb, resources.get("solutions_cleared", 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "assignments")
    args = parser.parse_args()
    notebooks = args.notebooks or exercises.gradable_notebooks(ROOT)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        nb, cleared = student_version(nbformat.read(path, as_version=4))
        if cleared == 0:
            print(f"warning: {path.name} has no marked solutions", file=sys.stderr)
        nbformat.write(nb, args.out / path.name)
        print(f"{path.name}: {cleared} solutions removed -> {args.out / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

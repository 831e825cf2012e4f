"""The structure of a chapter's exercises, read from its markers (see tools/EXERCISES.md).

Shared by ``nbgrader_meta.py`` (which writes nbgrader cell metadata from it),
``make_assignments.py`` and ``grade_assignments.py``. A chapter is

- its **setup**: the code cells from the second one up to the cell calling
  ``seed_everything(``;
- its ``## Exercises`` section, split by ``### Exercise N.k ...`` headings into
  exercises, each made of solution cells (code between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``), given cells (other code cells, locked), one check cell (the
  last code cell of the exercise that holds no solution) and optionally written-answer
  cells (markdown whose first line is ``**Your conclusion** (read by the teacher):``).

Every role has a stable nbgrader ``grade_id``: ``setup-1``, ``ex-3-5-solution``,
``ex-3-5-solution-2``, ``ex-3-5-given``, ``ex-3-5-check``, ``ex-3-5-answer``, and
``exercises-given`` for code in the section before its first exercise.

Gradable notebooks are the chapters (``chapters/NN_slug.ipynb``, exercises ``N.k``) and
the projects (``chapters/projects/PN_slug.ipynb``, exercises ``PN.k``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
ANSWER_FIRST_LINE = "**Your conclusion** (read by the teacher):"
KINDS = ("implement", "predict", "derive", "design", "experiment")
HEADING = re.compile(
    r"^###\s+Exercise\s+(P?\d+\.\d+)\s+\((implement|predict|derive|design|experiment),"
    r"\s*(★{1,3})\):\s*(.+)$"
)
OLD_HEADING = re.compile(r"^###\s+Exercise\s+(P?\d+\.\d+)\s*:?\s*(.*)$")
GRADE_ID = re.compile(r"^ex-(p?\d+)-(\d+)-(solution|given|check|answer)(?:-(\d+))?$")


@dataclass
class Exercise:
    """One exercise: its number ("3.5"), kind, points and cells (indices into the notebook)."""

    number: str
    title: str
    kind: str | None = None  # None for the old heading format "### Exercise 3.5: title"
    points: int = 1
    heading: int = -1  # index of the markdown cell holding the heading
    solutions: list[int] = field(default_factory=list)
    given: list[int] = field(default_factory=list)
    check: int | None = None
    answers: list[int] = field(default_factory=list)
    other_code: list[int] = field(default_factory=list)  # in a submission: unlabelled code

    @property
    def slug(self) -> str:
        return "ex-" + self.number.lower().replace(".", "-")


@dataclass
class Chapter:
    setup: list[int]
    section_given: list[int]  # code in "## Exercises" before the first "### Exercise"
    exercises: dict[str, Exercise]


def gradable_notebooks(root: Path = ROOT) -> list[Path]:
    """Every notebook with exercises: the chapters, then the projects of the six Parts."""
    chapters = sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb"))
    return chapters + sorted((root / "chapters" / "projects").glob("P[0-9]_*.ipynb"))


def has_solution(source: str) -> bool:
    return any(line.strip() == SOLUTION[0] for line in source.splitlines())


def is_answer(cell) -> bool:
    lines = cell.source.strip().splitlines()
    return cell.cell_type == "markdown" and bool(lines) and lines[0].strip() == ANSWER_FIRST_LINE


def setup_indices(nb: nbformat.NotebookNode) -> list[int]:
    """Code cells from the second (the first installs cnnbook) up to the seeding cell."""
    end = next(
        (
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and "seed_everything(" in c.source
        ),
        None,
    )
    if end is None:
        raise ValueError("the chapter has no setup cell calling seed_everything(...)")
    return [i for i in range(1, end + 1) if nb.cells[i].cell_type == "code"]


def parse_heading(line: str) -> Exercise | None:
    """An ``Exercise`` for a heading line in either format, else None."""
    match = HEADING.match(line.strip())
    if match:
        number, kind, stars, title = match.groups()
        return Exercise(number, title.strip(), kind, len(stars))
    match = OLD_HEADING.match(line.strip())
    if match:
        return Exercise(match.group(1), match.group(2).strip())
    return None


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def parse(nb: nbformat.NotebookNode, *, strict: bool = True) -> Chapter:
    """Read the setup and the exercises of ``nb``.

    ``strict`` (for the teacher's chapters) requires a check cell after the solutions of
    every exercise. A student's submission is read with ``strict=False``: an exercise
    heading counts even if the ``## Exercises`` line was deleted, cells keep the exercise
    of their heading, and a cell whose heading was deleted is placed by its nbgrader
    ``grade_id``.
    """
    try:
        setup = setup_indices(nb)
    except ValueError:
        if strict:
            raise
        setup = []  # a submission whose setup was deleted: the teacher's setup runs anyway
    exercises: dict[str, Exercise] = {}
    section_given: list[int] = []
    in_section, current = False, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    in_section, current = line.startswith("## Exercises"), None
                elif (in_section or not strict) and line.startswith("###"):
                    found = parse_heading(line)
                    if found is not None:
                        current = exercises.setdefault(found.number, found)
                        if current.heading < 0:
                            current.heading = i
        gid = grade_id(cell)
        match = GRADE_ID.match(gid or "")
        target = current
        if match and not strict:  # placed by metadata when the heading is gone or wrong
            part = match.group(1)  # "3", or "p1" for a project
            part = part.upper() if part.startswith("p") else str(int(part))
            number = f"{part}.{int(match.group(2))}"
            target = exercises.setdefault(number, Exercise(number, ""))
        if target is None:
            if in_section and cell.cell_type == "code":
                section_given.append(i)
            continue
        role = match.group(3) if match and not strict else None
        if cell.cell_type == "markdown":
            if is_answer(cell) or role == "answer":
                target.answers.append(i)
        elif has_solution(cell.source) or role == "solution":
            target.solutions.append(i)
        elif role == "given":
            target.given.append(i)
        elif role == "check":
            target.check = i
        elif strict:
            target.given.append(i)
        else:
            target.other_code.append(i)
    if strict:
        for ex in exercises.values():
            after = [i for i in ex.given if ex.solutions and i > ex.solutions[0]]
            if not ex.solutions:
                raise ValueError(f"Exercise {ex.number} has no '### BEGIN SOLUTION' cell")
            if not after:
                raise ValueError(f"Exercise {ex.number} has no check cell after its solution")
            ex.check = after[-1]
            ex.given.remove(ex.check)
    return Chapter(setup, section_given, exercises)

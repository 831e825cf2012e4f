"""Check students' submitted notebooks against the teacher's checks, hidden tests included.

    python tools/grade_assignments.py SUBMISSION.ipynb [...] [--csv grades.csv]

Each submission is matched to its chapter by file name (``NN_*.ipynb``, or ``--chapter``).
A grading notebook is assembled from the chapter's setup cells (imports, seeding), then,
for every exercise of the chapter, the student's code cells under that exercise's
heading followed by the teacher's check cells for it, hidden tests included. It runs in
a fresh kernel; an exercise passes when its checks raise nothing. Students' code is
executed: grade untrusted submissions inside a container or a throwaway account.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_BEGIN = "### BEGIN SOLUTION"
EXERCISE = re.compile(r"^###\s+(Exercise\s+[\d.]+\w*)", re.M)


@dataclass
class Result:
    submission: str
    exercise: str
    passed: bool
    error: str = ""


def setup_cells(nb: nbformat.NotebookNode) -> list:
    """Code cells from the second (the first installs cnnbook) up to the seeding cell."""
    end = next((i for i, c in enumerate(nb.cells) if "seed_everything(" in c.source), None)
    if end is None:
        raise ValueError("the chapter has no setup cell calling seed_everything(...)")
    return [c for c in nb.cells[1 : end + 1] if c.cell_type == "code"]


def exercise_cells(nb: nbformat.NotebookNode) -> dict[str, list]:
    """Code cells of the "## Exercises" section, grouped by their "### Exercise N.k" heading."""
    groups: dict[str, list] = {}
    in_section, current = False, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    in_section, current = line.startswith("## Exercises"), None
                match = EXERCISE.match(line)
                if in_section and match:
                    current = " ".join(match.group(1).split())
                    groups.setdefault(current, [])
        elif in_section and current is not None and cell.cell_type == "code":
            groups[current].append(cell)
    return groups


def grading_notebook(chapter: nbformat.NotebookNode, submission: nbformat.NotebookNode):
    """The setup, then per exercise: the student's cells, then the teacher's checks."""
    teacher, student = exercise_cells(chapter), exercise_cells(submission)
    if not teacher:
        raise ValueError("the chapter has no '## Exercises' section with '### Exercise' headings")
    cells = [nbformat.v4.new_code_cell(c.source) for c in setup_cells(chapter)]
    for title, teacher_cells in teacher.items():
        for cell in student.get(title, []):
            cells.append(nbformat.v4.new_code_cell(cell.source))
        for cell in teacher_cells:
            if SOLUTION_BEGIN not in cell.source:  # the teacher's checks, hidden tests and all
                check = nbformat.v4.new_code_cell(cell.source)
                check.metadata["grading"] = {"exercise": title}
                cells.append(check)
    return nbformat.v4.new_notebook(cells=cells, metadata=chapter.metadata)


def grade(submission_path: Path, chapter_path: Path, timeout: int = 600) -> list[Result]:
    chapter = nbformat.read(chapter_path, as_version=4)
    submission = nbformat.read(submission_path, as_version=4)
    nb = grading_notebook(chapter, submission)
    NotebookClient(
        nb,
        timeout=timeout,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(chapter_path.parent)}},
    ).execute()
    outcome: dict[str, str] = {}
    for cell in nb.cells:
        title = cell.metadata.get("grading", {}).get("exercise")
        if title is None:
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors and not outcome.get(title):
            first_line = (errors[0].evalue or "").strip().splitlines()[:1]
            outcome[title] = f"{errors[0].ename}: {' '.join(first_line)}"[:300]
        else:
            outcome.setdefault(title, "")
    name = submission_path.name
    return [Result(name, title, not error, error) for title, error in outcome.items()]


def chapter_for(submission: Path, chapters: Path = ROOT / "chapters") -> Path:
    number = re.match(r"(\d\d)_", submission.name)
    found = sorted(chapters.glob(f"{number.group(1)}_*.ipynb")) if number else []
    if len(found) != 1:
        raise ValueError(
            f"cannot tell the chapter of {submission.name}: name it like the chapter "
            "(NN_slug.ipynb) or pass --chapter chapters/NN_slug.ipynb"
        )
    return found[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--chapter", type=Path, help="the teacher's chapter notebook")
    parser.add_argument("--csv", type=Path, help="also write the results as CSV")
    args = parser.parse_args()
    results: list[Result] = []
    for path in args.submissions:
        results += grade(path, args.chapter or chapter_for(path))
    width = max(len(r.submission) for r in results)
    for r in results:
        status = "pass" if r.passed else f"FAIL  {r.error}"
        print(f"{r.submission:<{width}}  {r.exercise:<14} {status}")
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["submission", "exercise", "passed", "error"])
            writer.writerows([r.submission, r.exercise, r.passed, r.error] for r in results)
    passed = sum(r.passed for r in results)
    print(f"{passed}/{len(results)} exercises passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

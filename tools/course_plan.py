"""Write the exercise tables of the teacher's guide from the chapters themselves.

    python tools/course_plan.py           # rewrite the tables in chapters/D_teachers_guide.md
    python tools/course_plan.py --check   # exit 1 if the tables are stale (a test runs it)

The guide's 12-week plan is prose written by hand; what each week's chapters ask of a
student (every exercise with its kind, difficulty and points) is read from the notebooks
with the same parser the graders use, so the guide cannot drift from the exercises. The
tables sit between ``<!-- BEGIN EXERCISE TABLE -->`` and ``<!-- END EXERCISE TABLE -->``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises  # noqa: E402 - the shared marker parser lives next to this tool

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "chapters" / "D_teachers_guide.md"
BEGIN, END = "<!-- BEGIN EXERCISE TABLE -->", "<!-- END EXERCISE TABLE -->"
# The authors' estimate of a student's time per exercise, by difficulty (minutes); the
# guide says plainly that these are estimates, not timings of real students.
MINUTES = {1: 10, 2: 25, 3: 45}


def title_of(nb: nbformat.NotebookNode) -> str:
    """The page title: the first H1 of the notebook, without the leading '# '."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise ValueError("the notebook has no '# ' title")


def table(root: Path = ROOT) -> str:
    """One row per exercise of every chapter and project, with a total per notebook."""
    rows = [
        "| page | exercise | kind | difficulty | points | est. minutes |",
        "|---|---|---|---|---:|---:|",
    ]
    kinds: Counter[str] = Counter()
    for path in exercises.gradable_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        link = f"[{title_of(nb)}]({path.relative_to(root / 'chapters').as_posix()})"
        for ex in exercises.parse(nb).exercises.values():
            kind = ex.kind or "implement"
            kinds[kind] += 1
            stars = "★" * ex.points
            row = f"| {link} | {ex.number} {ex.title} | {kind} | {stars} | {ex.points} |"
            rows.append(f"{row} {MINUTES[min(ex.points, 3)]} |")
            link = ""  # the page is named on its first row only
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return "\n".join([*rows, "", f"In all: {sum(kinds.values())} exercises ({summary})."])


def with_table(text: str, body: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"the guide needs the lines {BEGIN} and {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args()
    current = GUIDE.read_text()
    expected = with_table(current, table())
    if current == expected:
        return 0
    if args.check:
        print(f"{GUIDE.relative_to(ROOT)}: exercise tables are stale; run `make sync`")
        return 1
    GUIDE.write_text(expected)
    print(f"updated {GUIDE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

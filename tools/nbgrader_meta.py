"""Write nbgrader cell metadata into the chapters, derived from their exercise markers.

    python tools/nbgrader_meta.py [--check] [chapters/NN_*.ipynb ...]

The markers (tools/EXERCISES.md) are the single source of truth; this tool makes the
metadata nbgrader needs agree with them, so a course can run ``nbgrader
generate_assignment`` / ``autograde`` on the chapters unchanged:

- solution cells: ``solution``, not graded, unlocked (``ex-3-5-solution``);
- the check cell: a graded test cell worth the exercise's stars (1 for an exercise
  still in the old heading format), locked (``ex-3-5-check``);
- given cells of an exercise and the chapter's setup cells: read-only (locked);
- written-answer markdown cells: a manually graded answer worth 1 point.

Only cell metadata changes. With ``--check`` nothing is written; every disagreement
is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises  # noqa: E402 - the shared marker parser lives next to this tool

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = 3


def _meta(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: int | None = None):
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA,
        "solution": solution,
    }
    if points is not None:
        meta["points"] = points
    return meta


def _numbered(slug: str, role: str, k: int) -> str:
    return f"{slug}-{role}" if k == 0 else f"{slug}-{role}-{k + 1}"


def expected_metadata(nb: nbformat.NotebookNode) -> dict[int, dict]:
    """The nbgrader metadata every cell of ``nb`` should carry, by cell index."""
    chapter = exercises.parse(nb)
    wanted: dict[int, dict] = {}
    for k, i in enumerate(chapter.setup):
        wanted[i] = _meta(f"setup-{k + 1}", solution=False, grade=False, locked=True)
    for k, i in enumerate(chapter.section_given):
        wanted[i] = _meta(
            _numbered("exercises", "given", k), solution=False, grade=False, locked=True
        )
    for ex in chapter.exercises.values():
        for k, i in enumerate(ex.solutions):
            wanted[i] = _meta(
                _numbered(ex.slug, "solution", k), solution=True, grade=False, locked=False
            )
        for k, i in enumerate(ex.given):
            wanted[i] = _meta(
                _numbered(ex.slug, "given", k), solution=False, grade=False, locked=True
            )
        wanted[ex.check] = _meta(
            f"{ex.slug}-check", solution=False, grade=True, locked=True, points=ex.points
        )
        for k, i in enumerate(ex.answers):
            wanted[i] = _meta(
                _numbered(ex.slug, "answer", k), solution=True, grade=True, locked=False, points=1
            )
    ids = [m["grade_id"] for m in wanted.values()]
    duplicates = sorted({g for g in ids if ids.count(g) > 1})
    if duplicates:
        raise ValueError(f"duplicate grade_ids {duplicates}: two exercises share a number?")
    return wanted


def disagreements(nb: nbformat.NotebookNode) -> list[str]:
    """Human-readable differences between the markers and the stored metadata."""
    wanted = expected_metadata(nb)
    problems = []
    for i, cell in enumerate(nb.cells):
        have = cell.metadata.get("nbgrader")
        want = wanted.get(i)
        if have != want:
            label = (want or have or {}).get("grade_id", "?")
            problems.append(f"cell {i} ({label}): metadata {have} where the markers say {want}")
    return problems


def apply(nb: nbformat.NotebookNode) -> int:
    """Write the expected metadata into ``nb``; return the number of cells changed."""
    wanted = expected_metadata(nb)
    changed = 0
    for i, cell in enumerate(nb.cells):
        want = wanted.get(i)
        if cell.metadata.get("nbgrader") == want:
            continue
        changed += 1
        if want is None:
            del cell.metadata["nbgrader"]
        else:
            cell.metadata["nbgrader"] = want
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args()
    notebooks = args.notebooks or exercises.gradable_notebooks(ROOT)
    status = 0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            problems = disagreements(nb)
            for problem in problems:
                print(f"{path.name}: {problem}")
            status |= bool(problems)
        else:
            changed = apply(nb)
            if changed:
                nbformat.write(nb, path)
                print(f"{path.name}: nbgrader metadata updated in {changed} cells")
    return status


if __name__ == "__main__":
    sys.exit(main())

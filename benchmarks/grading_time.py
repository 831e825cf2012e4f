"""How long `make grade` takes for one submission of each chapter.

    python benchmarks/grading_time.py [NN ...]

Grades the teacher's version of each chapter (all exercises pass, so every check and
hidden test runs) with tools/grade_assignments.py and prints the wall-clock seconds: a
kernel start, the chapter's setup cells and its exercise section. Set the book's
environment (CNNBOOK_DATA_DIR, CNNBOOK_OFFLINE, CNNBOOK_PROFILE) as for the tests.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _grader():
    spec = importlib.util.spec_from_file_location(
        "grade_assignments", ROOT / "tools" / "grade_assignments.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["grade_assignments"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    grader = _grader()
    # "3" or "03" for a chapter, "P1" for a project
    wanted = {n.upper() if n.upper().startswith("P") else f"{int(n):02d}" for n in sys.argv[1:]}
    chapters = [
        p for p in grader.exercises.gradable_notebooks(ROOT) if not wanted or p.name[:2] in wanted
    ]
    print("| chapter | exercises | points | seconds |")
    print("|---|---|---|---|")
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for path in chapters:
            submission = Path(tmp) / "teacher" / path.name
            submission.parent.mkdir(exist_ok=True)
            shutil.copy(path, submission)
            start = time.perf_counter()
            results, _ = grader.grade(submission)
            seconds = time.perf_counter() - start
            total += seconds
            earned = sum(r.points for r in results)
            most = sum(r.max_points for r in results)
            print(f"| {path.stem} | {len(results)} | {earned}/{most} | {seconds:.1f} |")
    print(f"| total | | | {total:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grade students' submitted notebooks with the teacher's checks, hidden tests included.

    python tools/grade_assignments.py SUBMISSION.ipynb [...] [--csv grades.csv]
        [--answers answers.md] [--students mapping.csv] [--timeout 60]
        [--private-tests DIR] [--chapter chapters/NN_slug.ipynb] [--jobs N]

Each submission is matched to its chapter by file name (``NN_*.ipynb``, or ``--chapter``)
and to its student by the name of its folder (or ``--students``: a CSV file with the
columns ``file,student``). In a fresh kernel the grader runs the chapter's setup cells,
then the ``## Exercises`` section of the TEACHER's chapter in which each exercise's
solution cells are replaced by the student's cells of that exercise (found under the
exercise's heading or, where the heading was deleted, by their nbgrader ``grade_id``);
given and check cells always come from the teacher, hidden tests included, followed by
the course's private tests (``--private-tests DIR``: ``DIR/NN.py`` holds sections that
start with a ``# Exercise N.k`` line, each run after that exercise's check). An
exercise passes when its check cells raise nothing; it earns its stars as points.

Output (one line each, tab-separated; other tools read it):

    PASS|FAIL  student  chapter  exercise  points/max  first error (empty for PASS)
    TOTAL      student  chapter  points/max
    ERROR      file     reason               (a file that could not be graded)

``--csv`` writes one row per student and chapter (a column per exercise, then total and
max); written answers (``**Your conclusion**`` cells) go to ``--answers`` for the
teacher and are not counted. Each exercise has ``--timeout`` seconds: an endless loop
costs that exercise (the kernel is restarted and the setup rerun), not the run. The exit
status is 0 when every file was graded, 2 when one could not be. ``--jobs N`` grades N
submissions at once, each in its own kernel (about N times faster up to the number of
cores; each kernel holds a chapter's setup in memory); the output keeps the order of the
files given. Students' code is executed: grade untrusted submissions inside a container
or a throwaway account.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import re
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises  # noqa: E402 - the shared marker parser lives next to this tool

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_SECTION = re.compile(r"^#\s*Exercise\s+(P?\d+\.\d+)\s*$", re.M)
SETUP_TIMEOUT = 600


class SubmissionError(ValueError):
    """A file that cannot be graded (not a notebook, unknown chapter, ...)."""


@dataclass
class Result:
    """The outcome of one exercise of one submission."""

    student: str
    chapter: str
    exercise: str
    points: int
    max_points: int
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        fields = [status, self.student, self.chapter, self.exercise]
        return "\t".join([*fields, f"{self.points}/{self.max_points}", self.error])


@dataclass
class Unit:
    """What runs for one exercise: the student's cells, then the checks."""

    exercise: exercises.Exercise
    student_cells: list[str] = field(default_factory=list)
    given_before: list[str] = field(default_factory=list)
    given_after: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    missing: bool = False


def _strip_hidden(source: str) -> str:
    out, inside = [], False
    for line in source.splitlines():
        if line.strip() == exercises.HIDDEN[0]:
            inside = True
        elif line.strip() == exercises.HIDDEN[1]:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out).strip()


def read_private_tests(directory: Path | None, chapter_number: str) -> dict[str, str]:
    """``DIR/NN.py`` (``DIR/PN.py`` for a project) split at its ``# Exercise N.k`` lines:
    exercise number -> code."""
    if directory is None:
        return {}
    path = directory / f"{chapter_number}.py"
    if not path.exists():
        return {}
    text = path.read_text()
    marks = list(PRIVATE_SECTION.finditer(text))
    preamble = text[: marks[0].start() if marks else len(text)]
    if any(line.strip() and not line.lstrip().startswith("#") for line in preamble.splitlines()):
        raise SubmissionError(f"{path}: code before the first '# Exercise N.k' line")
    sections = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        sections[mark.group(1)] = text[mark.end() : end].strip("\n")
    return sections


def plan(
    chapter: nbformat.NotebookNode,
    submission: nbformat.NotebookNode,
    private: dict[str, str] | None = None,
) -> tuple[list[str], list[Unit], dict[str, list[str]]]:
    """The setup sources, the units to run and the student's written answers."""
    teacher = exercises.parse(chapter)
    student = exercises.parse(submission, strict=False)
    unknown = set(private or {}) - set(teacher.exercises)
    if unknown:
        raise SubmissionError(f"private tests for unknown exercises {sorted(unknown)}")
    setup = [chapter.cells[i].source for i in teacher.setup + teacher.section_given]
    units, answers = [], {}
    for number, ex in teacher.exercises.items():
        mine = student.exercises.get(number)
        unit = Unit(ex, missing=mine is None or not (mine.solutions or mine.other_code))
        first = ex.solutions[0]
        teacher_copies = {_strip_hidden(chapter.cells[i].source) for i in [*ex.given, ex.check]}
        if mine is not None:
            for i in sorted(mine.solutions + mine.other_code):
                source = submission.cells[i].source
                if i in mine.other_code and _strip_hidden(source) in teacher_copies:
                    continue  # the student's copy of a given or check cell: the teacher's runs
                unit.student_cells.append(source)
            answers[number] = [submission.cells[i].source for i in mine.answers]
        unit.given_before = [chapter.cells[i].source for i in ex.given if i < first]
        unit.given_after = [chapter.cells[i].source for i in ex.given if i > first]
        unit.checks = [chapter.cells[ex.check].source]
        if private and number in private:
            unit.checks.append(private[number])
        units.append(unit)
    return setup, units, answers


def _first_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            text = " ".join((output.evalue or "").strip().split())
            return f"{output.ename}: {text}"[:300] if text else output.ename
    return ""


class _Kernel:
    """A kernel that runs cells one by one with a time limit, restarted when needed."""

    def __init__(self, path: Path, setup: list[str]):
        self.path, self.setup = path, setup
        self.stack: contextlib.ExitStack | None = None
        self.setup_error = ""

    def start(self) -> None:
        self.stop()
        nb = nbformat.v4.new_notebook()
        self.client = NotebookClient(
            nb,
            timeout=SETUP_TIMEOUT,
            allow_errors=True,
            kernel_name="python3",
            resources={"metadata": {"path": str(self.path)}},
        )
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(self.client.setup_kernel())
        self.setup_error = ""
        for source in self.setup:
            error = self.run(source, SETUP_TIMEOUT)
            if error:
                self.setup_error = f"the setup failed: {error}"
                break

    def run(self, source: str, timeout: float) -> str:
        """Run one cell; return its first error ('' if none). Raises on timeout/death."""
        nb = self.client.nb
        cell = nbformat.v4.new_code_cell(source)
        nb.cells.append(cell)
        self.client.timeout = max(1, int(timeout))
        self.client.execute_cell(cell, len(nb.cells) - 1)
        return _first_error(cell)

    def stop(self) -> None:
        if self.stack is not None:
            with contextlib.suppress(Exception):
                self.stack.close()
            self.stack = None


def run_units(path: Path, setup: list[str], units: list[Unit], timeout: float) -> dict[str, str]:
    """Execute the units in one kernel; exercise number -> first error ('' = passed)."""
    kernel = _Kernel(path, setup)
    outcome: dict[str, str] = {}
    try:
        kernel.start()
        for unit in units:
            number = unit.exercise.number
            if kernel.setup_error:
                outcome[number] = kernel.setup_error
                continue
            if unit.missing:
                outcome[number] = (
                    f"no cells of Exercise {number} in the submission "
                    "(its heading and its nbgrader metadata are both gone)"
                )
                continue
            deadline = time.monotonic() + timeout
            student_error, check_error = "", ""
            try:
                for source in unit.given_before + unit.student_cells + unit.given_after:
                    error = kernel.run(source, deadline - time.monotonic())
                    student_error = student_error or error
                for source in unit.checks:
                    check_error = kernel.run(source, deadline - time.monotonic())
                    if check_error:
                        break
            except CellTimeoutError:
                check_error = f"TimeoutError: the exercise took longer than {timeout:g} s"
                kernel.start()
            except DeadKernelError:
                check_error = "DeadKernelError: the kernel died while running this exercise"
                kernel.start()
            if check_error and student_error and student_error != check_error:
                check_error = f"{check_error} (your cell raised {student_error})"
            outcome[number] = check_error
    finally:
        kernel.stop()
    return outcome


def chapter_for(submission: Path, chapters: Path = ROOT / "chapters") -> Path:
    """The teacher's notebook for ``NN_*.ipynb`` (a chapter) or ``PN_*.ipynb`` (a project)."""
    number = re.match(r"(\d\d|P\d)_", submission.name)
    found = []
    if number:
        found = sorted(chapters.glob(f"{number.group(1)}_*.ipynb"))
        found += sorted((chapters / "projects").glob(f"{number.group(1)}_*.ipynb"))
    if len(found) != 1:
        raise SubmissionError(
            f"cannot tell the chapter of {submission.name}: name it like the chapter "
            "(NN_slug.ipynb, or PN_slug.ipynb for a project) or pass --chapter "
            "chapters/NN_slug.ipynb"
        )
    return found[0]


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError as exc:
        raise SubmissionError(f"{path}: no such file") from exc
    except Exception as exc:  # noqa: BLE001 - invalid JSON, not a notebook, bad encoding
        raise SubmissionError(f"{path}: not a readable notebook ({type(exc).__name__})") from exc
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError(f"{path}: not a notebook (no cells)")
    return nb


def grade(
    submission_path: Path,
    chapter_path: Path | None = None,
    *,
    student: str | None = None,
    timeout: float = 60,
    private_tests: Path | None = None,
) -> tuple[list[Result], dict[str, list[str]]]:
    """Grade one submission: its results, one per exercise, and its written answers."""
    submission = read_notebook(submission_path)
    chapter_path = chapter_path or chapter_for(submission_path)
    chapter = read_notebook(chapter_path)
    number = chapter_path.name[:2]
    private = read_private_tests(private_tests, number) if private_tests else None
    try:
        setup, units, answers = plan(chapter, submission, private)
    except SubmissionError:
        raise
    except ValueError as exc:
        raise SubmissionError(f"{submission_path}: {exc}") from exc
    outcome = run_units(chapter_path.parent, setup, units, timeout)
    student = student or submission_path.resolve().parent.name
    results = [
        Result(
            student,
            number,
            unit.exercise.number,
            0 if outcome[unit.exercise.number] else unit.exercise.points,
            unit.exercise.points,
            outcome[unit.exercise.number],
        )
        for unit in units
    ]
    return results, answers


def grade_all(
    submissions: Iterable[Path],
    chapter_path: Path | None = None,
    *,
    students: dict[str, str] | None = None,
    timeout: float = 60,
    private_tests: Path | None = None,
    jobs: int = 1,
) -> Iterator[tuple[Path, list[Result] | SubmissionError, dict[str, list[str]]]]:
    """Grade each submission, ``jobs`` of them at a time (each in its own kernel).

    Yields, in the order given, ``(path, results, answers)``, or ``(path, error, {})``
    for a file that could not be graded. ``students``: {resolved path: student name}.
    A bad ``jobs`` is refused at the call, before any grading.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise TypeError(f"jobs must be an int, got {type(jobs).__name__}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")

    def one(path: Path):
        try:
            found, answers = grade(
                path,
                chapter_path,
                student=(students or {}).get(str(path.resolve())),
                timeout=timeout,
                private_tests=private_tests,
            )
        except SubmissionError as exc:
            return path, exc, {}
        return path, found, answers

    return map(one, submissions) if jobs == 1 else _in_threads(one, submissions, jobs)


def _in_threads(func, items: Iterable, jobs: int) -> Iterator:
    """``map(func, items)`` with ``jobs`` threads, results in the order of ``items``.
    Threads are enough: each grade waits on its own kernel process."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(func, items)


def read_students(path: Path) -> dict[str, str]:
    """A ``file,student`` CSV as {resolved file path: student}."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file", "student"} <= set(rows[0]):
        raise SystemExit(f"{path}: expected a CSV file with the columns file,student")
    return {str((path.parent / r["file"]).resolve()): r["student"] for r in rows} | {
        str(Path(r["file"]).resolve()): r["student"] for r in rows
    }


def write_csv(path: Path, results: list[Result]) -> None:
    columns = sorted({r.exercise for r in results}, key=lambda e: tuple(map(int, e.split("."))))
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for r in results:
        rows.setdefault((r.student, r.chapter), {})[r.exercise] = r
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "chapter", *columns, "total", "max"])
        for (student, chapter), found in rows.items():
            cells = [found[c].points if c in found else "" for c in columns]
            total = sum(r.points for r in found.values())
            writer.writerow(
                [student, chapter, *cells, total, sum(r.max_points for r in found.values())]
            )


def write_answers(path: Path, answers: list[tuple[str, str, str, str]]) -> None:
    lines = [
        "# Written answers",
        "",
        "Read and mark these by hand; make grade does not count them.",
        "",
    ]
    for student, chapter, exercise, text in answers:
        lines += [f"## {student}, chapter {chapter}, Exercise {exercise}", "", text.strip(), ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--chapter", type=Path, help="the teacher's chapter notebook")
    parser.add_argument("--csv", type=Path, help="write one row per student and chapter")
    parser.add_argument("--answers", type=Path, help="write the written answers (Markdown)")
    parser.add_argument("--students", type=Path, help="CSV with columns file,student")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per exercise")
    parser.add_argument("--private-tests", type=Path, help="folder with the course's NN.py")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    args = parser.parse_args(argv)
    students = read_students(args.students) if args.students else {}
    results: list[Result] = []
    written: list[tuple[str, str, str, str]] = []
    status = 0
    try:
        graded = grade_all(
            args.submissions,
            args.chapter,
            students=students,
            timeout=args.timeout,
            private_tests=args.private_tests,
            jobs=args.jobs,
        )
    except ValueError as exc:  # --jobs below 1
        parser.error(f"--{exc}")
    for path, found, answers in graded:
        if isinstance(found, SubmissionError):
            print(f"ERROR\t{path}\t{found}", flush=True)
            status = 2
            continue
        for r in found:
            print(r.line(), flush=True)
        earned, most = sum(r.points for r in found), sum(r.max_points for r in found)
        print(f"TOTAL\t{found[0].student}\t{found[0].chapter}\t{earned}/{most}", flush=True)
        results += found
        for exercise, texts in answers.items():
            written += [(found[0].student, found[0].chapter, exercise, t) for t in texts]
    if args.csv:
        write_csv(args.csv, results)
    if args.answers:
        write_answers(args.answers, written)
    return status


if __name__ == "__main__":
    sys.exit(main())

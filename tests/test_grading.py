"""tools/grade_assignments.py (make grade): fair to correct answers, robust to broken ones.

A small synthetic chapter (three exercises in the tools/EXERCISES.md format, one of them with a
written answer) exercises the grader's contract quickly; the real chapters are graded as
submissions of their teacher versions (full marks expected, every chapter) and of a
cheating student in chapter 10.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest
from tools_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
# the chapters and the six projects (see tools/exercises.py: gradable_notebooks)
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (ROOT / "chapters" / "projects").glob("P[0-9]_*.ipynb")
)


def _load(name: str):
    return load_tool(f"{name}.py")


grader, assignments, meta = (
    _load("grade_assignments"),
    _load("make_assignments"),
    _load("nbgrader_meta"),
)

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
ANSWER = "**Your conclusion** (read by the teacher):"


def synthetic_chapter() -> nbformat.NotebookNode:
    cells = [
        code("# install cell"),
        md("# 0. A tiny chapter\n\n## Setup"),
        code(
            "from cnnbook.check import check_function, check_value\n"
            "from cnnbook.runtime import seed_everything\n\nrng = seed_everything(0)"
        ),
        md("## Body\n\ntext"),
        code("body_helper = 1  # the exercises must not rely on it"),
        md("## Summary\n\n- done\n\n## Exercises\n\n### Exercise 0.1 (implement, ★★): double"),
        code("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        code(
            "check_function(double, lambda x: x + x, [(1,), (2.5,)])\n"
            "### BEGIN HIDDEN TESTS\ncheck_value('double(0)', double(0), 0)\n"
            "### END HIDDEN TESTS"
        ),
        md("### Exercise 0.2 (predict, ★): one plus two\n\nCommit your number first."),
        code("### BEGIN SOLUTION\nprediction = 3  # commit your number\n### END SOLUTION"),
        code("measured = 1 + 2  # the experiment"),
        code("check_value('your prediction', prediction, measured)"),
        md("### Exercise 0.3 (experiment, ★★★): a run\n\nRun it."),
        code("def run():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        code("check_value('run()', run(), 1)"),
        md(f"{ANSWER}\n\nIt returns one."),
        md("## Interview questions\n\nnone"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    meta.apply(nb)
    return nb


def _by_id(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_metadata_from_markers_stars_and_written_answers():
    nb = synthetic_chapter()
    assert _by_id(nb, "ex-0-1-check").metadata.nbgrader["points"] == 2
    assert _by_id(nb, "ex-0-3-check").metadata.nbgrader["points"] == 3
    assert _by_id(nb, "ex-0-2-given").metadata.nbgrader["locked"] is True
    answer = _by_id(nb, "ex-0-3-answer").metadata.nbgrader
    assert answer["solution"] and answer["grade"] and answer["points"] == 1
    assert _by_id(nb, "setup-1").metadata.nbgrader["locked"] is True
    assert "nbgrader" not in nb.cells[4].metadata  # the chapter body is left alone
    assert meta.disagreements(nb) == []
    nb.cells[7].metadata.nbgrader["points"] = 5
    del nb.cells[9].metadata["nbgrader"]
    assert len(meta.disagreements(nb)) == 2


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_metadata_agrees_with_its_markers(path: Path):
    problems = meta.disagreements(nbformat.read(path, as_version=4))
    assert not problems, f"run `make sync` ({path.name}): " + "; ".join(problems[:3])


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run of the synthetic chapter over a set of awkward submissions."""
    tmp = tmp_path_factory.mktemp("grading")
    chapter = tmp / "00_tiny.ipynb"
    teacher = synthetic_chapter()
    nbformat.write(teacher, chapter)
    student, _ = assignments.student_version(synthetic_chapter())
    assert ANSWER in student.cells[15].source and "one" not in student.cells[15].source

    def submission(folder: str, edit) -> Path:
        nb, _ = assignments.student_version(synthetic_chapter())
        edit(nb)
        path = tmp / folder / "00_tiny.ipynb"
        path.parent.mkdir()
        nbformat.write(nb, path)
        return path

    def alice(nb):  # all correct; a heading deleted, a cell moved, an answer written
        _by_id(nb, "ex-0-1-solution").source = "def double(x):\n    return x * 2"
        _by_id(nb, "ex-0-2-solution").source = "prediction = 3"
        _by_id(nb, "ex-0-3-solution").source = "def run():\n    return 1"
        _by_id(nb, "ex-0-3-answer").source = f"{ANSWER}\n\nIt gives 1, as I thought."
        moved = _by_id(nb, "ex-0-2-solution")
        nb.cells.remove(moved)
        nb.cells.append(moved)
        del nb.cells[5]  # "## Summary ... ## Exercises ... ### Exercise 0.1": gone

    def bob(nb):  # a syntax error, a renamed variable, an endless loop
        _by_id(nb, "ex-0-1-solution").source = "def double(x)\n    return 2 * x"
        _by_id(nb, "ex-0-2-solution").source = "predicton = 3"
        _by_id(nb, "ex-0-3-solution").source = "def run():\n    while True:\n        pass"

    paths = {
        "alice": submission("alice", alice),
        "bob": submission("bob", bob),
        "untouched": submission("x1", lambda nb: None),
    }
    broken = tmp / "dave" / "00_tiny.ipynb"
    broken.parent.mkdir()
    broken.write_text("{ not json")
    students = tmp / "students.csv"
    students.write_text("file,student\nx1/00_tiny.ipynb,carol\n")
    private = tmp / "private"
    private.mkdir()
    (private / "00.py").write_text(
        "# the course's own tests\n# Exercise 0.2\n"
        "assert isinstance(prediction, float), 'the course asks for a float'\n"
        "# Exercise 0.1\ncheck_value('double(-4)', double(-4), -8)\n"
    )
    argv = [*map(str, [*paths.values(), broken]), "--chapter", str(chapter)]
    argv += ["--students", str(students), "--private-tests", str(private), "--timeout", "15"]
    argv += ["--csv", str(tmp / "grades.csv"), "--answers", str(tmp / "answers.md")]
    argv += ["--jobs", "2"]  # two kernels at once; the output keeps the files' order
    return tmp, argv


@pytest.fixture(scope="module")
def output(graded):
    import contextlib
    import io

    tmp, argv = graded
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = grader.main(argv)
    lines = [line.split("\t") for line in buffer.getvalue().splitlines()]
    return tmp, status, lines


def _line(lines, status, student, exercise):
    return next(f for f in lines if f[0] == status and f[1] == student and f[3] == exercise)


def test_output_contract_and_exit_status(output):
    tmp, status, lines = output
    assert status == 2  # dave's file is not a notebook
    error = [f for f in lines if f[0] == "ERROR"]
    assert len(error) == 1 and "dave" in error[0][1] and "not a readable notebook" in error[0][2]
    assert {f[0] for f in lines} == {"PASS", "FAIL", "TOTAL", "ERROR"}
    totals = {f[1]: f[3] for f in lines if f[0] == "TOTAL"}
    assert totals == {"alice": "5/6", "bob": "0/6", "carol": "0/6"}
    assert [f[1] for f in lines if f[0] == "TOTAL"] == ["alice", "bob", "carol"], "file order"
    with (tmp / "grades.csv").open() as handle:
        rows = {r["student"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["alice"]["0.1"] == "2" and rows["alice"]["0.2"] == "0"
    assert (rows["alice"]["total"], rows["alice"]["max"]) == ("5", "6")


def test_correct_answers_pass_even_with_deleted_headings_and_moved_cells(output):
    _, _, lines = output
    assert _line(lines, "PASS", "alice", "0.1")[4] == "2/2"  # its heading cell was deleted
    assert _line(lines, "PASS", "alice", "0.3")[4] == "3/3"


def test_private_tests_count(output):
    _, _, lines = output
    assert "the course asks for a float" in _line(lines, "FAIL", "alice", "0.2")[5]


def test_broken_answers_fail_with_their_reason(output):
    _, _, lines = output
    assert "SyntaxError" in _line(lines, "FAIL", "bob", "0.1")[5]
    assert "NameError" in _line(lines, "FAIL", "bob", "0.2")[5]
    assert "longer than 15 s" in _line(lines, "FAIL", "bob", "0.3")[5]
    for exercise in ("0.1", "0.2", "0.3"):
        assert "NotImplementedError" in _line(lines, "FAIL", "carol", exercise)[5]


def test_written_answers_go_to_the_teachers_report(output):
    tmp, _, _ = output
    report = (tmp / "answers.md").read_text()
    assert "## alice, chapter 00, Exercise 0.3" in report and "as I thought" in report


def test_unknown_chapter_and_missing_file_are_reported(tmp_path, capsys):
    odd = tmp_path / "notes.ipynb"
    nbformat.write(synthetic_chapter(), odd)
    assert grader.main([str(odd), str(tmp_path / "42_missing.ipynb")]) == 2
    out = capsys.readouterr().out
    assert "cannot tell the chapter of notes.ipynb" in out and "no such file" in out


def _solved(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if "SOLUTION" not in line)


def test_calling_the_reference_fails_in_make_grade(tmp_path: Path):
    chapter = ROOT / "chapters" / "10_fast_resnet.ipynb"
    nb, _ = assignments.student_version(nbformat.read(chapter, as_version=4))
    teacher = nbformat.read(chapter, as_version=4)
    for number in ("10.1", "10.2", "10.3", "10.4"):
        gid = f"ex-{number.replace('.', '-')}-solution"
        _by_id(nb, gid).source = _solved(_by_id(teacher, gid).source)
    _by_id(nb, "ex-10-1-solution").source = (
        "def one_cycle(step, total_steps, warmup):\n"
        "    from cnnbook.fast_train import lr_factor as g\n"
        "    return g(step, total_steps, warmup)"
    )
    _by_id(nb, "ex-10-2-solution").source = (
        "f = apply_augment\n\ndef flip_and_shift(x, flips, shifts, pad):\n"
        "    return f(x, flips, shifts, pad)"
    )
    # a derivation answered by building the network and counting (the check's reference)
    _by_id(
        nb, "ex-10-4-solution"
    ).source = "def resnet_params(w):\n    return count_params(cifar_resnet(w))"
    path = tmp_path / "mallory" / chapter.name
    path.parent.mkdir()
    nbformat.write(nb, path)
    results = {r.exercise: r for r in grader.grade(path)[0]}
    assert results["10.3"].passed, results["10.3"].error
    for number, name in (
        ("10.1", "lr_factor"),
        ("10.2", "apply_augment"),
        ("10.4", "c"),  # `cifar_resnet` or `count_params`, whichever runs first
    ):
        assert f"calls the reference implementation `{name}" in results[number].error, results[
            number
        ].error


@pytest.fixture(scope="module")
def teacher_grades(tmp_path_factory) -> dict[str, list]:
    """Every chapter's own notebook graded as a submission, two kernels at a time."""
    folder = tmp_path_factory.mktemp("grades") / "teacher"
    folder.mkdir()
    for path in CHAPTERS:
        (folder / path.name).write_bytes(path.read_bytes())
    graded = grader.grade_all([folder / p.name for p in CHAPTERS], jobs=2)
    return {path.name: results for path, results, _ in graded}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_teacher_version_gets_full_marks(teacher_grades, path: Path):
    """Every exercise runs right after the setup, as tools/EXERCISES.md requires, and passes."""
    results = teacher_grades[path.name]
    assert not isinstance(results, Exception), f"{path.name}: {results}"
    failed = [f"{r.exercise}: {r.error}" for r in results if not r.passed]
    assert not failed, f"{path.name}: " + "; ".join(failed)
    assert sum(r.points for r in results) == sum(r.max_points for r in results) > 0


@pytest.mark.parametrize(("jobs", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_grade_all_refuses_a_bad_number_of_jobs(jobs, error):
    with pytest.raises(error, match="jobs"):
        grader.grade_all([], jobs=jobs)  # at the call, not when the first result is read
    if error is ValueError:
        with pytest.raises(SystemExit):
            grader.main(["x.ipynb", "--jobs", str(jobs)])

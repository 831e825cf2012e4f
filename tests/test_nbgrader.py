"""The real nbgrader grades the chapters through the metadata tools/nbgrader_meta.py writes.

A throwaway course (its own nbgrader_config.py and sqlite gradebook in tmp_path) holds
one assignment with three chapters. ``nbgrader generate_assignment`` makes the student
versions from the teacher's notebooks, then ``nbgrader autograde`` grades three
submissions of each: the teacher's solution (full points), the untouched student version
(0) and one with exactly one wrong exercise (loses exactly its points). Chapter 3 runs
whole, as a teacher grading a whole chapter would; chapters 1 and 10 (a minute of ResNet
training in its body) are cut to their setup and exercise section, which
tools/EXERCISES.md requires to run on their own (chapter 1 whole cost 30 s more).
Chapter 10's wrong exercise calls the library's reference, which the check must refuse
with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "ps1"
CHAPTERS = {
    "01_why_convolutions": {"wrong": "1.1", "cut": True, "old": "* W + c", "new": "* W + c + 1"},
    "03_conv_arithmetic": {
        "wrong": "3.1",
        "old": "return total // 2, total - total // 2",
        "new": "return total - total // 2, total // 2",  # the odd pixel on the wrong side
    },
    "10_fast_resnet": {
        "wrong": "10.1",
        "cut": True,
        "old": "    peak = warmup * total_steps\n",
        "new": "    from cnnbook.fast_train import lr_factor as g\n"
        "    return g(step, total_steps, warmup)\n    peak = warmup * total_steps\n",
    },
}

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nbgrader") is None, reason="nbgrader is a test requirement"
)


def _cut_to_exercises(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The install cell, the setup and the '## Exercises' section of a chapter."""
    seed = next(i for i, c in enumerate(nb.cells) if "seed_everything(" in c.source)
    start = next(i for i, c in enumerate(nb.cells) if "\n## Exercises" in "\n" + c.source)
    end = next(
        (
            i
            for i in range(start + 1, len(nb.cells))
            if any(line.startswith("## ") for line in nb.cells[i].source.splitlines())
        ),
        len(nb.cells),
    )
    nb.cells = nb.cells[: seed + 1] + nb.cells[start:end]
    return nb


def _solved(source: str) -> str:
    """A solution cell as the teacher wrote it, marker lines removed."""
    keep = [line for line in source.splitlines() if "### BEGIN SOLUTION" not in line]
    return "\n".join(line for line in keep if "### END SOLUTION" not in line)


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # alembic
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "utils"), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("course")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.course_id = 'cnnbook'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{root / 'gradebook.db'}'\n"
        "c.Execute.timeout = 600\n"
        "c.ClearSolutions.code_stub = {'python': 'raise NotImplementedError'}\n"
    )
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for name, spec in CHAPTERS.items():
        nb = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
        nbformat.write(_cut_to_exercises(nb) if spec.get("cut") else nb, source / f"{name}.ipynb")
    _nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")

    for name, spec in CHAPTERS.items():
        teacher = nbformat.read(source / f"{name}.ipynb", as_version=4)
        student = nbformat.read(root / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        solutions = {
            c.metadata["nbgrader"]["grade_id"]: _solved(c.source)
            for c in teacher.cells
            if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
        }
        wrong_prefix = "ex-" + spec["wrong"].replace(".", "-") + "-"
        one_wrong = nbformat.read(root / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
        for cell in one_wrong.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in solutions:
                cell.source = solutions[grade_id]
                if grade_id.startswith(wrong_prefix):
                    assert spec["old"] in cell.source, (name, grade_id)
                    cell.source = cell.source.replace(spec["old"], spec["new"], 1)
        for who, nb in (("teacher", teacher), ("untouched", student), ("onewrong", one_wrong)):
            folder = root / "submitted" / who / ASSIGNMENT
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / f"{name}.ipynb")
    _nbgrader(root, "autograde", ASSIGNMENT, "--create", "--force")
    return root


def _scores(course: Path, student: str, name: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        nb = gradebook.find_submission_notebook(name, ASSIGNMENT, student)
        return {g.name: (g.score, g.max_score) for g in nb.grades if g.auto_score is not None}


@pytest.mark.parametrize("name", CHAPTERS)
def test_teacher_gets_full_points_and_untouched_gets_zero(course: Path, name: str):
    teacher, untouched = _scores(course, "teacher", name), _scores(course, "untouched", name)
    # Written answers are graded by a person: nbgrader scores an untouched one 0 by itself
    # and leaves a written one for manual grading, so they appear for "untouched" only.
    checks = {gid for gid in untouched if gid.endswith("-check")}
    assert len(checks) >= 3 and set(teacher) == checks, (sorted(teacher), sorted(untouched))
    assert all(score == most for score, most in teacher.values()), teacher
    assert all(s == 0 for s, _ in untouched.values()), untouched


@pytest.mark.parametrize("name", CHAPTERS)
def test_one_wrong_exercise_loses_exactly_its_points(course: Path, name: str):
    scores = _scores(course, "onewrong", name)
    wrong = "ex-" + CHAPTERS[name]["wrong"].replace(".", "-") + "-check"
    # the written answers were left untouched (0 points, see above): only checks count here
    lost = {gid for gid, (score, most) in scores.items() if score != most and "-check" in gid}
    assert lost == {wrong}, scores
    assert scores[wrong][0] == 0


def test_the_reference_call_fails_with_its_reason(course: Path):
    graded = course / "autograded" / "onewrong" / ASSIGNMENT / "10_fast_resnet.ipynb"
    nb = nbformat.read(graded, as_version=4)
    check = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex-10-1-check"
    )
    errors = [o for o in check.outputs if o.output_type == "error"]
    assert errors and "calls the reference implementation `lr_factor`" in errors[0].evalue


def test_hidden_tests_are_put_back_for_autograde(course: Path):
    """The submission came without hidden tests; nbgrader restores the locked check cells."""
    submitted = course / "submitted" / "onewrong" / ASSIGNMENT / "03_conv_arithmetic.ipynb"
    graded = course / "autograded" / "onewrong" / ASSIGNMENT / "03_conv_arithmetic.ipynb"
    assert "same_pads (edge cases)" not in submitted.read_text()
    assert "same_pads (edge cases)" in graded.read_text()


def test_setup_ran_in_the_book_environment(course: Path):
    """The autograding kernel inherited the profile and data settings (read from describe())."""
    graded = course / "autograded" / "teacher" / ASSIGNMENT / "01_why_convolutions.ipynb"
    nb = nbformat.read(graded, as_version=4)
    setup = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup-1")
    text = "".join(o.get("text", "") for o in setup.outputs if o.output_type == "stream")
    assert not [o for o in setup.outputs if o.output_type == "error"]
    expected = os.environ.get("CNNBOOK_PROFILE", "").strip().lower()
    assert f"cnnbook profile: {expected}" in text, text  # the test's own profile, if set

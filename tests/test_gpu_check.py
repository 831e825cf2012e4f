"""benchmarks/gpu_check.py on a CPU: settings, chapter list, table, timeouts, a reduced run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def test_headline_is_chapter_10s_full_profile():
    """The check trains exactly what chapter 10's settings cell calls FULL."""
    from cnnbook.fast_recipe import Recipe
    from cnnbook.runtime import by_profile, profile

    nb = nbformat.read(ROOT / "chapters" / "10_fast_resnet.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.get("id") == "a8651561"]
    namespace = {"Recipe": Recipe, "by_profile": by_profile, "profile": profile}
    exec(cell.source, namespace)
    assert gpu_check.headline_settings() == namespace["FULL"]


def test_chapters_with_a_full_profile_are_listed_but_not_10():
    names = [p.name[:2] for p in gpu_check.full_profile_chapters()]
    assert "10" not in names and {"07", "11", "18"} <= set(names)
    assert "03" not in names  # chapter 3's settings do not depend on the profile


def test_without_jupyter_chapters_are_recorded_not_run(monkeypatch):
    real = gpu_check.importlib.util.find_spec
    monkeypatch.setattr(
        gpu_check.importlib.util,
        "find_spec",
        lambda name: None if name == "ipykernel" else real(name),
    )
    args = gpu_check.parse_args(["--chapters", "07,12"])
    rows = gpu_check.run_chapters(args, deadline=0)
    assert [r["status"] for r in rows] == ["not run (needs Jupyter: ipykernel)"] * 2


def test_a_slow_notebook_is_stopped_and_recorded_as_timeout(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
    ]
    path = tmp_path / "99_slow.ipynb"
    nbformat.write(nb, path)
    row = gpu_check.run_chapter(path, seconds=6, env=dict(gpu_check.os.environ))
    assert row["status"] == "timeout" and row["seconds"] < 60, row


def test_reduced_run_on_cpu_writes_the_table(tmp_path, monkeypatch):
    from cnnbook.data import DatasetNotFoundError, cifar10

    try:
        cifar10(train=False)
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 is not available (set CNNBOOK_DATA_DIR)")
    monkeypatch.setenv("CNNBOOK_MAX_STEPS", "2")
    argv = ["--allow-cpu", "--skip-notebooks", "--out", str(tmp_path), "--chapters", "07"]
    argv += ["--train-limit", "64", "--test-limit", "32", "--batch-size", "16"]
    with pytest.warns(UserWarning, match="CNNBOOK_MAX_STEPS"):
        assert gpu_check.main(argv) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    headline, chapter = result["rows"]
    assert headline["status"] == "reduced (not the full profile)" and headline["steps"] == 2
    assert chapter == {"part": "chapter 07", "what": "07_lenet.ipynb", "status": "skipped"}
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| chapter 10 headline | ResNet-9 (width 64), 64 train / 32 test images" in table

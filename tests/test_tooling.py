"""The Makefile, ruff and the test plugins agree with what the tests and the style guide say."""

from __future__ import annotations

import ast
import re
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = (ROOT / "Makefile").read_text()


def _recipe(target: str) -> tuple[list[str], str]:
    """A Makefile target's prerequisites and its recipe (the tab-indented lines after it)."""
    match = re.search(rf"^{target}:([^\n]*)\n((?:\t[^\n]*\n)*)", MAKEFILE, re.MULTILINE)
    assert match, f"no `{target}` target in the Makefile"
    return match.group(1).split(), match.group(2)


def _variable(name: str) -> str:
    match = re.search(rf"^{name} :?= *(.*)$", MAKEFILE, re.MULTILINE)
    assert match, f"no {name} in the Makefile"
    return match.group(1).strip()


def test_make_book_is_the_strict_build_of_the_tests():
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    flags = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "BOOK_BUILD_FLAGS"
    )
    assert "-W" in flags
    assert _variable("BOOK_FLAGS").split() == flags
    assert "$(BOOK_FLAGS)" in _recipe("book")[1]


def test_make_bench_runs_every_benchmark():
    recipe = _recipe("bench")[1]
    scripts = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name[0] != "_")
    missing = [name for name in scripts if f"benchmarks/{name}" not in recipe]
    assert scripts and not missing, f"make bench leaves out {missing}"


def test_make_test_lints_with_ruff_first():
    prerequisites, _ = _recipe("test")
    assert "lint" in prerequisites
    recipe = _recipe("lint")[1]
    assert "ruff check ." in recipe and "ruff format --check ." in recipe


def test_ruff_is_pinned_to_a_range_that_holds_the_installed_version():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    (ruff,) = [Requirement(line) for line in lines if re.match(r"ruff\b", line)]
    assert any(spec.operator == "<" for spec in ruff.specifier), "ruff needs an upper bound"
    assert ruff.specifier.contains(version("ruff")), f"installed ruff is not in {ruff}"


def test_ruff_checks_the_notebooks():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert "*.ipynb" in config.get("extend-include", [])


@pytest.mark.parametrize("path", sorted((ROOT / "chapters").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_fmt_skip_in_a_notebook_says_why(path: Path):
    notebook = nbformat.read(path, as_version=4)
    bare = [
        f"cell {index}: {line.strip()[:60]}"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if "fmt: skip" in line and not re.search(r"# fmt: skip  # \w", line)
    ]
    assert not bare, "a `# fmt: skip` needs a reason after it (`# fmt: skip  # why`): " + str(bare)


def test_the_nbval_cache_plugin_is_registered_and_nbval_is_not_patched():
    conftest = ast.parse((ROOT / "conftest.py").read_text())
    plugins = [
        ast.literal_eval(node.value)
        for node in conftest.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "pytest_plugins"
    ]
    assert plugins == [["tools.nbval_cache"]]
    import nbval.plugin

    from tools import nbval_cache  # noqa: F401  (imported: its hooks must not touch nbval)

    assert nbval.plugin.IPyNbFile.get_kernel_message.__module__ == "nbval.plugin"
    assert nbval.plugin.IPyNbCell.runtest.__module__ == "nbval.plugin"

"""Every third-party module the code imports is declared where an install would find it.

``pip install cnnbook`` (every chapter's first cell in Colab) installs only what
pyproject.toml's ``dependencies`` name; a module that happens to be in the developers'
venv but is missing there breaks a chapter for every reader. The tools (``make sync``,
``make assignments``, the book's Sphinx extensions) are installed from requirements.txt.

The imports are read with ``ast`` (top-level and nested ``import x`` / ``from x import
y``), mapped to distributions with ``importlib.metadata.packages_distributions()`` and
compared with the declared requirement names. The standard library is excluded through
``sys.stdlib_module_names``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import InvalidRequirement, Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "utils" / "cnnbook"
TOOLS = ROOT / "tools"
FIRST_PARTY = {"cnnbook"}


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``PyYAML`` -> ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imports_in_source(
    source: str, filename: str = "<source>", *, skip_guarded: bool = False
) -> set[str]:
    """Top-level names of the absolute imports anywhere in ``source`` (nested ones too).

    With ``skip_guarded``, optional imports are left out: those under a ``try`` whose
    handler catches ImportError, and modules the code probes with ``find_spec("name")``
    (a chapter's optional cross-check that says it is skipped when the package is absent).
    """
    tree = ast.parse(source, filename=filename)
    guarded: set[int] = set()
    probed: set[str] = set()
    if skip_guarded:
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
                guarded.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "find_spec"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                probed.add(node.args[0].value.split(".")[0])
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - probed


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    return any(getattr(n, "id", None) in ("ImportError", "ModuleNotFoundError") for n in names)


def imports_in_tree(folder: Path) -> dict[str, set[str]]:
    """Third-party top-level module -> the files (relative to the repository) importing it.

    Modules defined inside ``folder`` itself (e.g. a tool importing its sibling) are local.
    """
    files = sorted(folder.rglob("*.py"))
    local = {p.stem for p in files} | {p.name for p in folder.rglob("*") if p.is_dir()}
    local.add(
        folder.name
    )  # the nbval plugin loads as tools.nbval_cache, so siblings import as tools.x
    found: dict[str, set[str]] = {}
    for path in files:
        for name in imports_in_source(path.read_text(), str(path)):
            if name in sys.stdlib_module_names or name in local or name in FIRST_PARTY:
                continue
            found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return found


def _code_without_magics(source: str) -> str:
    # IPython syntax (%pip, !ls) is not Python: IPython turns it into get_ipython() calls.
    return TransformerManager().transform_cell(source)


def imports_in_notebooks(paths: Iterable[Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            code = _code_without_magics(cell.source)
            for name in imports_in_source(code, path.name, skip_guarded=True):
                if name not in sys.stdlib_module_names and name not in FIRST_PARTY:
                    found.setdefault(name, set()).add(path.name)
    return found


def pyproject_requirements(root: Path = ROOT) -> tuple[set[str], set[str]]:
    """(``dependencies``, every optional extra's requirements), as normalized names."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    plain = {normalize(Requirement(r).name) for r in project.get("dependencies", [])}
    extras = {
        normalize(Requirement(r).name)
        for group in project.get("optional-dependencies", {}).values()
        for r in group
    }
    return plain, extras


def requirements_txt(root: Path = ROOT) -> set[str]:
    """Names in requirements.txt; ``-e .`` stands for the project's own dependencies."""
    names = set()
    for raw in (root / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line in ("-e .", "."):
            plain, extras = pyproject_requirements(root)
            names |= plain | extras
            continue
        if line.startswith("-"):
            continue
        try:
            names.add(normalize(Requirement(line).name))
        except InvalidRequirement as err:  # a typo must not silently shrink the list
            raise ValueError(f"requirements.txt: cannot parse {raw!r}: {err}") from err
    return names


def undeclared(
    imported: Mapping[str, set[str]],
    declared: set[str],
    distributions: Mapping[str, list[str]],
) -> list[str]:
    """One line per imported module that no declared distribution provides."""
    problems = []
    for module in sorted(imported):
        where = ", ".join(sorted(imported[module]))
        dists = distributions.get(module)
        if not dists and normalize(module) in declared:
            continue  # declared under its own name, not installed here (e.g. a version marker)
        if not dists:
            problems.append(f"{module} (imported in {where}) is not installed here")
        elif not {normalize(d) for d in dists} & declared:
            names = " or ".join(sorted(set(dists)))
            problems.append(f"{module} (imported in {where}) comes from {names}: not declared")
    return problems


DISTRIBUTIONS = importlib.metadata.packages_distributions()


def test_library_imports_are_pyproject_dependencies():
    plain, extras = pyproject_requirements()
    problems = undeclared(imports_in_tree(LIBRARY), plain | extras, DISTRIBUTIONS)
    assert not problems, "add to pyproject.toml's dependencies:\n" + "\n".join(problems)


def test_chapter_imports_are_pyproject_dependencies():
    """A chapter in Colab has what ``pip install cnnbook`` brought, nothing else."""
    plain, extras = pyproject_requirements()
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    problems = undeclared(imports_in_notebooks(chapters), plain | extras, DISTRIBUTIONS)
    assert not problems, "add to pyproject.toml's dependencies:\n" + "\n".join(problems)


def test_tool_imports_are_in_requirements():
    plain, extras = pyproject_requirements()
    declared = requirements_txt() | plain | extras
    problems = undeclared(imports_in_tree(TOOLS), declared, DISTRIBUTIONS)
    assert not problems, "add to requirements.txt:\n" + "\n".join(problems)


def test_the_check_finds_a_missing_import(tmp_path: Path):
    """The checker itself: nested and ``from`` imports are seen, declared ones pass."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["numpy>=1", "PyYAML"]\n'
    )
    (tmp_path / "requirements.txt").write_text("# tools\nnbformat>=5  # comment\n-e .\n")
    source = "import os\nimport numpy as np\ndef f():\n    from captum.attr import Saliency\n"
    imported = {name: {"m.py"} for name in imports_in_source(source) - {"os"}}
    assert imported == {"numpy": {"m.py"}, "captum": {"m.py"}}
    plain, _ = pyproject_requirements(tmp_path)
    assert plain == {"numpy", "pyyaml"}
    assert requirements_txt(tmp_path) == {"nbformat", "numpy", "pyyaml"}
    dists = {"numpy": ["numpy"], "captum": ["captum"], "yaml": ["PyYAML"]}
    problems = undeclared(imported, plain, dists)
    assert len(problems) == 1 and problems[0].startswith("captum (imported in m.py)")
    assert undeclared({"yaml": {"t.py"}}, plain, dists) == []
    assert "not installed" in undeclared({"nosuchmod": {"t.py"}}, plain, dists)[0]


def test_optional_imports_in_chapters_are_recognized():
    source = (
        'if importlib.util.find_spec("torchmetrics") is None:\n    print("skipped")\n'
        "else:\n    from torchmetrics.detection import MeanAveragePrecision\n"
        "try:\n    import pycocotools\nexcept ImportError:\n    pass\n"
        "import captum\n"
    )
    assert imports_in_source(source, skip_guarded=True) == {"captum"}
    assert imports_in_source(source) == {"captum", "torchmetrics", "pycocotools"}

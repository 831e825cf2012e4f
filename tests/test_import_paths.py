"""One import path per name: every ``from cnnbook.x import name`` names the module that
defines ``name``, never a module that merely imports it (a re-export). A package may
export what its own submodules define (``cnnbook.widgets`` exports its figures)."""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "utils"


def _module_file(module: str) -> Path | None:
    base = LIBRARY.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


@cache
def _defined_names(module: str) -> frozenset[str]:
    """Names a module binds itself at top level: functions, classes, assignments."""
    path = _module_file(module)
    tree = ast.parse(path.read_text())
    names = set()
    if path.name == "__init__.py":  # a package's exports from its own submodules
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                own = node.level > 0 or (node.module or "").startswith(module + ".")
                if own:
                    names.update(alias.asname or alias.name for alias in node.names)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(names)


def _sources() -> list[tuple[str, str]]:
    files = [*ROOT.glob("utils/cnnbook/**/*.py"), *ROOT.glob("tests/*.py")]
    files += [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("tools/**/*.py")]
    sources = [(str(p.relative_to(ROOT)), p.read_text()) for p in files]
    # code held in strings (notebook cells a test writes, scripts it runs) counts too
    for path, text in list(sources):
        if path == "tests/test_import_paths.py":
            continue  # its own examples of a wrong import
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if "from cnnbook" in node.value and _parses(node.value):
                    sources.append((f"{path} (a string at line {node.lineno})", node.value))
    for path in [*ROOT.glob("chapters/*.ipynb"), *ROOT.glob("chapters/projects/*.ipynb")]:
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        lines = "\n".join(code).splitlines()  # without IPython's %magics and !shell lines
        lines = [ln for ln in lines if not ln.lstrip().startswith(("%", "!"))]
        sources.append((str(path.relative_to(ROOT)), "\n".join(lines)))
    return sources


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _reexported_imports(source: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
            continue
        if node.module.split(".")[0] != "cnnbook":
            continue
        if _module_file(node.module) is None:
            problems.append(f"{node.module} does not exist")
            continue
        for alias in node.names:
            if alias.name in _defined_names(node.module):
                continue
            if _module_file(f"{node.module}.{alias.name}") is not None:
                continue  # a submodule: from cnnbook import data
            problems.append(f"{node.module}.{alias.name} is not defined there")
    return problems


SOURCES = _sources()


@pytest.mark.parametrize(("path", "source"), SOURCES, ids=[path for path, _ in SOURCES])
def test_names_are_imported_from_the_module_that_defines_them(path: str, source: str):
    problems = _reexported_imports(source)
    assert not problems, f"{path}: import each name from its own module: {problems}"


def test_the_check_catches_a_re_export():
    assert _reexported_imports("from cnnbook.data import sample_photo") == [
        "cnnbook.data.sample_photo is not defined there"
    ]
    assert _reexported_imports("from cnnbook.photos import sample_photo") == []
    assert _reexported_imports("from cnnbook import data") == []

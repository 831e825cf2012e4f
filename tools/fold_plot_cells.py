"""Fold the code of plot-only cells in the published book (Jupyter Book's ``hide-input``).

A reader of a chapter page should see the figures and the code that teaches; ten lines of
axis labels before each plot are in the way. A code cell is *plot-only* when

- its last line is ``plt.show()`` or ``show(...)`` (a figure or a diagram),
- it asserts nothing, prints nothing, checks nothing and defines no function or class,
- and no name it assigns is read by a later cell (so it only prepares what it draws).

Such a cell gets the ``hide-input`` tag: the page shows its figure with a "Show code cell
source" toggle above it. Cells that compute something the chapter goes on to use stay in
view. ``python tools/fold_plot_cells.py`` tags every chapter and project notebook (run by
``make sync``); ``--check`` lists the untagged plot-only cells and exits 1 (a hygiene test
runs it).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TAG = "hide-input"
_LAST_LINE = re.compile(r"(plt\.show\(\)|show\(.*\))")
_REPORTING = {"print", "check_value", "check_function", "display"}


def _tree(source: str) -> ast.Module | None:
    """The cell's syntax tree; IPython magics and shell lines read as comments."""
    code = re.sub(r"^(\s*)([%!])", r"\1#", source, flags=re.M)
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _assigned(tree: ast.AST) -> set[str]:
    names = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    return names | {
        n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))
    }


def _read_before_assigned(tree: ast.AST) -> set[str]:
    """Names a cell reads that it does not assign itself (so they come from earlier cells)."""
    loads = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return loads - _assigned(tree)


def _reports(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assert, ast.FunctionDef, ast.ClassDef, ast.Return)):
            return True
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in _REPORTING:
            return True
    return False


def plot_only_cells(cells: list) -> list[int]:
    """Indices (into ``cells``, code cells only) of the plot-only cells, in order."""
    trees = [_tree(c.source) for c in cells]
    read_later: list[set[str]] = [set() for _ in cells]
    seen: set[str] = set()
    for i in range(len(cells) - 1, -1, -1):
        read_later[i] = set(seen)
        if trees[i] is not None:
            seen |= _read_before_assigned(trees[i])
    found = []
    for i, (cell, tree) in enumerate(zip(cells, trees, strict=True)):
        lines = cell.source.strip().splitlines()
        if tree is None or not lines or not _LAST_LINE.fullmatch(lines[-1].strip()):
            continue
        if _reports(tree) or _assigned(tree) & read_later[i]:
            continue
        found.append(i)
    return found


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "chapters").glob("*.ipynb")) + sorted(
        (root / "chapters" / "projects").glob("*.ipynb")
    )


def untagged(path: Path) -> list[int]:
    """Plot-only code cells of ``path`` (their positions among its code cells) not folded."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    return [i for i in plot_only_cells(code) if TAG not in code[i].metadata.get("tags", [])]


def fold(path: Path) -> int:
    """Tag ``path``'s plot-only cells; returns how many were newly tagged."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    added = 0
    for i in plot_only_cells(code):
        tags = code[i].metadata.setdefault("tags", [])
        if TAG not in tags:
            tags.append(TAG)
            added += 1
    if added:
        nbformat.write(nb, path)
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list unfolded plot-only cells")
    args = parser.parse_args(argv)
    if args.check:
        missing = {p.name: untagged(p) for p in notebooks()}
        missing = {name: cells for name, cells in missing.items() if cells}
        for name, cells in missing.items():
            print(f"{name}: plot-only code cells {cells} lack the {TAG!r} tag")
        return 1 if missing else 0
    total = sum(fold(p) for p in notebooks())
    print(f"folded {total} plot-only cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())

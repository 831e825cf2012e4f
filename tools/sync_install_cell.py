"""Keep the first cell of every chapter notebook in step with ``_config.yml``.

The repository URL lives in one place, ``repository.url`` in ``_config.yml``. Each
notebook starts with a cell that installs ``cnnbook`` from that URL when the library is
missing (Colab, a fresh laptop). ``python tools/sync_install_cell.py`` rewrites those
cells; ``--check`` only reports notebooks that disagree (the hygiene test uses it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The published book does not show the cell: it matters only where the notebook runs.
INSTALL_TAG = "remove-cell"


def repo_url(root: Path = ROOT) -> str:
    config = yaml.safe_load((root / "_config.yml").read_text())
    return str(config["repository"]["url"]).rstrip("/")


def install_cell_source(url: str) -> str:
    return (
        "# Running in Colab or a fresh environment? This installs the book's helper library.\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("cnnbook") is None:\n'
        f'    %pip install --quiet "cnnbook @ git+{url}"'
    )


def chapter_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "chapters").glob("*.ipynb") if p.is_file())


def stale_notebooks(root: Path = ROOT) -> list[Path]:
    """Notebooks whose first cell is not the install cell for the configured URL."""
    expected = install_cell_source(repo_url(root))
    stale = []
    for path in chapter_notebooks(root):
        cells = nbformat.read(path, as_version=4).cells
        first = cells[0] if cells else None
        if (
            first is None
            or first.cell_type != "code"
            or first.source != expected
            or first.metadata.get("tags") != [INSTALL_TAG]
        ):
            stale.append(path)
    return stale


def sync(root: Path = ROOT) -> list[Path]:
    expected = install_cell_source(repo_url(root))
    changed = []
    for path in stale_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0] if nb.cells else None
        if (
            first is not None
            and first.cell_type == "code"
            and 'find_spec("cnnbook")' in first.source
        ):
            first.source = expected
            first.metadata["tags"] = [INSTALL_TAG]
        else:
            cell = nbformat.v4.new_code_cell(expected)
            cell.metadata["tags"] = [INSTALL_TAG]
            nb.cells.insert(0, cell)
        nbformat.write(nb, path)
        changed.append(path)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not rewrite")
    args = parser.parse_args()
    if args.check:
        stale = stale_notebooks()
        for path in stale:
            print(f"stale install cell: {path.relative_to(ROOT)}")
        return 1 if stale else 0
    for path in sync():
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

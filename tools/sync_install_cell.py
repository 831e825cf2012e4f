"""Keep the first cell of every chapter notebook in step with the release it installs.

The repository URL lives in one place, ``repository.url`` in ``_config.yml``, and the
version in one place, ``version`` in ``pyproject.toml``; a release is the git tag
``v<version>``. Each notebook starts with a cell that installs ``cnnbook`` from that tag
when the library is missing (Colab, a fresh laptop): before calling pip it checks that
git is there and the host answers, so a reader offline gets one sentence saying what to
do instead of pages of pip errors. ``python tools/sync_install_cell.py`` rewrites those
cells; ``--check`` only reports notebooks that disagree (the hygiene test uses it).
"""

from __future__ import annotations

import argparse
import re
import string
import sys
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# The published book does not show the cell: it matters only where the notebook runs.
INSTALL_TAG = "remove-cell"
# A release: the git tag of a version, e.g. v0.2.0.
TAG_FORMAT = "v{version}"


def repo_url(root: Path = ROOT) -> str:
    config = yaml.safe_load((root / "_config.yml").read_text())
    return str(config["repository"]["url"]).rstrip("/")


def project_version(root: Path = ROOT) -> str:
    """``version`` in pyproject.toml, the single source of the library's version."""
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    if not re.fullmatch(r"\d+(\.\d+)*([a-z]+\d+)?", version):
        raise ValueError(f"pyproject.toml: version {version!r} is not a plain release number")
    return version


# What readers in Colab see (the cell is removed from the HTML book only). The checks
# run only when cnnbook is missing, so an installed library is never re-checked.
CELL_TEMPLATE = string.Template(
    """\
# Running in Colab or a fresh environment? This installs the book's helper library.
import importlib.util

if importlib.util.find_spec("cnnbook") is None:
    import shutil
    import socket

    COPY = "$archive"
    if shutil.which("git") is None:
        raise RuntimeError(f"installing cnnbook needs git: install git, or pip install {COPY}")
    try:
        socket.create_connection(("$host", 443), timeout=5).close()
    except OSError:
        raise RuntimeError(
            "installing cnnbook needs $host: connect to the internet and run this cell "
            f"again, or pip install a downloaded copy of {COPY}"
        ) from None
    %pip install --quiet "cnnbook @ git+$url@$tag\""""
)


def install_cell_source(url: str, version: str) -> str:
    """The cell that installs cnnbook ``version`` from the tag ``v<version>`` of ``url``."""
    host = urlsplit(url).hostname
    if not host or not url.startswith("https://"):
        raise ValueError(f"repository.url must be an https:// URL, got {url!r}")
    tag = TAG_FORMAT.format(version=version)
    # GitHub's archive of the tag: the same source, installable by pip without git.
    archive = f"{url}/archive/refs/tags/{tag}.zip"
    return CELL_TEMPLATE.substitute(url=url, tag=tag, host=host, archive=archive)


def chapter_notebooks(root: Path = ROOT) -> list[Path]:
    """Every notebook a reader may open: chapters, appendices and the Parts' projects."""
    found = [*(root / "chapters").glob("*.ipynb"), *(root / "chapters/projects").glob("*.ipynb")]
    return sorted(p for p in found if p.is_file())


def expected_cell(root: Path = ROOT) -> str:
    return install_cell_source(repo_url(root), project_version(root))


def stale_notebooks(root: Path = ROOT) -> list[Path]:
    """Notebooks whose first cell is not the install cell for the configured URL and version."""
    expected = expected_cell(root)
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
    expected = expected_cell(root)
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
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's folder")
    args = parser.parse_args()
    root = args.root.resolve()
    if args.check:
        stale = stale_notebooks(root)
        release = f"{repo_url(root)} {TAG_FORMAT.format(version=project_version(root))}"
        for path in stale:
            print(f"stale install cell (expected {release}): {path.relative_to(root)}")
        if stale:
            print("run `make sync` to rewrite them")
        return 1 if stale else 0
    for path in sync(root):
        print(f"updated {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

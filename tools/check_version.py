"""Check that a release tag, the library's version and the chapters' install cells agree.

A release is the git tag ``v<version>``, where ``version`` is the one in pyproject.toml;
every chapter's first cell installs ``cnnbook @ git+<repository.url>@v<version>``
(``make sync`` writes it). The release workflow runs this before it builds anything::

    python tools/check_version.py v0.2.1           # or with GITHUB_REF_NAME set
    python tools/check_version.py v0.2.1 --repository https://github.com/you/your-fork

It exits 1 with one line per disagreement, naming both sides:

- the tag is not ``v`` + pyproject's version;
- an install cell does not install that tag from ``repository.url`` (``_config.yml``);
- ``[project.urls]`` in pyproject.toml names another repository or book than
  ``_config.yml`` (``Source`` = ``repository.url``, ``Homepage`` = ``html.baseurl``);
- with ``--repository`` (the workflow passes the repository it runs in): the install
  cells would install from another repository, e.g. a fork that kept the upstream URL.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sync_install_cell as sync  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _same_url(a: str, b: str) -> bool:
    """GitHub's addresses ignore case and a trailing slash."""
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def book_url(root: Path = ROOT) -> str:
    """Where the HTML book is published: ``html.baseurl`` in ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    url = (config.get("html") or {}).get("baseurl")
    if not url:
        raise ValueError("_config.yml: html.baseurl (where the book is published) is not set")
    return str(url)


def mismatches(tag: str | None, root: Path = ROOT, repository: str | None = None) -> list[str]:
    """Every disagreement between ``tag``, pyproject.toml, _config.yml and the install cells.

    ``tag``: a git tag such as ``v0.2.0`` (None: only the files are compared).
    ``repository``: the URL of the repository the release is made in, or None.
    """
    if tag is not None and not isinstance(tag, str):
        raise TypeError(f"tag must be a string or None, got {type(tag).__name__}")
    problems = []
    version = sync.project_version(root)
    expected_tag = sync.TAG_FORMAT.format(version=version)
    if tag is not None and tag != expected_tag:
        problems.append(
            f"tag {tag!r} does not match version {version!r} in pyproject.toml "
            f"(the release of {version} is tagged {expected_tag!r}; to release {tag!r}, "
            "set that version in pyproject.toml and run `make sync`)"
        )
    url = sync.repo_url(root)
    for path in sync.stale_notebooks(root):
        problems.append(
            f"install cell of {path.relative_to(root)} does not install {expected_tag} "
            f"from {url} (run `make sync`)"
        )
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("urls", {})
    for key, want, where in (("Source", url, "repository.url"),
                             ("Homepage", book_url(root), "html.baseurl")):  # fmt: skip
        have = urls.get(key)
        if have is None or not _same_url(have, want):
            problems.append(
                f"pyproject.toml [project.urls] {key} is {have!r} but _config.yml's "
                f"{where} is {want!r}"
            )
    if repository is not None and not _same_url(repository, url):
        problems.append(
            f"the install cells install from {url} (repository.url in _config.yml) but this "
            f"release is made in {repository}: set repository.url and run `make sync`"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "tag", nargs="?", help="the release tag, e.g. v0.2.0 (default: $GITHUB_REF_NAME)"
    )
    parser.add_argument("--repository", help="URL of the repository the release is made in")
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's folder")
    args = parser.parse_args(argv)
    tag = args.tag or os.environ.get("GITHUB_REF_NAME")
    if not tag:
        parser.error("give the tag (e.g. v0.2.0) or set GITHUB_REF_NAME")
    problems = mismatches(tag, args.root.resolve(), args.repository)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{tag}: pyproject.toml, _config.yml and every install cell agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

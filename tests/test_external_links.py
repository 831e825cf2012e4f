"""External links: listed in tests/external_links.txt, checked when online."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import nbformat
import pytest
import yaml

from cnnbook.runtime import is_offline

ROOT = Path(__file__).resolve().parent.parent
LISTED = ROOT / "tests" / "external_links.txt"
URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+")


def _book_sources() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    sources = []
    for name in names:
        for suffix in (".ipynb", ".md"):
            if (ROOT / f"{name}{suffix}").exists():
                sources.append(ROOT / f"{name}{suffix}")
    return sources


def _prose(path: Path) -> str:
    if path.suffix == ".md":
        return path.read_text()
    nb = nbformat.read(path, as_version=4)
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def _used_links() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in _book_sources():
        for url in URL.findall(_prose(path)):
            used.setdefault(url.rstrip(".,;:"), set()).add(path.name)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    used.setdefault(config["repository"]["url"].rstrip("/"), set()).add("_config.yml")
    return used


def _listed_links() -> list[str]:
    lines = LISTED.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_external_link_is_listed_in_one_place():
    used, listed = _used_links(), set(_listed_links())
    missing = {url: sorted(pages) for url, pages in used.items() if url not in listed}
    assert not missing, f"add these to {LISTED.name}: {missing}"
    unused = sorted(listed - set(used))
    assert not unused, f"{LISTED.name} lists addresses no page uses any more: {unused}"


@pytest.mark.online
def test_external_links_answer():
    if is_offline():
        pytest.skip("offline: external links are checked only with internet access")
    broken = []
    for url in _listed_links():
        request = urllib.request.Request(url, method="GET", headers={"User-Agent": "cnnbook"})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                if response.status >= 400:
                    broken.append(f"{url}: HTTP {response.status}")
        except OSError as error:
            broken.append(f"{url}: {error}")
    assert not broken, "broken external links:\n" + "\n".join(broken)

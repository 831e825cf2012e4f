"""The browser scripts the book vendors from npm (package-lock.json) are recent enough.

No build and no network: only the lock file that ``npm ci`` installs from is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "package-lock.json"

# package -> (lowest version allowed, why)
MINIMUM = {
    # CVE-2024-38999: prototype pollution in require.js config(), fixed in 2.3.7
    "requirejs": ((2, 3, 7), "CVE-2024-38999"),
    # the ipywidgets 8 manager (widget state format 2); 0.x renders only ipywidgets 7
    "@jupyter-widgets/html-manager": ((1, 0, 0), "ipywidgets 8"),
    # tools/static/mathjax-hub-shim.js and _config.yml's mathjax_path assume MathJax 3
    "mathjax": ((3, 0, 0), "MathJax 3 layout (es5/)"),
}
MAXIMUM_MAJOR = {"mathjax": 3}


def parse_version(text: str) -> tuple[int, int, int]:
    """``"2.3.8"`` -> ``(2, 3, 8)``; a pre-release or build suffix is not allowed."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"version must be plain MAJOR.MINOR.PATCH, got {text!r}")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def locked_versions(lock: dict) -> dict[str, str]:
    """Package name -> version for the top-level packages of an npm v2/v3 lock file."""
    packages = lock.get("packages")
    if not isinstance(packages, dict):
        raise ValueError("lock: no 'packages' table (lockfileVersion 2 or 3 needed)")
    prefix = "node_modules/"
    return {
        key[len(prefix) :]: entry["version"]
        for key, entry in packages.items()
        if key.startswith(prefix) and "/node_modules/" not in key and "version" in entry
    }


def test_parse_version_rejects_ranges_and_prereleases():
    assert parse_version("2.3.7") == (2, 3, 7)
    assert parse_version("2.3.10") > parse_version("2.3.7")
    for bad in ("^2.3.7", "2.3", "4.0.0-beta.7"):
        with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
            parse_version(bad)


def test_lock_file_matches_package_json():
    lock = json.loads(LOCK.read_text())
    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert lock["packages"][""]["dependencies"] == wanted, "run `npm install --package-lock-only`"
    versions = locked_versions(lock)
    for name, pinned in wanted.items():
        assert versions.get(name) == pinned, (
            f"{name}: lock has {versions.get(name)}, wants {pinned}"
        )


def outdated(versions: dict[str, str]) -> list[str]:
    """One line per package of ``MINIMUM`` that is missing, too old or too new."""
    problems = []
    for name, (lowest, why) in sorted(MINIMUM.items()):
        if name not in versions:
            problems.append(f"{name} is not in package-lock.json")
            continue
        found = parse_version(versions[name])
        if found < lowest:
            minimum = ".".join(map(str, lowest))
            problems.append(f"{name} {versions[name]} is older than {minimum} ({why})")
        if found[0] > MAXIMUM_MAJOR.get(name, found[0]):
            problems.append(f"{name} {versions[name]}: major version above {MAXIMUM_MAJOR[name]}")
    return problems


def test_vendored_packages_are_recent_enough():
    assert outdated(locked_versions(json.loads(LOCK.read_text()))) == []


def test_the_vulnerable_requirejs_is_caught():
    """The book used to ship require.js 2.3.4; 2.3.6 was the last release before the fix."""
    for old in ("2.3.4", "2.3.6"):
        versions = {"requirejs": old, "@jupyter-widgets/html-manager": "1.0.15", "mathjax": "3.2.2"}
        assert outdated(versions) == [f"requirejs {old} is older than 2.3.7 (CVE-2024-38999)"]
    assert outdated(
        {"requirejs": "2.3.8", "@jupyter-widgets/html-manager": "1.0.15", "mathjax": "4.0.0"}
    )

"""Copy the browser scripts the book serves itself into ``_vendor/vendor/``.

The HTML book must work with no internet, so require.js, the ipywidgets HTML manager and
MathJax are installed from npm (``npm ci``, versions in package-lock.json) and copied
here; ``_config.yml`` points Sphinx at them. Source maps are skipped to keep pages light.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node_modules"
DEST = ROOT / "_vendor" / "vendor"

# (source inside node_modules, or tools/static/ for our own shims; destination inside
# _vendor/vendor)
COPIES = [
    ("widgets-assets-path.js", "widgets-assets-path.js"),
    ("mathjax-hub-shim.js", "mathjax-hub-shim.js"),
    ("book.css", "book.css"),
    ("search-summary.js", "search-summary.js"),
    ("requirejs/require.js", "requirejs/require.js"),
    ("@jupyter-widgets/html-manager/dist", "html-manager"),
    ("mathjax/es5", "mathjax"),
]
# The files _config.yml loads: a release that moves one must fail here, not in a browser.
ENTRY_POINTS = [
    "requirejs/require.js",
    "html-manager/embed-amd.js",
    "mathjax/tex-mml-chtml.js",
]


def _skip_maps(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n.endswith(".map")]


def main() -> int:
    if not NODE.is_dir():
        print(f"error: {NODE} is missing; run `npm ci` in {ROOT} first", file=sys.stderr)
        return 1
    if DEST.exists():
        shutil.rmtree(DEST)
    for src_rel, dst_rel in COPIES:
        own = ROOT / "tools" / "static" / src_rel
        src, dst = (own if own.exists() else NODE / src_rel), DEST / dst_rel
        if not src.exists():
            print(f"error: {src} is missing; run `npm ci` again", file=sys.stderr)
            return 1
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=_skip_maps)
        else:
            shutil.copy2(src, dst)
    missing = [rel for rel in ENTRY_POINTS if not (DEST / rel).is_file()]
    if missing:
        print(f"error: the npm packages no longer ship {missing}; fix COPIES", file=sys.stderr)
        return 1
    print(f"vendored {len(COPIES)} packages into {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

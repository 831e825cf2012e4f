"""Build the PDF of the book: Sphinx's LaTeX builder, then XeLaTeX through latexmk.

    python tools/build_pdf.py            # writes _build/latex/cnnbook.pdf

Step 1 is ``jupyter-book build . --builder latex -W --keep-going``: notebook outputs come
from ``_build/.jupyter_cache`` (filled by ``make test``) and any notebook not in the
cache is executed, as for the HTML book. Step 2 is the ``all-pdf`` target of the Makefile
Sphinx writes next to ``cnnbook.tex`` (latexmk, XeLaTeX, as many runs as references
need). TeX Live comes from Debian (``make pdf`` installs it, see the Makefile); this
script only checks that it is there. Each step's seconds go to ``_build/pdf-times.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LATEX_DIR = ROOT / "_build" / "latex"
PDF = LATEX_DIR / "cnnbook.pdf"
TEX_LOG = LATEX_DIR / "cnnbook.log"
BUILD_LOG = ROOT / "_build" / "pdf-build.log"
TIMES = ROOT / "_build" / "pdf-times.json"
TEX_TOOLS = ("xelatex", "latexmk")


class PdfBuildError(RuntimeError):
    """A step of the PDF build failed; the message ends with the tail of its log."""


def missing_tex_tools() -> list[str]:
    """The TeX programs the build needs that are not on PATH."""
    return [tool for tool in TEX_TOOLS if shutil.which(tool) is None]


def _run(cmd: list[str], cwd: Path, log: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    log.append(f"$ {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    BUILD_LOG.write_text("\n".join(log))
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        raise PdfBuildError(f"`{' '.join(cmd)}` failed (full log in {BUILD_LOG}):\n{tail}")
    return time.perf_counter() - started


def build_pdf() -> Path:
    """Write ``_build/latex/cnnbook.pdf`` and return its path.

    Raises PdfBuildError when TeX is missing or a step fails.
    """
    missing = missing_tex_tools()
    if missing:
        raise PdfBuildError(
            f"{', '.join(missing)} not found: install TeX Live with `make tex` "
            "(Debian's texlive-xetex, latexmk and fonts; needs root)"
        )
    BUILD_LOG.parent.mkdir(exist_ok=True)
    PDF.unlink(missing_ok=True)  # latexmk would otherwise keep a stale PDF after an error
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    log: list[str] = []
    times = {
        # -W: an unresolved reference or a missing image fails here, not as "??" later.
        "latex_seconds": _run(
            [str(jupyter_book), "build", str(ROOT), "--builder", "latex", "-W", "--keep-going"],
            ROOT,
            log,
        ),
        "xelatex_seconds": _run(
            ["make", "all-pdf", "LATEXMKOPTS=-interaction=nonstopmode -halt-on-error"],
            LATEX_DIR,
            log,
        ),
    }
    if not PDF.exists():
        raise PdfBuildError(f"latexmk ran but wrote no {PDF} (see {TEX_LOG})")
    TIMES.write_text(json.dumps({k: round(v, 1) for k, v in times.items()}, indent=2))
    return PDF


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        pdf = build_pdf()
    except PdfBuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.loads(TIMES.read_text()))
    print(f"The PDF is ready: {pdf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

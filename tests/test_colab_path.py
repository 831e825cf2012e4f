"""The Colab path: a fresh Python where torch & co. are preinstalled but cnnbook is not.

The first cell of every notebook installs cnnbook from the repository when it is missing.
This test plays the Colab user: a new venv that sees this environment's third-party
packages (as Colab's image provides torch, numpy, matplotlib...) but not cnnbook, a
chapter whose install cell points at this repository as a local git URL, executed top
to bottom in a kernel of the new venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "chapters" / "01_why_convolutions.ipynb"
PUBLIC_URL = "git+https://github.com/"


def _preinstalled_packages(target: Path) -> Path:
    """A folder of links to this environment's packages, minus cnnbook itself."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        if "cnnbook" in entry.name.lower():
            continue
        (target / entry.name).symlink_to(entry)
    return target


def _fresh_venv(path: Path, preinstalled: Path) -> Path:
    # No pip of its own: like Colab's, the image's recent pip is used (found through the .pth).
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "colab_image.pth").write_text(f"{preinstalled}\n")
    kernels = path / "share" / "jupyter"
    subprocess.run(
        [python, "-m", "ipykernel", "install", "--prefix", path, "--name", "python3"],
        capture_output=True,
        check=True,
    )
    return kernels


def _notebook_installing_from(url: str, out: Path) -> Path:
    nb = nbformat.read(CHAPTER, as_version=4)
    first = nb.cells[0]
    assert PUBLIC_URL in first.source, "the first cell should install cnnbook from GitHub"
    start = first.source.index(PUBLIC_URL)
    end = first.source.index('"', start)
    first.source = first.source[:start] + url + first.source[end:]
    nbformat.write(nb, out)
    return out


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git repository")
def test_a_chapter_runs_in_a_fresh_environment_installing_cnnbook_from_git(tmp_path: Path):
    env_dir = tmp_path / "venv"
    kernels = _fresh_venv(env_dir, _preinstalled_packages(tmp_path / "image-packages"))
    python = env_dir / "bin" / "python"
    probe = [python, "-c", "import importlib.util as u; print(u.find_spec('cnnbook'))"]
    before = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    assert before == "None", f"cnnbook must not be importable before the install cell: {before}"

    notebook = _notebook_installing_from(f"git+file://{ROOT}", tmp_path / "chapter.ipynb")
    env = {**os.environ, "JUPYTER_PATH": str(kernels), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [python, "-m", "nbconvert", "--to", "notebook", "--execute", "--output",
         str(tmp_path / "executed.ipynb"), "--ExecutePreprocessor.timeout=600", str(notebook)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, f"the notebook failed in a fresh environment:\n{run.stderr[-3000:]}"

    where = subprocess.run(
        [python, "-c", "import cnnbook; print(cnnbook.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=env,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(env_dir)), f"cnnbook should come from the new venv, got {where}"
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    setup_text = json.dumps(executed["cells"])
    assert "cnnbook profile:" in setup_text, "the setup cell did not run"
    assert sys.executable not in where

"""The Colab path, for real: a fresh environment with Colab's packages, then ``pip install``.

Colab's image has torch, numpy, matplotlib & co. but neither cnnbook nor anything only
cnnbook needs (captum). This test builds that environment with pip (a new venv with
only :data:`COLAB_PREINSTALLED`), builds the cnnbook wheel from this checkout, installs it
with a plain ``pip install <wheel>`` (which brings exactly the declared dependencies),
then, in a Jupyter kernel of that venv, runs the setup cells of every chapter (code cells
two to the one calling ``seed_everything(``) and chapter 1 whole. A module that a chapter
or the library imports but pyproject.toml does not declare fails here, naming the chapter.

Cost. Installing torch into a new venv is about 6 GB (CUDA wheels) and took 268 s on
this 2-core machine, and pip's cache cannot help (the time goes into unpacking, not
downloading). So the Colab image is built once with pip and kept under
``$CNNBOOK_TEST_CACHE`` (default ``~/.cache/cnnbook-tests``), keyed by the package list
and the Python version and rebuilt after :data:`IMAGE_MAX_AGE_DAYS`; each run takes a
hard-linked copy of it (seconds, no extra disk) and installs cnnbook into that copy, so
cnnbook's install still starts from an environment that never saw it. Nothing is
written into the shared image: pip only adds and unlinks files in the copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

pytestmark = pytest.mark.fresh_install

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
WHOLE = ROOT / "chapters" / "01_why_convolutions.ipynb"
# What Colab's image ships that the book uses (it has many more, none of them cnnbook's
# own dependencies such as captum). Unpinned: pip picks what Colab would be updated to.
COLAB_PREINSTALLED = [
    "torch", "torchvision", "numpy", "scipy", "matplotlib", "scikit-learn", "scikit-image",
    "pillow", "tqdm", "ipywidgets", "ipykernel", "ipython",
]  # fmt: skip
NOT_IN_COLAB = ["cnnbook", "captum"]
IMAGE_MAX_AGE_DAYS = 30
TIMINGS: dict[str, float] = {}


def _run(cmd: list, *, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert run.returncode == 0, f"{cmd} failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return run


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def _importable(python: Path, names: list[str]) -> list[str]:
    code = (
        "import importlib.util as u, json\n"
        f"print(json.dumps([n for n in {names!r} if u.find_spec(n)]))"
    )
    return json.loads(_run([python, "-c", code], env=_pip_env(), cwd=python.parent).stdout)


def _image_dir() -> Path:
    cache = Path(os.environ.get("CNNBOOK_TEST_CACHE", Path.home() / ".cache" / "cnnbook-tests"))
    spec = json.dumps([sys.version, sys.platform, COLAB_PREINSTALLED]).encode()
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}-{hashlib.sha256(spec).hexdigest()[:12]}"
    return cache / f"colab-image-{tag}"


def colab_image() -> Path:
    """A venv holding only Colab's packages, built by pip once and then reused."""
    image = _image_dir()
    marker = image / "colab-image.json"
    if marker.exists():
        built = json.loads(marker.read_text())
        if time.time() - built["built_at"] < IMAGE_MAX_AGE_DAYS * 86400:
            return image
    start = time.perf_counter()
    image.parent.mkdir(parents=True, exist_ok=True)
    for old in image.parent.glob("colab-image-*"):  # other package lists, half-built tries
        shutil.rmtree(old, ignore_errors=True)
    partial = image.with_name(f"{image.name}.partial-{os.getpid()}")
    venv.EnvBuilder(with_pip=True, symlinks=True).create(partial)
    python = partial / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", *COLAB_PREINSTALLED], env=_pip_env(),
         timeout=1800)  # fmt: skip
    present = _importable(python, NOT_IN_COLAB)
    assert not present, f"the Colab image must not have {present}"
    built = {"built_at": time.time(), "prefix": str(partial), "packages": COLAB_PREINSTALLED}
    (partial / "colab-image.json").write_text(json.dumps(built))
    partial.rename(image)
    TIMINGS["build the Colab image with pip (first run)"] = time.perf_counter() - start
    return image


def clone_venv(image: Path, target: Path) -> Path:
    """A copy of ``image`` at ``target``: libraries hard-linked, scripts copied and relocated."""
    old_prefix = json.loads((image / "colab-image.json").read_text())["prefix"]
    for folder, dirs, files in os.walk(image):
        rel = Path(folder).relative_to(image)
        (target / rel).mkdir(exist_ok=True)
        for name in dirs + files:
            src, dst = Path(folder) / name, target / rel / name
            if src.is_symlink():
                dst.symlink_to(os.readlink(src))
                if name in dirs:
                    dirs.remove(name)  # lib64 -> lib: walked once, as lib
            elif name in files:
                if rel.parts[:1] in (("bin",), ()):  # small files naming the prefix
                    shutil.copy2(src, dst)
                    if not dst.is_symlink() and old_prefix in (text := _text(dst)):
                        dst.write_text(text.replace(old_prefix, str(target)))
                else:
                    try:
                        os.link(src, dst)
                    except OSError:  # another file system
                        shutil.copy2(src, dst)
    return target / "bin" / "python"


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (UnicodeDecodeError, OSError):
        return ""


def build_wheel(out: Path) -> Path:
    """cnnbook's wheel, built (like pip does from git) from a copy of the tracked sources."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "utils", src / "utils", ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out / "dist", src],
         env=_pip_env())  # fmt: skip
    (wheel,) = (out / "dist").glob("cnnbook-*.whl")
    return wheel


def setup_cells(path: Path) -> list:
    """Code cells two to the one calling ``seed_everything(``: the chapter's imports."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    end = next((i for i, c in enumerate(code) if "seed_everything(" in c.source), None)
    assert end is not None and end >= 1, f"{path.name}: no setup cell calls seed_everything("
    return code[1 : end + 1]


def _run_in_kernel(nb, python: Path, workdir: Path, env: dict[str, str]) -> None:
    kernels = workdir / "kernels"
    spec_dir = kernels / "colab-fresh"
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "fresh Colab-like venv", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(
        kernel_name="colab-fresh", kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernels])
    )
    # allow_errors: every chapter runs, so one failure report names all the broken ones.
    client = NotebookClient(
        nb, km=km, timeout=600, allow_errors=True, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute(env=env)
    first_errors: dict[str, str] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                chapter = cell.metadata.get("chapter", "the probe")
                first_errors.setdefault(chapter, f"{out.ename}: {out.evalue}")
    if first_errors:
        lines = "\n".join(f"  {chapter}: {error}" for chapter, error in first_errors.items())
        pytest.fail(f"failed in a fresh Colab-like environment after pip install:\n{lines}")


def _tagged(cells: list, chapter: str) -> list:
    out = []
    for cell in cells:
        cell = nbformat.from_dict(dict(cell))
        cell.metadata = {**cell.metadata, "chapter": chapter}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        out.append(cell)
    return out


@pytest.fixture(scope="module")
def fresh_colab(tmp_path_factory) -> Path:
    """The Python of a new Colab-like venv with cnnbook installed from its wheel."""
    work = tmp_path_factory.mktemp("colab")
    start = time.perf_counter()
    image = colab_image()
    TIMINGS["prepare the Colab image (reuse or build)"] = time.perf_counter() - start

    start = time.perf_counter()
    python = clone_venv(image, work / "venv")
    TIMINGS["hard-linked copy of the image"] = time.perf_counter() - start
    assert _importable(python, NOT_IN_COLAB) == [], "the copy must start without cnnbook"

    start = time.perf_counter()
    wheel = build_wheel(work / "build")
    TIMINGS["build the cnnbook wheel"] = time.perf_counter() - start

    start = time.perf_counter()
    install = _run([python, "-m", "pip", "install", wheel], env=_pip_env(), cwd=work)
    TIMINGS["pip install <wheel>"] = time.perf_counter() - start
    print(install.stdout.strip().splitlines()[-1])  # "Successfully installed captum-..."
    return python


def test_every_chapter_sets_up_and_chapter_1_runs_after_pip_install_of_the_wheel(
    fresh_colab: Path, tmp_path: Path
):
    python = fresh_colab
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # The offline settings (CNNBOOK_DATA_DIR, TORCH_HOME, CNNBOOK_OFFLINE, CNNBOOK_PROFILE)
    # pass through to the kernel with the rest of the environment.
    env.setdefault("CNNBOOK_PROFILE", "quick")
    workdir = tmp_path / "work"  # not the checkout: `utils/` must not be importable
    workdir.mkdir()

    probe = (
        "import cnnbook, sys\n"
        f"assert cnnbook.__file__.startswith({str(python.parent.parent)!r}), cnnbook.__file__\n"
        f"assert cnnbook.__version__ == {version!r}, cnnbook.__version__\n"
        "print('cnnbook', cnnbook.__version__, 'from', cnnbook.__file__)"
    )
    start = time.perf_counter()
    setup = nbformat.v4.new_notebook()
    setup.cells = [nbformat.v4.new_code_cell(probe)]
    for path in CHAPTERS:
        setup.cells += _tagged(setup_cells(path), path.stem)
    _run_in_kernel(setup, python, workdir, env)
    TIMINGS[f"setup cells of {len(CHAPTERS)} notebooks (one kernel)"] = time.perf_counter() - start
    assert "cnnbook profile:" in json.dumps(setup.cells[-1].outputs), "describe() did not print"

    start = time.perf_counter()
    whole = nbformat.read(WHOLE, as_version=4)
    # The install cell runs too: it must see cnnbook already there and do nothing.
    assert 'find_spec("cnnbook")' in whole.cells[0].source
    whole.cells = [nbformat.v4.new_code_cell(probe)] + _tagged(whole.cells, WHOLE.stem)
    _run_in_kernel(whole, python, workdir, env)
    TIMINGS[f"{WHOLE.stem} whole"] = time.perf_counter() - start
    assert not whole.cells[1].outputs, "the install cell should be silent when cnnbook is present"

    print("\n".join(f"{seconds:7.1f} s  {step}" for step, seconds in TIMINGS.items()))

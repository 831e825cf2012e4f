"""The install cell at the top of every chapter, run in IPython with the world faked.

Each case runs the cell that ``make sync`` writes in a fresh IPython shell (a subprocess)
where ``cnnbook`` looks missing, git is on PATH or not, and the host answers or not. Pip
is never called: the ``%pip`` magic is recorded instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tools_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent

_RUNNER = r"""
import importlib.util, json, socket, sys
from IPython.core.interactiveshell import InteractiveShell

source, hide_cnnbook, online = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
calls = []
if hide_cnnbook:
    real = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a: None if name == "cnnbook" else real(name, *a)

def create_connection(address, timeout=None, *args):
    calls.append(["connect", list(address), timeout])
    if not online:
        raise OSError(101, "Network is unreachable")
    return socket.socket()

socket.create_connection = create_connection
shell = InteractiveShell.instance()
shell.run_line_magic = lambda name, line, *a, **k: calls.append(["magic", name, line])
result = shell.run_cell(open(source).read())
error = result.error_in_exec
print("RESULT " + json.dumps({"error": None if error is None else [type(error).__name__,
      str(error)], "calls": calls}))
"""


def _tool():
    return load_tool("sync_install_cell.py")


SYNC = _tool()
URL = SYNC.repo_url(ROOT)
VERSION = SYNC.project_version(ROOT)
HOST = URL.split("/")[2]


def _run_cell(tmp_path: Path, *, git: bool, online: bool, hide_cnnbook: bool = True) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if git:
        fake = bin_dir / "git"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    cell = tmp_path / "cell.py"
    cell.write_text(SYNC.expected_cell(ROOT))
    env = {**os.environ, "PATH": str(bin_dir), "IPYTHONDIR": str(tmp_path / "ipython")}
    run = subprocess.run(
        [sys.executable, "-c", _RUNNER, cell, str(int(hide_cnnbook)), str(int(online))],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[len("RESULT ") :]), "stdout": run.stdout}


def test_installs_the_release_tag_when_git_and_the_network_are_there(tmp_path: Path):
    out = _run_cell(tmp_path, git=True, online=True)
    assert out["error"] is None, out["stdout"]
    assert out["calls"] == [
        ["connect", [HOST, 443], 5],
        ["magic", "pip", f'install --quiet "cnnbook @ git+{URL}@v{VERSION}"'],
    ]


def test_without_git_one_message_says_what_to_do(tmp_path: Path):
    out = _run_cell(tmp_path, git=False, online=True)
    assert out["error"] is not None and out["error"][0] == "RuntimeError"
    message = out["error"][1]
    assert "install git" in message
    assert f"pip install {URL}/archive/refs/tags/v{VERSION}.zip" in message
    assert out["calls"] == [], "neither the network nor pip should be tried"


def test_offline_one_message_says_what_to_do(tmp_path: Path):
    out = _run_cell(tmp_path, git=True, online=False)
    assert out["error"] is not None and out["error"][0] == "RuntimeError"
    message = out["error"][1]
    assert f"needs {HOST}: connect to the internet" in message
    assert f"v{VERSION}.zip" in message
    assert [c[0] for c in out["calls"]] == ["connect"], "pip must not run offline"
    # `from None`: the reader sees the one message, not the socket error chained above it.
    assert "During handling" not in out["stdout"]


@pytest.mark.parametrize("online", [True, False])
def test_does_nothing_when_cnnbook_is_installed(tmp_path: Path, online: bool):
    if importlib.util.find_spec("cnnbook") is None:
        pytest.skip("cnnbook is not installed in this environment")
    out = _run_cell(tmp_path, git=False, online=online, hide_cnnbook=False)
    assert out == {**out, "error": None, "calls": []}

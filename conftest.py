"""Keep what nbval computed, so the book build does not execute every notebook again.

nbval runs each chapter cell by cell (the asserts in the notebooks are the checks) and
throws the outputs away; the HTML book needs exactly those outputs. Executing every
notebook twice would double CI time, so this plugin records each cell's outputs from the
kernel's messages (including what nbval ignores: ``clear_output`` and display updates,
e.g. the live training plot), asks the kernel for its widget state when the notebook is
done, and stores the executed notebook in the jupyter-cache that the book's
``execute_notebooks: cache`` mode reads (``_build/.jupyter_cache``). The book build then
executes only the notebooks that are not in the cache. A notebook with a failing cell is
not stored, so the book build runs it itself and fails the same way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "_build" / ".jupyter_cache"

# Runs in the kernel after the last cell: the state of every live widget (progress bars,
# explorers), in the format nbclient saves in notebook metadata.
_WIDGET_STATE_CODE = """\
import json as _cnnbook_json, sys as _cnnbook_sys
_cnnbook_w = _cnnbook_sys.modules.get("ipywidgets")
print(_cnnbook_json.dumps(_cnnbook_w.Widget.get_manager_state() if _cnnbook_w else None))
"""
_OUTPUT_MESSAGES = {"display_data", "execute_result", "stream", "error"}


@dataclass
class _Record:
    """Outputs of one notebook's cells, built from kernel messages as nbval runs them."""

    started: float = field(default_factory=time.perf_counter)
    outputs: dict[int, list] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    displays: dict[str, list] = field(default_factory=dict)  # display_id -> its outputs
    cell: int | None = None
    parent_id: str | None = None
    clear_pending: bool = False
    failed: bool = False

    def handle(self, msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        parent = msg.get("parent_header", {}).get("msg_id")
        if kind == "execute_input" and self.cell is not None:
            self.parent_id, self.counts[self.cell] = parent, content.get("execution_count")
            return
        if kind == "update_display_data":
            for out in self.displays.get(content.get("transient", {}).get("display_id"), []):
                out["data"], out["metadata"] = content["data"], content.get("metadata", {})
            return
        if self.cell is None or parent != self.parent_id:
            return
        cell_outputs = self.outputs.setdefault(self.cell, [])
        if kind == "clear_output":
            if content.get("wait"):
                self.clear_pending = True
            else:
                cell_outputs.clear()
            return
        if kind not in _OUTPUT_MESSAGES:
            return
        if self.clear_pending:
            cell_outputs.clear()
            self.clear_pending = False
        self._append(cell_outputs, kind, content)

    def _append(self, cell_outputs: list, kind: str, content: dict) -> None:
        last = cell_outputs[-1] if cell_outputs else None
        if kind == "stream" and last is not None and last.get("output_type") == "stream":
            if last["name"] == content["name"]:
                last["text"] += content["text"]
                return
        out = nbformat.v4.output_from_msg({"header": {"msg_type": kind}, "content": content})
        cell_outputs.append(out)
        display_id = content.get("transient", {}).get("display_id")
        if display_id:
            self.displays.setdefault(display_id, []).append(out)


_records: dict[Path, _Record] = {}
_seconds: dict[str, float] = {}  # notebook name -> wall seconds under nbval, for the summary


def _is_nbval_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def _record_for(item: pytest.Item) -> _Record:
    return _records.setdefault(Path(str(item.parent.path)), _Record())


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("nbval"):
        return
    from nbval.plugin import IPyNbFile

    original = IPyNbFile.get_kernel_message
    if getattr(original, "_cnnbook_recording", False):
        return

    def get_kernel_message(self, timeout=None, stream="iopub"):
        msg = original(self, timeout=timeout, stream=stream)
        record = _records.get(Path(str(self.path)))
        if record is not None and stream == "iopub":
            record.handle(msg)
        return msg

    get_kernel_message._cnnbook_recording = True
    IPyNbFile.get_kernel_message = get_kernel_message


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if _is_nbval_cell(item):
        record = _record_for(item)
        record.cell, record.parent_id, record.clear_pending = item.cell_num, None, False
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    if _is_nbval_cell(item) and outcome.get_result().failed:
        _record_for(item).failed = True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After a notebook's last cell, while its kernel still runs, store the notebook."""
    if not _is_nbval_cell(item) or (nextitem is not None and nextitem.parent is item.parent):
        return
    path = Path(str(item.parent.path))
    record = _records.pop(path, None)
    if record is not None:
        _seconds[path.name] = time.perf_counter() - record.started
    kernel = getattr(item.parent, "kernel", None)
    if record is None or record.failed or kernel is None or not kernel.is_alive():
        return
    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    for index, cell in enumerate(code_cells):
        cell.outputs = record.outputs.get(index, [])
        cell.execution_count = record.counts.get(index)
    state = _widget_state(kernel)
    drop_closed_widget_views(code_cells, state)
    if state:
        notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    _store(notebook, path, time.perf_counter() - record.started)


_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_closed_widget_views(cells: list, state: dict | None) -> None:
    """Remove outputs that show a widget the kernel has closed since (a progress bar made
    with ``leave=False``): the saved state no longer has its model, so the HTML book could
    only render an empty box, as a notebook does once the widget is closed."""
    models = set((state or {}).get("state", {}))
    for cell in cells:
        cell.outputs = [
            out
            for out in cell.outputs
            if _WIDGET_VIEW not in out.get("data", {})
            or out["data"][_WIDGET_VIEW].get("model_id") in models
        ]


def _widget_state(kernel) -> dict | None:
    """Ask the kernel for its ipywidgets state; None when it has no widgets."""
    msg_id = kernel.execute_cell_input(_WIDGET_STATE_CODE, allow_stdin=False)
    kernel.await_reply(msg_id, timeout=60)
    text = ""
    while True:
        msg = kernel.get_message("iopub", timeout=60)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            text += msg["content"]["text"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    state = json.loads(text) if text.strip() else None
    return state if state and state.get("state") else None


def _store(notebook: nbformat.NotebookNode, path: Path, seconds: float) -> None:
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    CACHE.parent.mkdir(exist_ok=True)
    bundle = CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds})
    get_cache(str(CACHE)).cache_notebook_bundle(bundle, check_validity=False, overwrite=True)


def pytest_terminal_summary(terminalreporter) -> None:
    """Per-notebook wall time under nbval (includes nbval's own overhead)."""
    if not _seconds:
        return
    terminalreporter.section("notebook execution times (nbval)")
    for name, seconds in _seconds.items():
        terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    terminalreporter.write_line(f"{sum(_seconds.values()):7.1f} s  total")

"""pytest plugin: keep what nbval computed, so the book build does not execute every notebook
again.

nbval runs each chapter cell by cell (the asserts in the notebooks are the checks) and
throws the outputs away; the HTML book needs exactly those outputs. Executing every
notebook twice would double CI time, so this plugin stores each notebook nbval ran in the
jupyter-cache that the book's ``execute_notebooks: cache`` mode reads
(``_build/.jupyter_cache`` under pytest's rootdir). The book build then executes only the
notebooks that are not in the cache. A notebook with a failing cell is not stored, so the
book build runs it itself and fails the same way.

Only public interfaces are used; no method of nbval is replaced:

- each nbval cell item's ``test_outputs`` (set once the cell has run, None when it was
  skipped) tells which cells ran; its content is not enough for the book, because nbval
  drops ``clear_output`` and ``update_display_data`` messages (the live training plot is
  one display that every epoch updates: ``test_outputs`` holds the first epoch's frame)
  and the execution count of cells without a result;
- so the plugin connects a second client to the notebook's kernel (jupyter_client's
  ``BlockingKernelClient`` with the connection info of nbval's ``RunningKernel.km``),
  subscribes to the kernel's IOPub broadcast like any second frontend, and rebuilds the
  outputs from those messages as nbclient would;
- after the last cell the same client asks the kernel for its ipywidgets state
  (``Widget.get_manager_state()``), which goes into the notebook metadata.

Registered by the root conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import json
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from tools.widget_outputs import (
    drop_closed_widget_views,
    live_explorers_as_figures,
    progress_bars_as_text,
)

CACHE_DIR = Path("_build") / ".jupyter_cache"  # under pytest's rootdir
_READ_TIMEOUT = 60.0  # seconds to wait for a message nbval has already seen

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
    displays: dict[str, list] = field(default_factory=dict)  # display_id -> its outputs
    cell: int | None = None
    parent_id: str | None = None
    clear_pending: bool = False
    failed: bool = False

    def begin(self, cell: int) -> None:
        """The next execution in the message stream is code cell number ``cell``."""
        self.cell, self.parent_id, self.clear_pending = cell, None, False

    def handle(self, msg: dict) -> bool:
        """Apply one IOPub message; True when it ends the current cell's execution."""
        kind, content = msg["msg_type"], msg["content"]
        parent = msg.get("parent_header", {}).get("msg_id")
        if kind == "execute_input" and self.cell is not None and self.parent_id is None:
            self.parent_id = parent
            return False
        if kind == "update_display_data":
            for out in self.displays.get(content.get("transient", {}).get("display_id"), []):
                out["data"], out["metadata"] = content["data"], content.get("metadata", {})
            return False
        if self.cell is None or self.parent_id is None or parent != self.parent_id:
            return False
        if kind == "status":
            return content.get("execution_state") == "idle"
        cell_outputs = self.outputs.setdefault(self.cell, [])
        if kind == "clear_output":
            if content.get("wait"):
                self.clear_pending = True
            else:
                cell_outputs.clear()
            return False
        if kind not in _OUTPUT_MESSAGES:
            return False
        if self.clear_pending:
            cell_outputs.clear()
            self.clear_pending = False
        self._append(cell_outputs, kind, content)
        return False

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


class _Listener:
    """A second client of a running kernel that receives its IOPub broadcast.

    A thread reads the messages as they come (a long cell can send thousands of widget
    updates, more than ZeroMQ buffers for a subscriber that does not read), into
    ``messages``, until ``close``.
    """

    def __init__(self, kernel_manager) -> None:
        from jupyter_client import BlockingKernelClient

        # A client of its own session: ``kernel_manager.client()`` would share nbval's
        # session, whose id is the ZeroMQ identity the kernel routes shell replies by, and
        # nbval's execute replies could then reach this client instead.
        self.client = BlockingKernelClient()
        self.client.load_connection_info(kernel_manager.get_connection_info())
        self.client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        # kernel_info round trips until IOPub delivers: no message of the first cell is lost
        self.client.wait_for_ready(timeout=_READ_TIMEOUT)
        self.messages: queue.Queue[dict] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="nbval-cache-iopub", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            except Exception:  # the kernel or its sockets went away: nothing more to read
                return
            self.messages.put(msg)

    def follow(self, record: _Record, cell: int) -> bool:
        """Feed ``record`` the messages of the cell nbval has just run; False if they did
        not all arrive in time."""
        record.begin(cell)
        while True:
            try:
                msg = self.messages.get(timeout=_READ_TIMEOUT)
            except queue.Empty:
                return False
            if record.handle(msg):
                return True

    def stop_reading(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def widget_state(self) -> dict | None:
        """Ask the kernel for its ipywidgets state; None when it has no widgets.
        Call after ``stop_reading``: this reads IOPub itself."""
        msg_id = self.client.execute(_WIDGET_STATE_CODE, store_history=False, allow_stdin=False)
        text = ""
        while True:
            msg = self.client.get_iopub_msg(timeout=_READ_TIMEOUT)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                raise RuntimeError(f"widget state request failed: {msg['content']['evalue']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        state = json.loads(text) if text.strip() else None
        return state if state and state.get("state") else None

    def close(self) -> None:
        self.stop_reading()
        self.client.stop_channels()


@dataclass
class _Notebook:
    record: _Record
    listener: _Listener | None
    ran: set[int] = field(default_factory=set)  # code cells that nbval ran and passed


_notebooks: dict[Path, _Notebook] = {}
_seconds: dict[str, float] = {}  # notebook name -> wall seconds under nbval, for the summary


def _is_nbval_cell(item: pytest.Item) -> bool:
    from nbval.plugin import IPyNbCell

    return isinstance(item, IPyNbCell)


def _notebook_path(item: pytest.Item) -> Path:
    return Path(str(item.parent.path))


def _start_listening(item: pytest.Item) -> _Listener | None:
    kernel_manager = getattr(getattr(item.parent, "kernel", None), "km", None)
    if kernel_manager is None:
        warnings.warn(
            f"{item.parent.path.name}: nbval's kernel has no KernelManager `km`; its outputs "
            "are not cached (the book build executes it)",
            stacklevel=1,
        )
        return None
    return _Listener(kernel_manager)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Subscribe to a notebook's kernel once nbval has started it, before its first cell."""
    outcome = yield
    path = _notebook_path(item) if _is_nbval_cell(item) else None
    if path is None or path in _notebooks or outcome.excinfo is not None:
        return
    record = _Record()
    _notebooks[path] = _Notebook(record, _start_listening(item))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    if not _is_nbval_cell(item):
        return
    notebook = _notebooks.get(_notebook_path(item))
    report = outcome.get_result()
    if notebook is None:
        return
    if report.failed:
        notebook.record.failed = True
    elif call.when == "call" and report.passed and item.test_outputs is not None:
        notebook.ran.add(item.cell_num)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Read the cell's messages; after a notebook's last cell, while its kernel still runs,
    store the notebook."""
    if not _is_nbval_cell(item):
        return
    path = _notebook_path(item)
    notebook = _notebooks.get(path)
    if notebook is None:
        return
    record, listener = notebook.record, notebook.listener
    if listener is not None and item.cell_num in notebook.ran and not record.failed:
        if not listener.follow(record, item.cell_num):
            warnings.warn(
                f"{path.name}: cell {item.cell_num}'s messages did not all arrive; the "
                "notebook is not cached (the book build executes it)",
                stacklevel=1,
            )
            record.failed = True
    if nextitem is not None and nextitem.parent is item.parent:
        return
    del _notebooks[path]
    _seconds[path.name] = time.perf_counter() - record.started
    if listener is None:
        return
    try:
        kernel = item.parent.kernel
        if record.failed or kernel is None or not kernel.is_alive():
            return
        listener.stop_reading()
        state = listener.widget_state()
    finally:
        listener.close()
    executed = nbformat.read(path, as_version=4)
    code_cells = [c for c in executed.cells if c.cell_type == "code"]
    count = 0
    for index, cell in enumerate(code_cells):
        cell.outputs = record.outputs.get(index, [])
        # nbval executes with store_history=False, so the kernel's count never moves: number
        # the cells that ran 1, 2, ... as a notebook run from the top would
        count += index in notebook.ran
        cell.execution_count = count if index in notebook.ran else None
        for out in cell.outputs:
            if out.output_type == "execute_result":
                out.execution_count = cell.execution_count
    drop_closed_widget_views(code_cells, state)
    live_explorers_as_figures(code_cells, state)
    state = progress_bars_as_text(code_cells, state)
    if state:
        executed.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    _store(executed, path, item.config.rootpath / CACHE_DIR, _seconds[path.name])


def _store(notebook: nbformat.NotebookNode, path: Path, cache: Path, seconds: float) -> None:
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache.parent.mkdir(parents=True, exist_ok=True)
    bundle = CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds})
    get_cache(str(cache)).cache_notebook_bundle(bundle, check_validity=False, overwrite=True)


def pytest_terminal_summary(terminalreporter) -> None:
    """Per-notebook wall time under nbval (includes nbval's own overhead)."""
    if not _seconds:
        return
    terminalreporter.section("notebook execution times (nbval)")
    for name, seconds in _seconds.items():
        terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    terminalreporter.write_line(f"{sum(_seconds.values()):7.1f} s  total")

"""The nbval cache plugin (tools/nbval_cache.py): its recorder rebuilds cell outputs from
kernel messages as nbclient would, and a real nbval run stores what the book needs."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from tools import nbval_cache, widget_outputs

ROOT = Path(__file__).resolve().parent.parent


def _msg(kind: str, parent: str = "run-1", **content) -> dict:
    return {"msg_type": kind, "parent_header": {"msg_id": parent}, "content": content}


def _png(text: str) -> dict:
    return {"image/png": text, "text/plain": "<Figure>"}


def _record_running_cell(cell: int = 0):
    record = nbval_cache._Record()
    record.begin(cell)
    record.handle(_msg("execute_input", code="...", execution_count=7))
    return record


def test_streams_of_one_name_merge():
    record = _record_running_cell()
    record.handle(_msg("stream", name="stdout", text="a\n"))
    record.handle(_msg("stream", name="stdout", text="b\n"))
    record.handle(_msg("stream", name="stderr", text="warn\n"))
    outs = record.outputs[0]
    assert [o["output_type"] for o in outs] == ["stream", "stream"]
    assert outs[0]["text"] == "a\nb\n" and outs[1]["name"] == "stderr"


def test_clear_output_with_wait_clears_when_the_next_output_arrives():
    record = _record_running_cell()
    record.handle(_msg("display_data", data=_png("frame1"), metadata={}))
    record.handle(_msg("clear_output", wait=True))
    assert len(record.outputs[0]) == 1, "wait=True keeps the old output until a new one"
    record.handle(_msg("display_data", data=_png("frame2"), metadata={}))
    assert [o["data"]["image/png"] for o in record.outputs[0]] == ["frame2"]
    record.handle(_msg("clear_output", wait=False))
    assert record.outputs[0] == []


def test_display_updates_replace_the_shown_output_even_from_a_later_cell():
    record = _record_running_cell(cell=0)
    shown = _msg("display_data", data=_png("epoch1"), metadata={})
    shown["content"]["transient"] = {"display_id": "plot"}
    record.handle(shown)
    record.begin(1)
    record.handle(_msg("execute_input", parent="run-2", execution_count=8))
    update = _msg("update_display_data", parent="run-2", data=_png("epoch5"), metadata={})
    update["content"]["transient"] = {"display_id": "plot"}
    record.handle(update)
    assert record.outputs[0][0]["data"]["image/png"] == "epoch5"
    assert record.outputs.get(1, []) == [], "an update adds no output to the updating cell"


def test_messages_of_other_executions_are_ignored():
    record = _record_running_cell()
    record.handle(_msg("stream", parent="someone-else", name="stdout", text="stray\n"))
    record.handle(_msg("execute_result", data={"text/plain": "42"}, metadata={}, execution_count=7))
    outs = record.outputs[0]
    assert len(outs) == 1 and outs[0]["output_type"] == "execute_result"
    assert outs[0]["execution_count"] == 7


def test_views_of_closed_widgets_are_dropped_and_live_ones_kept():
    view = "application/vnd.jupyter.widget-view+json"
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", {view: {"model_id": "closed"}, "text/plain": "HBox"}
        ),
        nbformat.v4.new_output("display_data", {view: {"model_id": "alive"}, "text/plain": "HBox"}),
        nbformat.v4.new_output("display_data", _png("a figure")),
        nbformat.v4.new_output("stream", name="stdout", text="done\n"),
    ]
    state = {"version_major": 2, "version_minor": 0, "state": {"alive": {}}}
    widget_outputs.drop_closed_widget_views([cell], state)
    kept = [out.get("data", {}).get(view, {}).get("model_id") for out in cell.outputs]
    assert kept == ["alive", None, None], "only the closed widget's view goes"
    widget_outputs.drop_closed_widget_views([cell], None)  # no widgets left at all
    assert len(cell.outputs) == 2 and view not in cell.outputs[0].get("data", {})


def test_the_idle_status_of_the_cell_ends_it_and_others_do_not():
    record = _record_running_cell()
    assert not record.handle(_msg("status", parent="someone-else", execution_state="idle"))
    assert not record.handle(_msg("status", execution_state="busy"))
    assert record.handle(_msg("status", execution_state="idle"))


def test_a_second_execute_input_does_not_steal_the_cell():
    record = _record_running_cell()
    record.handle(_msg("execute_input", parent="run-2", execution_count=8))
    record.handle(_msg("stream", parent="run-2", name="stdout", text="not mine\n"))
    assert record.parent_id == "run-1" and record.outputs.get(0, []) == []


_CELLS = [
    'import sys\nprint("a")\nprint("b")\nprint("warn", file=sys.stderr)',
    'from IPython.display import clear_output, display\nh = display("first", display_id=True)',
    'h.update("last")',
    "for i in range(3):\n    clear_output(wait=True)\n    print(i)",
    "import ipywidgets\nslider = ipywidgets.IntSlider(value=3)\nslider",
    "1 + 1",
    'from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc="steps"):\n    pass',
]
_PROGRESS_ONLY = [
    'from tqdm.auto import trange\nfor _ in trange(4, desc="epochs"):\n    pass',
    "import ipywidgets\nimport matplotlib.pyplot as plt\n"
    "from cnnbook.widgets.live import explorer\n"
    "def draw(k):\n    fig, ax = plt.subplots(figsize=(2, 2))\n    ax.set_title(f'k = {k}')\n"
    "    return fig\n"
    "explorer(draw, k=ipywidgets.IntSlider(value=2, min=1, max=5, description='kernel size'))",
]


def _notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# A test notebook"))
    nbformat.write(nb, path)
    return path


def test_nbval_run_stores_what_the_book_needs(tmp_path):
    """Runs nbval with the plugin on two small notebooks in a child pytest: fails when
    nbval stops exposing what the plugin reads (``test_outputs``, ``RunningKernel.km``)."""
    good = _notebook(tmp_path / "good.ipynb", _CELLS)
    bad = _notebook(tmp_path / "bad.ipynb", ['print("before")', 'raise ValueError("no")'])
    bars = _notebook(tmp_path / "bars.ipynb", _PROGRESS_ONLY)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    cmd = [sys.executable, "-m", "pytest", str(good), str(bad), str(bars)]
    cmd += ["-p", "tools.nbval_cache"]
    cmd += ["--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-p", "no:randomly"]
    cmd += ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-q"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr  # bad.ipynb fails, good.ipynb passes
    assert "1 failed, 10 passed" in run.stdout, run.stdout

    from jupyter_cache import get_cache

    cache = get_cache(str(tmp_path / nbval_cache.CACHE_DIR))
    stored = {Path(r.uri).name: r for r in cache.list_cache_records()}
    assert set(stored) == {"good.ipynb", "bars.ipynb"}, "a failing notebook is not cached"
    nb = cache.get_cache_bundle(stored["good.ipynb"].pk).nb
    cells = [c for c in nb.cells if c.cell_type == "code"]
    streams = [(o["name"], o["text"]) for o in cells[0].outputs]
    assert streams == [("stdout", "a\nb\n"), ("stderr", "warn\n")]
    assert [o["data"]["text/plain"] for o in cells[1].outputs] == ["'last'"], "display update"
    assert cells[2].outputs == []
    assert [o["text"] for o in cells[3].outputs] == ["2\n"], "clear_output(wait=True)"
    view = cells[4].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state[view["model_id"]]["state"]["value"] == 3
    assert cells[5].outputs[0]["data"]["text/plain"] == "2"
    assert cells[5].outputs[0]["execution_count"] == 6
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5, 6, 7], "as run from the top"
    # a finished progress bar is one line of text; the state keeps only the slider's models
    (line,) = [o["text"] for o in cells[6].outputs]
    assert line.startswith("steps: 100% 3/3 [") and line.endswith("]\n"), line
    assert {m["model_name"] for m in state.values()} <= {
        "IntSliderModel",
        "LayoutModel",
        "SliderStyleModel",
    }
    bars_nb = cache.get_cache_bundle(stored["bars.ipynb"].pk).nb
    bar_cell, explorer_cell = [c for c in bars_nb.cells if c.cell_type == "code"]
    (bar_line,) = [o["text"] for o in bar_cell.outputs]
    assert bar_line.startswith("epochs: 100% 4/4 ["), bar_line
    # a live explorer: its note with the controls it has, then the figure of their values
    note, figure = (o["data"] for o in explorer_cell.outputs)
    assert "Live explorer" in note["text/html"] and "Controls: kernel size." in note["text/html"]
    assert base64.b64decode(figure["image/png"]).startswith(b"\x89PNG")
    assert "widgets" not in bars_nb.metadata, "no widget view left: no widget manager"

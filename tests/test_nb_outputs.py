"""The recorder in ../conftest.py rebuilds cell outputs from kernel messages as nbclient would."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _recorder_module():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _msg(kind: str, parent: str = "run-1", **content) -> dict:
    return {"msg_type": kind, "parent_header": {"msg_id": parent}, "content": content}


def _png(text: str) -> dict:
    return {"image/png": text, "text/plain": "<Figure>"}


def _record_running_cell(cell: int = 0):
    record = _recorder_module()._Record()
    record.cell = cell
    record.handle(_msg("execute_input", code="...", execution_count=7))
    return record


def test_streams_merge_and_execution_count_is_kept():
    record = _record_running_cell()
    record.handle(_msg("stream", name="stdout", text="a\n"))
    record.handle(_msg("stream", name="stdout", text="b\n"))
    record.handle(_msg("stream", name="stderr", text="warn\n"))
    outs = record.outputs[0]
    assert [o["output_type"] for o in outs] == ["stream", "stream"]
    assert outs[0]["text"] == "a\nb\n" and outs[1]["name"] == "stderr"
    assert record.counts[0] == 7


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
    record.cell = 1
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
    import nbformat

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
    _recorder_module().drop_closed_widget_views([cell], state)
    kept = [out.get("data", {}).get(view, {}).get("model_id") for out in cell.outputs]
    assert kept == ["alive", None, None], "only the closed widget's view goes"
    _recorder_module().drop_closed_widget_views([cell], None)  # no widgets left at all
    assert len(cell.outputs) == 2 and view not in cell.outputs[0].get("data", {})

"""What the published book keeps of the ipywidgets a notebook displayed.

The HTML book can only replay a widget from the state saved with the notebook, and any
saved state makes the page load the widget manager (about 15 MB with its dependencies).
Two kinds of widget view need no replay:

- a view of a widget the kernel has since closed (a progress bar made with
  ``leave=False``): the saved state has no model for it, so the page could only show an
  empty box, as a notebook does once the widget is closed (``drop_closed_widget_views``);
- a finished tqdm progress bar (tqdm.auto draws an HBox of an HTML label, a progress bar
  and an HTML counter): the page shows it as the one line of text tqdm prints in a
  terminal, e.g. ``training: 100% 480/480 [00:41<00:00, 11.6it/s]``
  (``progress_bars_as_text``);
- a live explorer (``cnnbook.widgets.live``): with no kernel behind the page its controls
  could move but never redraw the figure, so the page shows what they would control and
  the figure for their initial values, as a note and an image (``live_explorers_as_figures``).

What is left of the state is only what the remaining views need; a page whose views are
all gone saves no state and loads no widget manager.
"""

from __future__ import annotations

import html
import re

import nbformat

__all__ = [
    "WIDGET_VIEW",
    "drop_closed_widget_views",
    "live_explorers_as_figures",
    "progress_bars_as_text",
]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_LINE = 78  # characters: a code block of the text column shows about 80
_PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
_REFERENCE = re.compile(r"IPY_MODEL_([0-9a-f]+)")


def drop_closed_widget_views(cells: list, state: dict | None) -> None:
    """Remove outputs that show a widget the kernel has closed (no model in ``state``)."""
    models = set((state or {}).get("state", {}))
    for cell in cells:
        cell.outputs = [
            out
            for out in cell.outputs
            if WIDGET_VIEW not in out.get("data", {})
            or out["data"][WIDGET_VIEW].get("model_id") in models
        ]


def _progress_line(model_id: str, models: dict) -> str | None:
    """tqdm's text line for a progress-bar HBox, or None when the model is not one."""
    box = models.get(model_id, {})
    if box.get("model_name") != "HBoxModel":
        return None
    children = [_REFERENCE.fullmatch(c) for c in box.get("state", {}).get("children", [])]
    if len(children) != 3 or not all(children):
        return None
    label, bar, counter = (models.get(m.group(1), {}) for m in children)
    kinds = (label.get("model_name"), bar.get("model_name"), counter.get("model_name"))
    if kinds[0] != "HTMLModel" or kinds[1] not in _PROGRESS_MODELS or kinds[2] != "HTMLModel":
        return None
    text = " ".join(html.unescape(str(m["state"].get("value", ""))) for m in (label, counter))
    text = re.sub(r"\s+", " ", text.replace("\u2007", " ")).strip()
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def _explorer_note(model_id: str, models: dict) -> str | None:
    """The HTML note of a live explorer's VBox (header text, then its controls), or None."""
    box = models.get(model_id, {}).get("state", {})
    if "cnnbook-live" not in box.get("_dom_classes", []):
        return None
    children = [
        models.get(m, {}).get("state", {})
        for m in _REFERENCE.findall(" ".join(box.get("children", [])))
    ]
    header, controls = (children + [{}, {}])[:2]  # the explorer's note, then its controls
    names = [
        html.escape(str(models.get(m, {}).get("state", {}).get("description", "")).strip())
        for m in _REFERENCE.findall(" ".join(controls.get("children", [])))
    ]
    shown = ", ".join(n for n in names if n)
    listed = f" <i>Controls: {shown}.</i>" if shown else ""
    return f'<p class="cnnbook-live-note">{header.get("value", "")}{listed}</p>'


def live_explorers_as_figures(cells: list, state: dict | None) -> None:
    """Replace each live explorer's view by its note (HTML) and its current figure (PNG).

    ``LiveExplorer``'s display bundle carries the PNG next to the widget view; the widget
    state gives the note and the controls' descriptions. Other widget views stay.
    """
    models = (state or {}).get("state", {})
    for cell in cells:
        outputs = []
        for out in cell.outputs:
            data = out.get("data", {})
            model_id = data.get(WIDGET_VIEW, {}).get("model_id")
            note = _explorer_note(model_id, models) if model_id else None
            if note is None or "image/png" not in data:
                outputs.append(out)
                continue
            box = f'<div class="cnnbook-live cnnbook-live-static">{note}</div>'
            outputs.append(nbformat.v4.new_output("display_data", {"text/html": box}))
            figure = {"image/png": data["image/png"], "text/plain": data.get("text/plain", "")}
            outputs.append(nbformat.v4.new_output("display_data", figure))
        cell.outputs = outputs


def _reachable(roots: set[str], models: dict) -> set[str]:
    """The models ``roots`` refer to, directly or through children, layouts and styles."""
    seen, stack = set(), list(roots)
    while stack:
        model_id = stack.pop()
        if model_id in seen or model_id not in models:
            continue
        seen.add(model_id)
        stack.extend(_REFERENCE.findall(str(models[model_id].get("state", {}))))
    return seen


def progress_bars_as_text(cells: list, state: dict | None) -> dict | None:
    """Replace each progress-bar view in ``cells`` by a one-line stdout stream.

    Returns the state pruned to the models that the remaining widget views need, or None
    when no widget view remains (the page then loads no widget manager).
    """
    models = (state or {}).get("state", {})
    roots: set[str] = set()
    for cell in cells:
        outputs = []
        for out in cell.outputs:
            model_id = out.get("data", {}).get(WIDGET_VIEW, {}).get("model_id")
            line = _progress_line(model_id, models) if model_id else None
            if line is not None:
                outputs.append(nbformat.v4.new_output("stream", name="stdout", text=line + "\n"))
                continue
            if model_id:
                roots.add(model_id)
            outputs.append(out)
        cell.outputs = _merge_streams(outputs)
    if not roots:
        return None
    keep = _reachable(roots, models)
    return {**state, "state": {k: v for k, v in models.items() if k in keep}}


def _merge_streams(outputs: list) -> list:
    """Adjacent stream outputs of one name become one, as Jupyter shows them."""
    merged: list = []
    for out in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and out.get("output_type") == "stream"
            and previous.get("output_type") == "stream"
            and previous.get("name") == out.get("name")
        ):
            previous["text"] = previous["text"] + out["text"]
        else:
            merged.append(out)
    return merged

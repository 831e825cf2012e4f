"""Each chapter page says which profile produced it and what the full profile runs; the
numbers in that sentence are the chapter's own ``by_profile`` values."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from cnnbook import profile_notes
from cnnbook.profile_notes import FULL_RUNS, page_note, show_page_note

CHAPTERS = sorted(Path(__file__).resolve().parent.parent.glob("chapters/[0-9][0-9]_*.ipynb"))


def _code(path: Path) -> str:
    cells = nbformat.read(path, as_version=4).cells
    return "\n".join(c.source for c in cells if c.cell_type == "code")


def _profile_pairs(code: str) -> list[tuple[object, object]]:
    """(quick, full) of every by_profile call whose two values are literals."""
    pairs = []
    code = re.sub(r"^(\s*)([%!])", r"\1#", code, flags=re.M)  # IPython magics
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "by_profile":
            values = {k.arg: k.value for k in node.keywords}
            try:
                pairs.append((ast.literal_eval(values["quick"]), ast.literal_eval(values["full"])))
            except ValueError:  # a name or an expression: not a number the note can state
                continue
    return pairs


def _numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", text.replace(",", ""))}


def test_every_chapter_prints_its_own_note():
    assert len(CHAPTERS) == len(FULL_RUNS) == 18
    for path in CHAPTERS:
        number = int(path.name[:2])
        assert f"show_page_note({number})" in _code(path), f"{path.name} shows no page note"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name[:2])
def test_the_note_states_the_chapters_profile_numbers(path):
    number, pairs = int(path.name[:2]), _profile_pairs(_code(path))
    stated = _numbers(FULL_RUNS[number])
    if not pairs:
        assert FULL_RUNS[number] == profile_notes._SAME, "no by_profile call: same cells"
    for quick, full in pairs:
        for value in (quick, full):
            if isinstance(value, tuple):  # a sweep: the note gives its range
                value = (min(value), max(value))
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, int):
                    assert v in stated, f"chapter {number}: {v} missing from {FULL_RUNS[number]!r}"


def test_page_note_names_the_profile_and_the_missing_gpu_result(monkeypatch):
    monkeypatch.setenv("CNNBOOK_PROFILE", "quick")
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    note = page_note(10)
    assert note.startswith("These outputs come from the quick profile (CPU, offline)")
    assert "not yet measured on a GPU" in note and "94%" in note
    assert "nothing in this chapter depends" in page_note(3)
    monkeypatch.setenv("CNNBOOK_PROFILE", "full")
    assert page_note(7).startswith("These outputs come from the full profile")


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (19, ValueError), ("7", TypeError)])
def test_page_note_rejects_a_chapter_that_does_not_exist(value, error):
    with pytest.raises(error, match="chapter"):
        page_note(value)


def test_show_page_note_gives_notebooks_a_paragraph_and_terminals_the_sentence(monkeypatch, capsys):
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("CNNBOOK_PROFILE", "quick")
    show_page_note(10)  # outside IPython: printed
    assert capsys.readouterr().out == page_note(10) + "\n"
    shell = InteractiveShell.instance()
    try:
        shell.display_pub = CapturingDisplayPublisher()
        show_page_note(10)
        (shown,) = shell.display_pub.outputs
    finally:
        InteractiveShell.clear_instance()
    assert shown["data"]["text/plain"] == page_note(10)
    assert shown["data"]["text/markdown"] == f"**About these outputs.** {page_note(10)}"
    with pytest.raises(ValueError, match="chapter"):
        show_page_note(19)

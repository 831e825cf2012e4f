"""Appendix A: 80+ tagged questions, answers collapsed, each linking to a section that exists."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import nbformat
from myst_parser.mdit_to_docutils.base import default_slugify

ROOT = Path(__file__).resolve().parent.parent
BANK = ROOT / "chapters" / "A_question_bank.md"
KINDS = {"concept", "math", "coding", "system design", "debugging"}
LEVELS = {"easy", "medium", "hard"}
# Questions link only to chapters in the book; a test resolves every link.
MIN_QUESTIONS = 80
BLOCK = re.compile(r"```\{admonition\} (?P<title>.+?)\n(?P<body>.*?)\n```", re.S)
TITLE = re.compile(r"^Q(?P<n>\d+) · (?P<kind>[a-z ]+) · (?P<level>[a-z]+): (?P<question>.+[?.])$")
LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?:#(?P<anchor>[^)\s]+))?\)")


def _questions() -> list[tuple[re.Match, str]]:
    blocks = BLOCK.findall(BANK.read_text())
    return [(TITLE.match(title), body) for title, body in blocks]


def _anchors(target: Path) -> set[str]:
    if target.suffix == ".md":
        headings = re.findall(r"^#{1,3} (.+)$", target.read_text(), re.M)
    else:
        nb = nbformat.read(target, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        headings = re.findall(r"^#{1,3} (.+)$", text, re.M)
    return {default_slugify(h.replace("`", "").strip()) for h in headings}


def test_there_are_enough_questions_numbered_in_order():
    questions = _questions()
    assert len(questions) >= MIN_QUESTIONS, f"only {len(questions)} questions"
    bad = [body[:60] for match, body in questions if match is None]
    assert not bad, f"titles must read 'Qn · kind · level: question?': {bad}"
    numbers = [int(match["n"]) for match, _ in questions]
    assert numbers == list(range(1, len(numbers) + 1)), "questions should be numbered 1, 2, 3, ..."


def test_every_question_is_tagged_and_collapsed():
    questions = _questions()
    kinds = Counter(match["kind"] for match, _ in questions)
    levels = Counter(match["level"] for match, _ in questions)
    assert set(kinds) == KINDS, f"kinds used: {dict(kinds)}; expected all of {sorted(KINDS)}"
    assert set(levels) == LEVELS, f"levels used: {dict(levels)}"
    for match, body in questions:
        assert body.startswith(":class: dropdown"), f"Q{match['n']}: the answer must be collapsed"


def test_every_answer_links_to_a_section_that_exists():
    problems = []
    for match, body in _questions():
        n = match["n"] if match else "?"
        links = LINK.findall(body)
        if "**Shown in:**" not in body or not links:
            problems.append(f"Q{n}: say where the answer is shown, with a link")
        for target, anchor in links:
            path = BANK.parent / target
            if not path.exists():
                problems.append(f"Q{n}: links to {target}, which does not exist")
            elif anchor and anchor not in _anchors(path):
                problems.append(f"Q{n}: {target} has no section #{anchor}")
    assert not problems, "\n".join(problems)

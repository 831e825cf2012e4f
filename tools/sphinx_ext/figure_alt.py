"""Alt text for notebook figures, taken from the prose that introduces them.

A figure produced by a code cell reaches the HTML as an ``<img>`` whose alt text would
be its file name. The book's convention is that the markdown cell before every figure
says in words what the figure shows; this extension copies the last paragraph before
each output image (its first sentences, at most ``MAX_ALT`` characters) into the
image's alt text. A cell can still set its own with ``mystnb: image: alt: ...``
metadata, which is left alone.
"""

from __future__ import annotations

import re

from docutils import nodes

MAX_ALT = 300


def _in_output(node: nodes.Node) -> bool:
    while node is not None:
        if isinstance(node, nodes.container) and "cell_output" in node.get("classes", []):
            return True
        node = node.parent
    return False


def _summary(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= MAX_ALT:
        return text
    sentences = re.split(r"(?<=[.!?])\s", text)
    summary = ""
    for sentence in sentences:
        if len(summary) + len(sentence) + 1 > MAX_ALT:
            break
        summary = f"{summary} {sentence}".strip()
    return summary or text[: MAX_ALT - 1] + "…"


def _add_alt_text(app, doctree: nodes.document) -> None:
    last_prose, last_title = "", ""
    for node in doctree.findall():
        if isinstance(node, nodes.title):
            last_title = node.astext()
        elif isinstance(node, nodes.paragraph) and not _in_output(node):
            last_prose = node.astext()
        elif isinstance(node, nodes.image) and not node.get("alt") and _in_output(node):
            node["alt"] = _summary(last_prose or f"Figure: {last_title}")


def setup(app):
    app.connect("doctree-read", _add_alt_text)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

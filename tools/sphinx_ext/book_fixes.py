"""Small Sphinx fixes for the published book, loaded through ``_config.yml``.

- sphinx-thebe registers its inline configuration script once per build pass, and a
  page that declares ``const THEBE_JS_URL`` twice throws in the browser. Identical
  scripts are dropped from each page's context.
- pydata-sphinx-theme reads the colour mode from a template variable that Jupyter Book
  leaves empty, which logs "invalid theme mode" on a first visit; it defaults to "auto".
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = (str(script), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _default_mode(app, pagename, templatename, context, doctree) -> None:
    context.setdefault("default_mode", "auto")
    if not context["default_mode"]:
        context["default_mode"] = "auto"


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _default_mode)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

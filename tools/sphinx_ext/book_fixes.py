"""Small Sphinx fixes for the published book, loaded through ``_config.yml``.

- sphinx-thebe and sphinx-togglebutton register inline scripts with
  ``app.add_js_file(None, body=...)`` after the HTML builder has already copied its
  registry, where the same script sits with filename ``''``. Sphinx then sees two
  different assets and writes both, and a page that declares ``const THEBE_JS_URL``
  twice throws in the browser. Identical scripts are dropped from each page. Upstream:
  no issue found in the sphinx-thebe or sphinx-togglebutton trackers (searched 2026-12);
  drop this once a page of the built book declares THEBE_JS_URL once without it.
- pydata-sphinx-theme reads the colour mode from a template variable that Jupyter Book
  leaves empty, which logs "invalid theme mode" on a first visit; it defaults to "auto".
  Upstream: pydata/pydata-sphinx-theme#1635 (closed as fixed by #1683, yet the message
  is still logged with the theme versions Jupyter Book 1 installs).
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {})
    filename = getattr(script, "filename", script) or ""
    return str(filename), getattr(script, "priority", 500), tuple(sorted(attributes.items()))


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: the list is the builder's own, and handlers that run after this one
    # (myst-nb adds the widget scripts) append to it.
    scripts[:] = unique


def _default_mode(app, pagename, templatename, context, doctree) -> None:
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app):
    # html-page-context is emitted with emit_firstresult: a handler that returns a
    # template name stops the rest, so these run early (before the default 500).
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    app.connect("html-page-context", _default_mode, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

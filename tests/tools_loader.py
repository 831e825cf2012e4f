"""``load_tool(path)``: a script of ``tools/`` as a module, for the tests that check it.

tools/ is a folder of scripts run as ``python tools/x.py``, not a package, so the tests
load each one from its file. The module is registered under its file name first, because
dataclasses look their module up in ``sys.modules``; a script loaded twice is loaded once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load_tool(relative: str) -> ModuleType:
    """The module of ``tools/<relative>`` (e.g. ``"check_version.py"``)."""
    path = TOOLS / relative
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "") == path:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

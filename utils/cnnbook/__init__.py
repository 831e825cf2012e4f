"""cnnbook: the helper library of the interactive CNN textbook.

Import what you need from its topic modules, e.g.
``from cnnbook.numpy_ops import conv2d`` or ``from cnnbook.runtime import seed_everything``.
"""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

try:
    # The version is written once, in pyproject.toml; an install records it in the metadata.
    __version__ = _version("cnnbook")
except _NotInstalled:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

"""cnnbook: the helper library of the interactive CNN textbook.

Import what you need from its topic modules, e.g.
``from cnnbook.numpy_ops import conv2d`` or ``from cnnbook.runtime import seed_everything``.
"""

__version__ = "0.1.0"

"""Interactive figures of the book.

Kernel-free widgets (this package's ``.py``/``.js``/``.css`` triples) compute every number
in Python and render one self-contained HTML string, so they stay interactive in the
static HTML book as well as in Jupyter, Colab and VS Code.

Import them from their modules, e.g.
``from cnnbook.widgets.sliding_kernel import SlidingKernel``, or from here.
"""

from cnnbook.widgets.conv_arithmetic import ConvArithmetic
from cnnbook.widgets.receptive_field import ReceptiveField
from cnnbook.widgets.sliding_kernel import SlidingKernel

__all__ = ["ConvArithmetic", "ReceptiveField", "SlidingKernel"]

"""Block diagrams of chapter 9, each drawn from an instance of the library's class.

Every function runs the block once (``architecture.trace_layers``) and draws its layers
as boxes, top to bottom, with the shape each one outputs beside the arrow below it:

- ``residual_block_diagram``: ResNet's ``BasicBlock`` and ``Bottleneck``, ResNet-9's
  ``ResidualBlock`` and MobileNetV2's ``InvertedResidual``, with the skip path (the
  identity, or the projection shortcut's own column) joining at ``+``;
- ``inception_diagram``: the four branches of an ``InceptionModule`` and their
  concatenation;
- ``se_diagram``: a ``SqueezeExcitation`` block, squeeze, excitation and the channel-wise
  product with its input;
- ``dense_block_diagram``: a ``DenseBlock`` as a growing stack of channels, every layer
  reading all of it and appending ``k`` new ones.

Patches carry a gid that tests count: ``"layer"`` (a layer box), ``"skip"`` (a skip
path's last arrow), ``"merge"``; texts with gid ``"shape"`` are the traced shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cnnbook.diagrams.architecture import (
    Call,
    fold_label,
    layer_label,
    shape_text,
    trace_layers,
)
from cnnbook.diagrams.style import FONT_SIZE, MAX_WIDTH_IN, arrow, canvas, fill, layer_box

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes

__all__ = ["dense_block_diagram", "inception_diagram", "residual_block_diagram", "se_diagram"]

SMALL = FONT_SIZE - 1
ROW = 0.8  # vertical distance between two boxes of a column
BOX_H = 0.44


@dataclass
class _Box:
    label: str
    shape: tuple[int, ...]
    folds: list[str] = field(default_factory=list)
    role: str = "conv"

    @property
    def text(self) -> str:
        return self.label + ("\n" + ", ".join(self.folds) if self.folds else "")


_ROLES = {"pool": "pool", "fc": "linear", "global": "pool", "flatten": "pool"}


def _boxes(calls: list[Call]) -> list[_Box]:
    """Leaf calls -> boxes: a shape-changing or weighted layer opens a box, BN/act fold in."""
    boxes: list[_Box] = []
    for call in calls:
        if not call.is_leaf or call.out_shape is None:
            continue
        label, folded = layer_label(call.module), fold_label(call.module)
        if label is not None:
            role = next((r for key, r in _ROLES.items() if key in label), "conv")
            boxes.append(_Box(label, call.out_shape, role=role))
        elif folded is not None and boxes:
            boxes[-1].folds.append(folded)
    return boxes


def _under(calls: list[Call], prefix: str) -> list[Call]:
    return [c for c in calls if c.name.startswith(prefix + ".")]


def _shape_label(ax: Axes, x: float, y: float, shape: tuple[int, ...], **kwargs) -> None:
    text = ax.text(x, y, shape_text(shape), fontsize=SMALL, va="center", **kwargs)
    text.set_gid("shape")


def _draw(
    columns: list[list[_Box]],
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    *,
    merge: str | None,
    identity: bool,
    after: list[str] = (),
    skip_column: int | None = None,
) -> Figure:
    """Columns of boxes under one input, joined at ``merge`` ("+", "×", "concat")."""
    n = len(columns)
    tallest = max(len(col) for col in columns)
    height = (tallest + 2 + (1 if merge else 0) + len(after)) * ROW + 0.55
    fig, ax = canvas(MAX_WIDTH_IN, height)
    box_w = min(2.1, MAX_WIDTH_IN / n - 0.25)
    centres = [(j + 0.5) * MAX_WIDTH_IN / n for j in range(n)] if n > 1 else [2.6]
    mid = sum(centres) / n if n > 1 or not identity else centres[0]
    y = height - 0.2 - BOX_H / 2

    def io_box(cy: float, text: str, shape: tuple[int, ...]) -> None:
        layer_box(ax, (mid - 0.6, cy - 0.18), 1.2, 0.36, text, role="input", fontsize=SMALL)
        _shape_label(ax, mid + 0.7, cy, shape, ha="left")

    io_box(y, "input", in_shape)
    y_merge = y - (tallest + 1) * ROW - 0.3
    for j, (cx, col) in enumerate(zip(centres, columns, strict=True)):
        prev = (mid, y - 0.18)
        for i, box in enumerate(col):
            by = y - (i + 1) * ROW
            arrow(ax, prev, (cx, by + BOX_H / 2))
            patch = layer_box(ax, (cx - box_w / 2, by - BOX_H / 2), box_w, BOX_H, box.text,
                              role=box.role, fontsize=SMALL)  # fmt: skip
            patch.set_gid("layer")
            prev = (cx, by - BOX_H / 2)
            _shape_label(ax, cx + 0.07, by - ROW / 2, box.shape, ha="left")
        if merge == "concat":  # straight down, then into the concat box at its own place
            target = (mid + (j - (n - 1) / 2) * 1.4 / n, y_merge + 0.2)
        elif merge:
            target = (mid + 0.2 * ((cx > mid) - (cx < mid)), y_merge + 0.2 * (cx == mid))
        else:
            target = (mid, y_merge + 0.18)
        bend = y_merge + 0.35
        if prev[1] > bend + 0.05 and cx != target[0]:
            ax.plot([cx, cx], [prev[1], bend], color="#333333", lw=1.3)
            prev = (cx, bend)
        last = arrow(ax, prev, target)
        if j == skip_column:
            last.set_gid("skip")
    if identity:  # the skip path: out of the input box, down the right, into the merge
        x_skip = centres[-1] + box_w / 2 + 0.45
        fork = y - 0.18 - 0.12
        ax.plot([mid, x_skip, x_skip], [fork, fork, y_merge], color="#333333", lw=1.3)
        ax.plot([mid], [fork], "o", color="#333333", ms=3)
        skip = arrow(ax, (x_skip, y_merge), (mid + 0.2, y_merge))
        skip.set_gid("skip")
        ax.text(x_skip + 0.07, (y + y_merge) / 2, "identity", fontsize=SMALL, va="center")
    cy = y_merge
    if merge:
        w = 1.6 if merge == "concat" else 0.4
        node = layer_box(ax, (mid - w / 2, cy - 0.2), w, 0.4, merge, role="merge")
        node.set_gid("merge")
    for text in after:
        arrow(ax, (mid, cy - 0.2), (mid, cy - ROW + 0.2))
        cy -= ROW
        layer_box(ax, (mid - 0.5, cy - 0.2), 1.0, 0.4, text, role="act", fontsize=SMALL)
    arrow(ax, (mid, cy - 0.2), (mid, cy - ROW + 0.18))
    io_box(cy - ROW, "output", out_shape)
    return fig


def _trace(block: torch.nn.Module, classes: tuple[type, ...], input_shape) -> list[Call]:
    if not isinstance(block, classes):
        names = " or ".join(c.__name__ for c in classes)
        raise TypeError(f"block must be a {names}, got {type(block).__name__}")
    return trace_layers(block, input_shape)


def residual_block_diagram(block: torch.nn.Module, input_shape: tuple[int, int, int]) -> Figure:
    """A residual block: its layers in one column, the skip path beside it, then ``+``.

    block: ``BasicBlock``, ``Bottleneck`` (ResNet), ``ResidualBlock`` (ResNet-9) or
    ``InvertedResidual`` (MobileNetV2). A projection shortcut gets its own column;
    a block without a skip (``residual=False``, or a strided inverted residual) is
    drawn without one. input_shape: (C, H, W).
    """
    from cnnbook.models.cifar_resnet import ResidualBlock
    from cnnbook.models.mobilenet import InvertedResidual
    from cnnbook.models.resnet import BasicBlock, Bottleneck

    classes = (BasicBlock, Bottleneck, ResidualBlock, InvertedResidual)
    calls = _trace(block, classes, input_shape)
    inner = [c for c in calls[1:] if not c.name.startswith("shortcut")]
    after: list[str] = []
    if isinstance(block, (BasicBlock, Bottleneck)):  # forward ends with relu(F(x) + skip)
        after = [fold_label(inner[-1].module)]
        inner = inner[:-1]
    columns = [_boxes(inner)]
    shortcut = _under(calls, "shortcut")
    if shortcut:
        columns.append(_boxes(shortcut))
    residual = getattr(block, "use_shortcut", getattr(block, "residual", True))
    return _draw(
        columns,
        calls[0].in_shapes[0],
        calls[0].out_shape,
        merge="+" if residual else None,
        identity=residual and not shortcut,
        after=after,
        skip_column=1 if shortcut else None,
    )


def inception_diagram(module: torch.nn.Module, input_shape: tuple[int, int, int]) -> Figure:
    """An ``InceptionModule``: its four branches side by side, joined by concatenation."""
    from cnnbook.models.inception import InceptionModule

    calls = _trace(module, (InceptionModule,), input_shape)
    names = [name for name, _ in module.named_children()]
    columns = [_boxes(_under(calls, name)) for name in names]
    return _draw(columns, calls[0].in_shapes[0], calls[0].out_shape, merge="concat", identity=False)


def se_diagram(block: torch.nn.Module, input_shape: tuple[int, int, int]) -> Figure:
    """A ``SqueezeExcitation`` block: squeeze, excitation (two fc), then input × gates.

    The squeeze (a mean over H and W) and the sigmoid are plain functions in its
    forward, so they appear as a box and a folded label beside the traced fc layers.
    """
    from cnnbook.models.se import SqueezeExcitation

    calls = _trace(block, (SqueezeExcitation,), input_shape)
    boxes = _boxes(calls[1:])
    squeeze_shape = next(c.in_shapes[0] for c in calls if c.name == "fc1")
    boxes.insert(0, _Box("global avg pool", squeeze_shape, ["squeeze"], role="pool"))
    boxes[-1].folds.append("sigmoid")
    return _draw([boxes], calls[0].in_shapes[0], calls[0].out_shape, merge="×", identity=True)


def dense_block_diagram(block: torch.nn.Module, input_shape: tuple[int, int, int]) -> Figure:
    """A ``DenseBlock`` as a growing stack of channels.

    Row 0 is the block's input; layer ``l`` (left) reads the whole stack above it and
    appends its ``k`` new channels (the next row). Bar lengths are proportional to
    channels; the shapes beside them are the layers' traced inputs and the block output.
    """
    from cnnbook.models.densenet import DenseBlock

    calls = _trace(block, (DenseBlock,), input_shape)
    layers = [c for c in calls if c.name.startswith("layers.") and c.name.count(".") == 1]
    stacks = [c.in_shapes[0] for c in layers] + [calls[0].out_shape]
    height = len(stacks) * ROW + 0.1
    fig, ax = canvas(MAX_WIDTH_IN, height)
    x_bar, bar_w = 3.3, 2.4
    scale = bar_w / stacks[-1][0]
    widths = [stacks[0][0]] + [c.out_shape[0] for c in layers]
    for r, stack in enumerate(stacks):
        y = height - 0.25 - r * ROW
        x = x_bar
        for s, C in enumerate(widths[: r + 1]):
            colour = fill("input") if s == 0 else fill("highlight" if s == r else "tensor")
            ax.add_patch(
                Rectangle(
                    (x, y - 0.15), C * scale, 0.3, facecolor=colour, edgecolor="#555555", lw=1
                )
            )
            x += C * scale
        _shape_label(ax, x_bar + bar_w + 0.1, y, stack, ha="left")
        if r == len(layers):
            break
        layer = layers[r]
        convs = [b.label for b in _boxes(_under(calls, layer.name))]
        by = y - ROW / 2
        patch = layer_box(ax, (0.05, by - 0.27), 2.45, 0.54,
                          f"layer {r + 1}\n" + " → ".join(convs), fontsize=SMALL - 1)  # fmt: skip
        patch.set_gid("layer")
        arrow(ax, (x_bar, y - 0.1), (2.5, by + 0.12))
        arrow(ax, (2.5, by - 0.12), (x + 0.05, y - ROW + 0.15))
        text = ax.text(2.58, by - 0.2, shape_text(layer.out_shape), fontsize=SMALL - 1, va="top")
        text.set_gid("shape")
    return fig

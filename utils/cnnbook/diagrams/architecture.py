"""Architecture diagrams drawn from the real ``nn.Module``: one forward pass, then boxes.

``trace_layers(model, input_shape)`` runs one forward pass on zeros with hooks on every
submodule and returns each call with its input and output shapes (batch dimension
dropped). The diagrams label their shapes from that record, so a picture cannot
disagree with the code it shows:

- ``chain_diagram``: a network as a chain of tensor volumes (chapter 7: LeNet-5;
  chapter 10: ResNet-9, its residual blocks drawn with their skip paths);
- ``unet_diagram``: a U-Net as the U, encoder down the left, decoder up the right,
  skip connections across (chapter 16).

The block diagrams of chapter 9 live in ``cnnbook.diagrams.blocks`` and use the same
tracing. A forward pass that fails raises ``ValueError`` naming the layer that failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from cnnbook._checks import check_chw, check_int
from cnnbook.diagrams.style import FONT_SIZE, MAX_WIDTH_IN, arrow, canvas, cuboid, layer_box

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes

__all__ = [
    "Call",
    "chain_diagram",
    "fold_label",
    "layer_label",
    "shape_text",
    "trace_layers",
    "unet_diagram",
]

SMALL = FONT_SIZE - 1  # labels beside shapes, as style.cuboid's


@dataclass(frozen=True)
class Call:
    """One call of a submodule in a forward pass; shapes without the batch dimension.

    name: the qualified name (``""`` for the model itself); in_shapes: the shapes of its
    tensor arguments; out_shape: the shape of its output (None if not one tensor).
    """

    name: str
    module: torch.nn.Module
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...] | None

    @property
    def is_leaf(self) -> bool:
        return not any(True for _ in self.module.children())


def _check_model(model: object, name: str = "model") -> torch.nn.Module:
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def trace_layers(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> list[Call]:
    """Every submodule call of ``model`` on a zero batch ``(1, *input_shape)``, in call order.

    A module called twice (a shared ReLU) appears twice. The model runs once in eval mode
    without gradients, on its parameters' device; its training flags are restored.
    Raises ValueError naming the layer whose forward pass failed.
    """
    import torch

    model = _check_model(model)
    shape = check_chw("input_shape", input_shape)
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[dict] = []
    open_calls: list[dict] = []

    def dims(t: object) -> tuple[int, ...] | None:
        return tuple(t.shape[1:]) if isinstance(t, torch.Tensor) else None

    def before(module, args):
        entry = {"name": names.get(id(module), "?"), "module": module, "out": None}
        entry["in"] = tuple(d for d in map(dims, args) if d is not None)
        calls.append(entry)
        open_calls.append(entry)

    def after(module, args, out):
        open_calls.pop()["out"] = dims(out)

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        _run(model, shape, calls, open_calls)
    except Exception as err:  # any failure: say where it happened
        where = open_calls[-1] if open_calls else None
        layer = f"layer {where['name']!r} ({type(where['module']).__name__})" if where else "?"
        raise ValueError(
            f"the forward pass of {type(model).__name__} on input_shape {shape} failed at "
            f"{layer}: {err}"
        ) from err
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode
    return [Call(c["name"], c["module"], c["in"], c["out"]) for c in calls]


def _run(model: torch.nn.Module, shape: tuple[int, ...], calls: list, open_calls: list) -> None:
    """One forward pass on zeros: on the "meta" device if it can (shapes only, no
    arithmetic, so instant at any size), else for real on the parameters' device."""
    import torch

    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    first = next(iter(tensors.values()), torch.zeros(()))
    with torch.no_grad():
        try:
            meta = {name: t.to("meta") for name, t in tensors.items()}
            x = torch.zeros((1, *shape), dtype=first.dtype, device="meta")
            torch.func.functional_call(model, meta, (x,))
            return
        except (NotImplementedError, RuntimeError):
            calls.clear()
            open_calls.clear()
        model(torch.zeros((1, *shape), dtype=first.dtype, device=first.device))


def shape_text(shape: tuple[int, ...]) -> str:
    """(6, 28, 28) -> ``"6×28×28"``; (400,) -> ``"400"``."""
    return "×".join(str(int(d)) for d in shape)


def _pair_text(value: object) -> str:
    a, b = value if isinstance(value, tuple) else (value, value)
    return f"{a}×{b}"


def layer_label(module: torch.nn.Module) -> str | None:
    """A short label for a layer that changes a tensor's shape or holds its weights.

    ``Conv2d(1, 6, 5)`` -> ``"conv 5×5, 6"``; None for BatchNorm, activations and
    containers (``fold_label`` names the first two).
    """
    from torch import nn

    if isinstance(module, nn.ConvTranspose2d):
        return f"up-conv {_pair_text(module.kernel_size)}, {module.out_channels}"
    if isinstance(module, nn.Conv2d):
        k = _pair_text(module.kernel_size)
        if module.groups == module.in_channels == module.out_channels and module.groups > 1:
            text = f"dw conv {k}, {module.out_channels}"
        else:
            text = f"conv {k}, {module.out_channels}"
        stride = module.stride[0]
        return text + (f", /{stride}" if stride > 1 else "")
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        kind = "avg" if isinstance(module, nn.AdaptiveAvgPool2d) else "max"
        size = module.output_size
        return f"global {kind} pool" if size in (1, (1, 1)) else f"{kind} pool to {size}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
        return f"{kind} pool {_pair_text(module.kernel_size)}"
    if isinstance(module, nn.Linear):
        return f"fc, {module.out_features}"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Upsample):
        return f"upsample ×{module.scale_factor:g}" if module.scale_factor else "upsample"
    return None


def fold_label(module: torch.nn.Module) -> str | None:
    """The name of a shape-keeping layer drawn inside the box before it (BN, ReLU...)."""
    from torch import nn

    kinds = {
        nn.BatchNorm2d: "BN",
        nn.ReLU6: "ReLU6",
        nn.ReLU: "ReLU",
        nn.Sigmoid: "sigmoid",
        nn.Tanh: "tanh",
        nn.GELU: "GELU",
        nn.Dropout: "dropout",
    }
    for kind, text in kinds.items():
        if isinstance(module, kind):
            return text
    return None


def _residual_types() -> tuple[type, ...]:
    from cnnbook.models.cifar_resnet import ResidualBlock
    from cnnbook.models.mobilenet import InvertedResidual
    from cnnbook.models.resnet import BasicBlock, Bottleneck

    return (BasicBlock, Bottleneck, ResidualBlock, InvertedResidual)


@dataclass
class _Step:
    label: str
    shape: tuple[int, ...]
    extras: list[str]
    residual: bool = False
    group: str = ""  # the part of the network it belongs to ("stem", "stage 2"), if any


def _group(model: torch.nn.Module, name: str) -> str:
    """The named part of ``model`` a layer belongs to: its top-level container ("stem"),
    or, in a container of containers, the numbered one ("stages.1" -> "stage 2").
    Layers that are direct children of ``model`` (LeNet's) belong to no group."""
    parts = name.split(".")
    top = getattr(model, parts[0], None)
    if top is None or len(parts) == 1:
        return ""
    children = list(top.children())
    if parts[1].isdigit() and children and all(any(True for _ in c.children()) for c in children):
        return f"{parts[0].rstrip('s')} {int(parts[1]) + 1}"
    return parts[0]


def _chain_steps(
    model: torch.nn.Module, calls: list[Call], input_shape: tuple[int, ...]
) -> list[_Step]:
    """The calls as a chain: main layers, each with the BN/activations after it folded in."""
    steps = [_Step("input", tuple(input_shape), [])]
    inside = None  # name of the residual block whose inner calls are skipped
    for call in calls[1:]:
        if inside is not None and call.name.startswith(inside + "."):
            continue
        inside = None
        if isinstance(call.module, _residual_types()) and getattr(
            call.module, "use_shortcut", getattr(call.module, "residual", True)
        ):
            inside = call.name
            convs = sum(1 for m in call.module.modules() if type(m).__name__ == "Conv2d")
            extras = [f"{convs} convs + skip"]
            steps.append(
                _Step("residual block", call.out_shape, extras, True, _group(model, call.name))
            )
        elif call.is_leaf and call.out_shape is not None:
            label, folded = layer_label(call.module), fold_label(call.module)
            if label is not None:
                steps.append(_Step(label, call.out_shape, [], group=_group(model, call.name)))
            elif folded is not None and len(steps) > 1 and folded not in steps[-1].extras:
                steps[-1].extras.append(folded)
    return steps


def _volume(ax: Axes, x: float, y: float, shape: tuple[int, ...], h_max: int) -> float:
    """Draw a (C, H, W) volume or an (F,) vector with its left edge at x, centred on y.

    Returns the drawing's width. Sizes grow with log2(C) and sqrt(H / h_max).
    """
    if len(shape) == 3:
        C, H, _ = shape
        depth = min(0.05 + 0.035 * math.log2(C), 0.38)
        height = 0.18 + 0.62 * math.sqrt(H / h_max)
        cuboid(ax, (x, y - height / 2), depth, height, height, role="tensor", slant=0.35)
        return depth + 0.35 * height / math.sqrt(2)
    features = math.prod(shape)
    height = min(0.15 + 0.065 * math.log2(max(features, 1)), 0.85)
    layer_box(ax, (x, y - height / 2), 0.09, height, role="tensor")
    return 0.09


def chain_diagram(
    model: torch.nn.Module, input_shape: tuple[int, int, int], *, per_row: int = 5
) -> Figure:
    """``model`` as a chain of tensor volumes, each labelled with its shape.

    Between two volumes, the layer that maps one to the other ("conv 5×5, 6", with
    the BatchNorm and activations after it on a second line). A residual block
    (ResNet's, ResNet-9's, MobileNetV2's) is one step with a curved skip arrow beside
    it. input_shape: (C, H, W); per_row: volumes per row before the chain wraps.
    """
    per_row = check_int("per_row", per_row, minimum=2)
    shape = check_chw("input_shape", input_shape)
    steps = _chain_steps(model, trace_layers(model, shape), shape)
    rows = math.ceil(len(steps) / per_row)
    per_row = math.ceil(len(steps) / rows)  # balance the rows
    slot = MAX_WIDTH_IN / per_row
    grouped = any(s.group for s in steps)
    row_h = 2.15 if grouped else 1.85
    h_max = max((s.shape[1] for s in steps if len(s.shape) == 3), default=1)
    fig, ax = canvas(MAX_WIDTH_IN, rows * row_h + 0.1)
    prev_end = None
    for i, step in enumerate(steps):
        r, c = divmod(i, per_row)
        y = (rows - r) * row_h - 1.0  # centre line of the row's volumes
        x0 = c * slot
        left = x0 + 0.42 * slot if i else x0 + 0.15
        width = _volume(ax, left, y, step.shape, h_max)
        label = ax.text(left + width / 2, y - 0.62, shape_text(step.shape), ha="center",
                        va="top", fontsize=SMALL)  # fmt: skip
        label.set_gid("shape")
        if i:
            start = (x0 + 0.04, y)
            if c == 0:  # wrap: from the previous row's end, down and back to the left
                px, py = prev_end
                gap = py - row_h + 0.95
                ax.plot([px, px, start[0], start[0]], [py, gap, gap, y],
                        color="#333333", lw=1.3)  # fmt: skip
            arrow(ax, start, (left - 0.04, y))
            text = step.label + ("\n" + ", ".join(step.extras) if step.extras else "")
            ax.text(max((start[0] + left) / 2, 0.6), y + 0.5, text, ha="center", va="bottom",
                    fontsize=SMALL)  # fmt: skip
            if step.residual:
                skip = arrow(ax, start, (left - 0.04, y - 0.05), connection="arc3,rad=0.6")
                skip.set_gid("skip")
        else:
            ax.text(left + width / 2, y + 0.5, "input", ha="center", va="bottom", fontsize=SMALL)
        last_in_row = c == per_row - 1 and i < len(steps) - 1
        prev_end = (x0 + slot - 0.06, y) if last_in_row else None
        if prev_end is not None:
            ax.plot([left + width + 0.04, prev_end[0]], [y, y], color="#333333", lw=1.3)
    if grouped:
        _group_brackets(ax, steps, per_row, slot, rows, row_h)
    return fig


def _group_brackets(ax: Axes, steps: list[_Step], per_row: int, slot: float, rows: int,
                    row_h: float) -> None:  # fmt: skip
    """A line under the volumes of each group, per row, with the group's name below it."""
    runs: list[list[int]] = []
    for i, step in enumerate(steps):
        same = runs and steps[runs[-1][-1]].group == step.group and i % per_row
        if same:
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        if not steps[run[0]].group:
            continue
        r, c0 = divmod(run[0], per_row)
        c1 = run[-1] % per_row
        y = (rows - r) * row_h - 1.0 - 0.88
        x0, x1 = c0 * slot + 0.08, (c1 + 1) * slot - 0.08
        ax.plot([x0, x0, x1, x1], [y + 0.06, y, y, y + 0.06], color="#777777", lw=1)
        text = ax.text((x0 + x1) / 2, y - 0.03, steps[run[0]].group, ha="center", va="top",
                       fontsize=SMALL, color="#555555")  # fmt: skip
        text.set_gid("group")


def _block_label(module: torch.nn.Module) -> str:
    """``"2 × conv 3×3, 16"`` for a DoubleConv; the one layer's label for a lone layer."""
    from torch import nn

    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return layer_label(module) or type(module).__name__
    k, C = _pair_text(convs[-1].kernel_size), convs[-1].out_channels
    return f"{len(convs)} × conv {k}, {C}" if len(convs) > 1 else f"conv {k}, {C}"


def _up_label(module: torch.nn.Module) -> str:
    """The up-sampling step without its channel count (the box above it shows that)."""
    labels = [layer_label(m) for m in module.modules()]
    return "\n".join(text.rsplit(",", 1)[0] for text in labels if text)


def unet_diagram(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> Figure:
    """A ``cnnbook.models.unet.UNet`` drawn as the U, with each level's shape.

    Encoder blocks go down the left (max pool between levels), the bottleneck sits at
    the bottom, decoder blocks climb the right (the up-sampling layer on each arrow),
    and the skip connections (when ``model.skip``) cross from each encoder level to the
    decoder level at the same resolution. input_shape: (C, H, W).
    """
    from cnnbook.models.unet import UNet

    if not isinstance(model, UNet):
        raise TypeError(f"model must be a cnnbook.models.unet.UNet, got {type(model).__name__}")
    shape = check_chw("input_shape", input_shape)
    outs = {c.name: c.out_shape for c in trace_layers(model, shape)}
    depth = len(model.down)
    dy, box_w, box_h, side = 1.05, 1.5, 0.46, 0.55
    height = depth * dy + 1.0
    fig, ax = canvas(MAX_WIDTH_IN, height)
    top = height - 0.5

    def level(i: int, cx: float, module: torch.nn.Module, out: tuple[int, ...]):
        y = top - i * dy
        box = layer_box(ax, (cx - box_w / 2, y - box_h / 2), box_w, box_h, _block_label(module),
                        fontsize=SMALL)  # fmt: skip
        box.set_gid("level")
        label = ax.text(cx, y - box_h / 2 - 0.04, shape_text(out), ha="center", va="top",
                        fontsize=SMALL)  # fmt: skip
        label.set_gid("shape")
        return cx, y

    enc = [level(i, 1.35 + 0.45 * i, b, outs[f"down.{i}"]) for i, b in enumerate(model.down)]
    bottom = level(depth, MAX_WIDTH_IN / 2, model.bottleneck, outs["bottleneck"])
    dec = {}
    for j, up in enumerate(model.ups):
        i = depth - 1 - j
        dec[i] = level(i, MAX_WIDTH_IN - 1.35 - 0.45 * i, up.conv, outs[f"ups.{j}"])
    for i in range(depth):
        below_left = enc[i + 1] if i + 1 < depth else bottom
        below_right = dec[i + 1] if i + 1 < depth else bottom
        start = (enc[i][0] - side, enc[i][1] - box_h / 2)
        end = (below_left[0] - side, below_left[1] + box_h / 2)
        arrow(ax, start, end)
        ax.text((start[0] + end[0]) / 2 - 0.06, (start[1] + end[1]) / 2, "max pool 2×2",
                ha="right", va="center", fontsize=SMALL - 1)  # fmt: skip
        start = (below_right[0] + side, below_right[1] + box_h / 2)
        end = (dec[i][0] + side, dec[i][1] - box_h / 2)
        arrow(ax, start, end)
        ax.text((start[0] + end[0]) / 2 + 0.06, (start[1] + end[1]) / 2,
                _up_label(model.ups[depth - 1 - i].up), ha="left", va="center",
                fontsize=SMALL - 1)  # fmt: skip
        if model.skip:
            skip = arrow(ax, (enc[i][0] + box_w / 2, enc[i][1]), (dec[i][0] - box_w / 2, dec[i][1]))
            skip.set_gid("skip")
            if i == 0:  # the same at every level: said once
                ax.text(MAX_WIDTH_IN / 2, enc[i][1] + 0.04, "copy, concatenate", ha="center",
                        va="bottom", fontsize=SMALL - 1, color="#555555")  # fmt: skip
    ax.text(enc[0][0] - box_w / 2, top + box_h / 2 + 0.05, f"input {shape_text(shape)}",
            ha="left", va="bottom", fontsize=SMALL)  # fmt: skip
    ax.text(dec[0][0] + box_w / 2, top + box_h / 2 + 0.05,
            f"{layer_label(model.head)} → {shape_text(outs['head'])}", ha="right", va="bottom",
            fontsize=SMALL)  # fmt: skip
    return fig

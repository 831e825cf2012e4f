"""Shape, parameters, FLOPs and receptive field of every layer of a real network.

``analyze_module(model, input_shape)`` is ``arith.analyze`` for a ``torch.nn.Module``:
it traces the model with ``torch.fx``, runs one forward pass for the shapes (on the
"meta" device where it can), and follows branches (residual additions, concatenations),
stepping the receptive-field recurrence of ``cnnbook.arith`` through every conv and
pooling layer. ``count_params`` counts a model's learnable numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from cnnbook._checks import check_int
from cnnbook.arith import _INPUT, _Axis, _step, _Window, linear_flops
from cnnbook.layer_table import ModuleReport, _public

if TYPE_CHECKING:  # torch is imported only by the functions that need it
    import torch

__all__ = ["analyze_module", "count_params"]


class _Spatial(NamedTuple):
    """Receptive field of a traced tensor and the positions of its H and W axes."""

    axes: tuple[_Axis, _Axis]
    dims: tuple[int, int]


def count_params(model: torch.nn.Module) -> int:
    """Number of learnable numbers: ``sum(p.numel() for p in model.parameters())``."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def _check_input_shape(value: object) -> tuple[int, ...]:
    """(C, H, W) or (N, C, H, W) -> (N, C, H, W)."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple (C, H, W), got {type(value).__name__}")
    if len(value) not in (3, 4):
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W), got {value!r}")
    dims = tuple(check_int(f"input_shape[{i}]", v, minimum=1) for i, v in enumerate(value))
    return dims if len(dims) == 4 else (1, *dims)


def _trace(model: torch.nn.Module) -> torch.fx.GraphModule:
    import torch

    # a lone layer is a leaf to the tracer, which would trace through its forward instead
    root = model if list(model.children()) else torch.nn.Sequential(model)
    try:
        return torch.fx.symbolic_trace(root)
    except Exception as err:  # any tracing failure means the same to the caller
        raise RuntimeError(
            f"analyze_module could not trace {type(model).__name__} with torch.fx "
            f"(data-dependent Python control flow?): {err}"
        ) from err


def _output_shapes(gm: torch.fx.GraphModule, shape: tuple[int, ...]) -> dict:
    """Run one forward pass on zeros and keep only the shape of every node's output.

    First on the "meta" device (shapes without arithmetic: instant, no memory), with the
    model's parameters swapped for meta copies; if some operation has no meta version,
    again for real on the model's device.
    """
    import torch

    shapes = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            shapes[node] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            return out

    class Run(torch.nn.Module):  # functional_call needs a module around the interpreter
        def __init__(self):
            super().__init__()
            self.gm = gm

        def forward(self, x):
            return Recorder(self.gm).run(x)

    run = Run()
    tensors = {**dict(run.named_parameters()), **dict(run.named_buffers())}
    first = next(iter(tensors.values()), torch.zeros(()))
    modes = [m.training for m in gm.modules()]
    gm.eval()  # batch norm with batch 1 and a 1x1 map would refuse to train
    try:
        with torch.no_grad():
            try:
                meta = {name: t.to("meta") for name, t in tensors.items()}
                x = torch.zeros(shape, dtype=first.dtype, device="meta")
                torch.func.functional_call(run, meta, (x,))
            except (NotImplementedError, RuntimeError):
                shapes.clear()
                run(torch.zeros(shape, dtype=first.dtype, device=first.device))
    finally:
        for m, mode in zip(gm.modules(), modes, strict=True):
            m.training = mode
    return shapes


def _module_window(module: torch.nn.Module) -> tuple[_Window, _Window] | None:
    """The sliding window of a conv or pooling module, None for other modules."""
    from torch import nn
    from torch.nn.modules.utils import _pair

    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        k, s, d, p = module.kernel_size, module.stride, module.dilation, module.padding
        if isinstance(p, str):  # "valid" or "same"; torch puts the odd pixel of "same" right
            p = tuple(
                (di * (ki - 1)) // 2 if p == "same" else 0 for ki, di in zip(k, d, strict=True)
            )
        transposed = isinstance(module, nn.ConvTranspose2d)
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k, p = _pair(module.kernel_size), _pair(module.padding)
        s = k if module.stride is None else _pair(module.stride)
        d, transposed = _pair(getattr(module, "dilation", 1)), False
    else:
        return None
    h, w = (
        _Window(di * (ki - 1) + 1, si, pi, transposed)
        for ki, si, pi, di in zip(k, s, p, d, strict=True)
    )
    return h, w


def _adaptive_window(in_hw: Sequence[int], out_hw: Sequence[int]) -> tuple | None:
    """The fixed window of an adaptive pooling, or None when it has none.

    Adaptive pooling is a fixed window only when the output size divides the input size.
    Global pooling (output 1 x 1) is left out too: its one unit sees the whole input, and
    the recurrence would report a window that runs far past the image.
    """
    if any(n % m or (m == 1 and n > 1) for n, m in zip(in_hw, out_hw, strict=True)):
        return None
    h, w = (_Window(n // m, n // m, 0) for n, m in zip(in_hw, out_hw, strict=True))
    return h, w


def _is_adaptive(node: torch.fx.Node, gm: torch.fx.GraphModule) -> bool:
    from torch import nn

    if node.op == "call_module":
        return isinstance(
            gm.get_submodule(node.target), (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
        )
    name = getattr(node.target, "__name__", "")
    return node.op == "call_function" and name in ("adaptive_avg_pool2d", "adaptive_max_pool2d")


def _permuted(node: torch.fx.Node, dims: tuple[int, int], ndim: int) -> tuple[int, int] | None:
    """New positions of the H and W axes after a permute node, None if it is not one."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if name != "permute":
        return None
    order = node.kwargs.get("dims", node.args[1:])
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = order[0]
    order = [int(a) % ndim for a in order]
    return order.index(dims[0]), order.index(dims[1])


def _spatial_state(node, gm, shapes, states) -> _Spatial | None:
    """Receptive field of one traced node's output, from those of its inputs."""
    import torch

    out = shapes.get(node)
    if node.op == "placeholder":
        return _Spatial((_INPUT, _INPUT), (2, 3)) if out and len(out) == 4 else None
    if node.op not in ("call_module", "call_function", "call_method") or out is None:
        return None
    first = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
    window = None
    if node.op == "call_module":
        window = _module_window(gm.get_submodule(node.target))
    if window is None and _is_adaptive(node, gm) and first in shapes and len(out) == 4:
        window = _adaptive_window(shapes[first][2:], out[2:])
        if window is None:  # global, or windows of varying size: no single recurrence step
            return None
    if window is not None:
        state = states.get(first)
        if state is None or state.dims != (2, 3) or len(out) != 4:
            return None
        axes = tuple(_step(a, w) for a, w in zip(state.axes, window, strict=True))
        return _Spatial(axes, (2, 3))
    # Any other operation is assumed not to mix spatial positions (activations, norms,
    # channel-wise linear layers, additions, concatenations along channels). It keeps the
    # field of the inputs whose H and W survive unchanged in the output; at a merge of
    # branches the largest field wins, with its jump and start. Inputs broadcast from a
    # 1x1 map (squeeze-and-excitation gates) do not match and are left out, so rf stays
    # the convolutional window. An output without those axes (flatten, global mean) gets None.
    candidates = []
    for arg in node.all_input_nodes:
        state = states.get(arg)
        if state is None:
            continue
        dims = _permuted(node, state.dims, len(shapes[arg])) or state.dims
        sizes = [shapes[arg][d] for d in state.dims]
        if max(dims) < len(out) and [out[d] for d in dims] == sizes:
            candidates.append(_Spatial(state.axes, dims))
    if not candidates:
        return None
    axes = tuple(max((c.axes[i] for c in candidates), key=lambda a: a.rf) for i in (0, 1))
    return _Spatial(axes, candidates[0].dims)


def _node_flops(node, module, shapes) -> int:
    """Per-sample FLOPs of a conv or linear module call; 0 for everything else."""
    from torch import nn

    out = shapes[node]
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        per_pixel = 2 * k[0] * k[1] * (module.in_channels // module.groups) * module.out_channels
        return per_pixel * out[2] * out[3]
    if isinstance(module, nn.ConvTranspose2d):
        in_hw = shapes[node.args[0]][2:]
        k = module.kernel_size
        per_pixel = 2 * k[0] * k[1] * module.in_channels * (module.out_channels // module.groups)
        return per_pixel * in_hw[0] * in_hw[1]
    if isinstance(module, nn.Linear):
        rows = math.prod(out[1:-1])  # a linear layer on (N, H, W, C) runs once per position
        return linear_flops(module.in_features, module.out_features) * rows
    return 0


def analyze_module(model: torch.nn.Module, input_shape: Sequence[int]) -> list[ModuleReport]:
    """Walk a real network layer by layer: output shape, parameters, FLOPs, receptive field.

    model: any ``torch.nn.Module`` that ``torch.fx.symbolic_trace`` can trace (nn.Sequential,
    torchvision VGG, ResNet, MobileNet, EfficientNet, ConvNeXt, ...); input_shape: (C, H, W)
    or (N, C, H, W), NCHW. Shapes come from one forward pass on zeros, in eval mode and
    without gradients, on the "meta" device when every operation supports it, else on the
    model's device (training modes are restored afterwards).

    One report per module call, in execution order, plus one per function that merges
    branches (``add``, ``cat``, ``mul``) or uses parameters of its own (ConvNeXt's layer
    scale); their ``params`` sum to the parameters the forward pass uses. FLOPs count
    Conv2d, ConvTranspose2d and Linear (a multiply-add is 2 FLOPs, as FlopCounterMode).

    Receptive field: Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, and adaptive pooling
    whose output size divides its input size step the recurrence; other operations keep
    the field of their inputs, and at merges the largest field wins. ``rf`` is None after
    global pooling (its unit sees the whole image), once the spatial axes are gone
    (flatten, classifier), after adaptive pooling with windows of varying size, and after
    any other operation that changes the spatial size (interpolation, for example).

    Note on ResNet-50: torchvision's model (v1.5) strides the 3x3 conv of each downsampling
    bottleneck and reaches rf = 427 after layer4. The original v1 design strides the first
    1x1 conv instead; the 3x3 then sees twice the jump, and the same recurrence gives 483,
    the value google-research's receptive_field table lists for ResNet-50 (it analyses
    TF-slim's v1 layout). Neither is "the" receptive field of ResNet-50: say which layout.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = _check_input_shape(input_shape)
    gm = _trace(model)
    shapes = _output_shapes(gm, shape)

    states: dict = {}
    seen: set[int] = set()  # parameters already reported (shared modules, second calls)
    calls: dict[str, int] = {}
    reports = []
    for node in gm.graph.nodes:
        states[node] = _spatial_state(node, gm, shapes, states)
        report = _node_report(node, gm, shapes, states[node], seen, calls)
        if report is not None:
            reports.append(report)
    return reports


def _new_params(tensors, seen: set[int]) -> int:
    """Elements of the parameters not counted before (and mark them counted)."""
    from torch import nn

    total = 0
    for t in tensors:
        if isinstance(t, nn.Parameter) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel()
    return total


def _node_report(node, gm, shapes, state, seen, calls) -> ModuleReport | None:
    """A report for a module call or a merge of branches; None for other nodes."""
    if node.op not in ("call_module", "call_function", "call_method"):
        return None
    out = shapes.get(node)  # None when the node does not return a tensor
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        calls[node.target] = calls.get(node.target, 0) + 1
        count = calls[node.target]
        name = node.target if count == 1 else f"{node.target}#{count}"
        kind, params = type(module).__name__, _new_params(module.parameters(), seen)
        flops = _node_flops(node, module, shapes) if out else 0
    else:
        attrs = [gm.get_parameter(a.target) for a in node.all_input_nodes if _is_param(a, gm)]
        tensors = [a for a in node.all_input_nodes if a.op != "get_attr" and shapes.get(a)]
        if out is None or (len(tensors) < 2 and not attrs):
            return None  # a reshape, an activation, a permute: nothing new to report
        name, params, flops = node.name, _new_params(attrs, seen), 0
        kind = node.target if node.op == "call_method" else node.target.__name__
    rf, jump, start = _public(state.axes if state else None)
    spatial = tuple(out[d] for d in state.dims) if state else None
    out_shape = out[1:] if out else ()
    return ModuleReport(name, kind, out_shape, params, flops, rf, jump, start, spatial)


def _is_param(node, gm) -> bool:
    from torch import nn

    if node.op != "get_attr":
        return False
    module_path, _, attr = node.target.rpartition(".")
    return isinstance(getattr(gm.get_submodule(module_path), attr, None), nn.Parameter)

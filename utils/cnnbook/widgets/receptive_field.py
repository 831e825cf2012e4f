"""The receptive-field explorer: a stack of layers over a real photo.

The reader builds a stack from a fixed menu (one menu per layer slot), picks a unit of the
output map and sees the patch of the photo it depends on: the theoretical receptive field.
For the figure's presets it also shows the *effective* receptive field, measured with
gradients: for random-weight convolutions + ReLU, the magnitude of the gradient of the
centre output unit with respect to the photo, averaged over a few seeds (Luo et al., 2016,
"Understanding the effective receptive field in deep convolutional neural networks").

Python computes every number: output size, field size ``rf``, ``jump`` and ``start`` of
every stack the menus can reach (the stacks form a complete tree: stack ``i`` followed by
option ``c`` is stack ``i * n_options + 1 + c``, the empty stack is 0), and the gradient
maps of the presets. The browser only looks them up and draws, so the figure needs no
kernel and works in the static book.

Example::

    from cnnbook.data import sample_photo
    from cnnbook.widgets.receptive_field import ReceptiveField
    ReceptiveField(sample_photo("chelsea"))   # last expression of a cell
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cnnbook._checks import check_int
from cnnbook.arith import Conv, Pool, conv_output_size, pool_output_size, receptive_field
from cnnbook.photos import photo_as_float, square_photo
from cnnbook.widgets._html import StaticFallback, pack_uint, render_widget
from cnnbook.widgets.static import field_box, receptive_field_figure

__all__ = [
    "DEFAULT_LAYERS",
    "DEFAULT_OPTIONS",
    "DEFAULT_PRESETS",
    "MAX_STACKS",
    "MENU",
    "Layer",
    "ReceptiveField",
    "measure_erf",
    "stack_specs",
]


class Layer(NamedTuple):
    """One menu entry: ``kind`` "conv" (with ReLU) or "pool" (max), a square kernel."""

    kind: str
    kernel: int
    stride: int
    dilation: int


# Every layer the figure can offer. Convolutions keep the map size at stride 1 ("same"
# padding d(k-1)/2), so the photo and the output map stay aligned.
MENU: dict[str, Layer] = {
    "conv3": Layer("conv", 3, 1, 1),
    "conv5": Layer("conv", 5, 1, 1),
    "dil3": Layer("conv", 3, 1, 2),
    "s2conv3": Layer("conv", 3, 2, 1),
    "pool2": Layer("pool", 2, 2, 1),
}
LABELS: dict[str, str] = {
    "conv3": "3\u00d73 conv",
    "conv5": "5\u00d75 conv",
    "dil3": "3\u00d73 conv, dilation 2",
    "s2conv3": "3\u00d73 conv, stride 2",
    "pool2": "2\u00d72 max pool, stride 2",
}
DEFAULT_OPTIONS = ("conv3", "dil3", "s2conv3", "pool2")
DEFAULT_LAYERS = (
    Layer("conv", 3, 1, 1),
    Layer("conv", 3, 1, 1),
    Layer("pool", 2, 2, 1),
    Layer("conv", 3, 1, 1),
)
DEFAULT_PRESETS: dict[str, tuple[str, ...]] = {
    "one 3\u00d73 conv": ("conv3",),
    "three 3\u00d73 convs": ("conv3",) * 3,
    "six 3\u00d73 convs": ("conv3",) * 6,
    "conv, conv, pool, conv": ("conv3", "conv3", "pool2", "conv3"),
    "VGG-like: (conv, conv, pool) \u00d7 2": ("conv3", "conv3", "pool2") * 2,
    "stride-2 convs": ("s2conv3", "conv3", "s2conv3", "conv3"),
    "dilated convs": ("conv3", "dil3", "dil3", "dil3"),
}
MAX_STACKS = 6000  # about 4 bytes of JSON-base64 each
MAX_PRESETS = 10  # each costs a few gradient passes
ERF_SEEDS = 3
ERF_CHANNELS = 16
ERF_MASS = 0.95  # the figure reports the central squares holding these gradient fractions
ERF_CORE_MASS = 0.5


# ----------------------------------------------------------------------------- layers


def _menu_key(name: str, layer: object, options: Sequence[str]) -> str:
    """The menu key of a layer given as a key or as (kind, kernel, stride, dilation)."""
    if isinstance(layer, str):
        key = layer
    elif isinstance(layer, (tuple, list)) and len(layer) == 4:
        found = [k for k, v in MENU.items() if tuple(v) == tuple(layer)]
        if not found:
            raise ValueError(
                f"{name} = {tuple(layer)} is not in the figure's menu: "
                + ", ".join(f"{k} = {tuple(v)}" for k, v in MENU.items())
            )
        key = found[0]
    else:
        raise TypeError(
            f"{name} must be a menu key or a tuple (kind, kernel, stride, dilation), got {layer!r}"
        )
    if key not in MENU:
        raise ValueError(f"{name} = {key!r} is not a menu key; use one of {list(MENU)}")
    if key not in options:
        raise ValueError(f"{name} = {key!r} is not among options={tuple(options)}; add it there")
    return key


def stack_specs(keys: Sequence[str], channels: int = ERF_CHANNELS) -> list[Conv | Pool]:
    """cnnbook.arith specs of a stack of menu keys (same padding for convolutions)."""
    specs: list[Conv | Pool] = []
    for key in keys:
        layer = MENU[key]
        if layer.kind == "pool":
            specs.append(Pool(layer.kernel, layer.stride))
        else:
            padding = layer.dilation * (layer.kernel - 1) // 2
            specs.append(Conv(channels, layer.kernel, layer.stride, padding, layer.dilation))
    return specs


def _layer_size(key: str, size: int) -> int:
    """Output size of one menu layer on a size x size map; 0 if the layer does not fit."""
    layer = MENU[key]
    try:
        if layer.kind == "pool":
            return pool_output_size(size, layer.kernel, layer.stride)
        padding = layer.dilation * (layer.kernel - 1) // 2
        return conv_output_size(size, layer.kernel, layer.stride, padding, layer.dilation)
    except ValueError:
        return 0


def stack_table(options: Sequence[str], max_layers: int, size: int) -> dict[str, np.ndarray]:
    """Output size, rf, jump and 2 * start of every stack of at most ``max_layers`` options.

    Stack 0 is empty; stack ``i`` followed by ``options[c]`` is ``i * n + 1 + c``. Each
    child composes its parent's field with the new layer's own field (both from
    cnnbook.arith.receptive_field): ``rf = rf_parent + (rf_layer - 1) * jump_parent``,
    ``jump = jump_parent * jump_layer``, ``start = start_parent + start_layer * jump_parent``.
    That is arith's recurrence, one layer at a time, and about 100 times faster than
    calling ``arith.analyze`` on each of the thousands of stacks; the tests check the two
    agree on every stack. ``out`` is 0 for a stack some layer of which does not fit.
    """
    n = len(options)
    count = sum(n**depth for depth in range(max_layers + 1))
    own = {}  # each option's own field: (rf, jump, 2 * start)
    for key in options:
        rf, jump, start = receptive_field(stack_specs([key]))
        own[key] = (rf, jump, round(2 * start))
    out = np.zeros(count, dtype=np.int64)
    rf = np.ones(count, dtype=np.int64)
    jump = np.ones(count, dtype=np.int64)
    start2 = np.zeros(count, dtype=np.int64)
    out[0] = size
    for parent in range((count - 1) // n if n else 0):
        for c, key in enumerate(options):
            child = parent * n + 1 + c
            r, j, s2 = own[key]
            out[child] = _layer_size(key, out[parent]) if out[parent] > 0 else 0
            rf[child] = rf[parent] + (r - 1) * jump[parent]
            jump[child] = jump[parent] * j
            start2[child] = start2[parent] + s2 * jump[parent]
    return {"out": out, "rf": rf, "jump": jump, "start2": start2}


def stack_index(keys: Sequence[str], options: Sequence[str]) -> int:
    """Index of a stack of menu keys in ``stack_table`` (keys must be among ``options``)."""
    index = 0
    for key in keys:
        index = index * len(options) + 1 + list(options).index(key)
    return index


# ----------------------------------------------------------------------------- the photo


def _square_photo(image: object, size: int) -> np.ndarray:
    """``photos.square_photo`` as (size, size, 3) uint8, for a photo the field can be seen on."""
    values = photo_as_float(image)  # (H, W) or (H, W, 3) in [0, 1], validated
    H, W = values.shape[:2]
    if min(H, W) < 16:
        raise ValueError(f"image must be at least 16 x 16 pixels, got {H} x {W}")
    if values.max() == values.min():
        raise ValueError("image must not be constant: the effective field is measured on it")
    small = square_photo(values, size)  # (size, size, 3) float32 in [0, 1]
    return np.clip(np.round(small * 255), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- effective RF


def _erf_gradient(x, keys: Sequence[str], channels: int, seed: int):
    """|d centre unit / d x| for one random-weight network: x (1, 3, H, W) -> (H, W)."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    x = x.clone().requires_grad_(True)
    h = x
    for key in keys:
        layer = MENU[key]
        if layer.kind == "pool":
            h = F.max_pool2d(h, layer.kernel, layer.stride)
            continue
        C_in = h.shape[1]
        fan_in = C_in * layer.kernel**2
        # He initialisation, drawn from our own generator: no global random state
        w = torch.randn(channels, C_in, layer.kernel, layer.kernel, generator=generator)
        w = w * math.sqrt(2.0 / fan_in)
        padding = layer.dilation * (layer.kernel - 1) // 2
        h = F.relu(F.conv2d(h, w, stride=layer.stride, padding=padding, dilation=layer.dilation))
    ci, cj = h.shape[2] // 2, h.shape[3] // 2
    h[0, :, ci, cj].sum().backward()
    return x.grad[0].abs().sum(dim=0)


def measure_erf(
    photo: np.ndarray,
    keys: Sequence[str],
    seeds: int = ERF_SEEDS,
    channels: int = ERF_CHANNELS,
    mass: float = ERF_MASS,
    core_mass: float = ERF_CORE_MASS,
) -> dict:
    """Effective receptive field of the centre output unit of a stack on a photo.

    photo: (H, W, 3) uint8; keys: menu keys. For ``seeds`` random He-initialised networks
    (each conv ``channels`` wide and followed by ReLU), the gradient magnitude of the sum
    over channels of the centre unit ``(H_out // 2, W_out // 2)`` with respect to the
    standardised photo, summed over colour channels and averaged over seeds.

    Returns ``map`` (H, W) float64 normalised to max 1, ``unit`` (row, col), ``centre``
    (row, col) in pixels (the centre of the unit's theoretical field), ``side``: the side
    in pixels of the smallest square around the centre that holds ``mass`` of the gradient
    (a square, so that it compares directly with the theoretical ``rf``), and
    ``core_side``: the same for ``core_mass``.
    """
    import torch

    x = torch.tensor(photo, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
    x = (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-6)
    # One thread: at this size a second one only adds start-up and spin-waiting, which on
    # a busy 2-core machine made each pass 50 times slower. Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        total = sum(_erf_gradient(x, keys, channels, seed) for seed in range(seeds)) / seeds
    finally:
        torch.set_num_threads(threads)
    grad = total.double().numpy()
    rf, jump, start = receptive_field(stack_specs(keys)) if keys else (1, 1, 0.0)
    size = photo.shape[0]
    for key in keys:
        size = _layer_size(key, size)
    unit = (size // 2, size // 2)
    centre = (start + unit[0] * jump, start + unit[1] * jump)
    if grad.max() <= 0:
        raise ValueError(f"the gradient of stack {list(keys)} vanished for every seed")
    rows, cols = np.indices(grad.shape)
    # pixels at Chebyshev distance <= h from the centre fill a (2h + 1)-pixel square
    distance = np.maximum(abs(rows - centre[0]), abs(cols - centre[1])).ravel()
    order = np.argsort(distance, kind="stable")
    cumulative = np.cumsum(grad.ravel()[order])
    inside = np.searchsorted(cumulative, np.array([mass, core_mass]) * cumulative[-1])
    side, core_side = (round(2 * float(h) + 1) for h in distance[order][inside])
    return {
        "map": grad / grad.max(),
        "unit": unit,
        "centre": centre,
        "side": side,
        "core_side": core_side,
        "rf": rf,
    }


def _erf_payload(photo: np.ndarray, keys: Sequence[str]) -> dict:
    """The ERF of one preset, cropped to its centre unit's theoretical field (zero outside)."""
    erf = measure_erf(photo, keys)
    rf, jump, start = receptive_field(stack_specs(keys)) if keys else (1, 1, 0.0)
    top, left, bottom, right = field_box(rf, jump, start, erf["unit"], photo.shape[0])
    outside = erf["map"].copy()
    outside[top : bottom + 1, left : right + 1] = 0
    if outside.max() > 0:  # a gradient beyond the theoretical field would be a bug
        raise AssertionError(f"gradient outside the theoretical field of {list(keys)}")
    crop = erf["map"][top : bottom + 1, left : right + 1]
    return {
        "top": top,
        "left": left,
        "height": bottom - top + 1,
        "width": right - left + 1,
        "map": pack_uint(np.round(crop * 255).astype(np.int64)),
        "unit": list(erf["unit"]),
        "centre": [float(c) for c in erf["centre"]],
        "side": erf["side"],
        "core_side": erf["core_side"],
    }


# ----------------------------------------------------------------------------- the figure


class ReceptiveField(StaticFallback):
    """Interactive figure: which pixels of a photo does one unit of a layer stack see?

    image: a real photo, (H, W) or (H, W, 3), uint8 in [0, 255] or float in [0, 1];
    centre-cropped to a square and resized to ``size`` x ``size`` pixels (16-128).
    layers: the first stack shown, a list of menu keys (``MENU``) or of tuples
    ``(kind, kernel, stride, dilation)`` such as ``("conv", 3, 1, 1)``; default
    conv3, conv3, pool2, conv3. The reader edits ``max_layers`` slots, each offering
    "none" and ``options`` (menu keys); every reachable stack is precomputed, so
    ``sum(len(options) ** L for L <= max_layers)`` must stay <= 6000.
    presets: name -> stack (default ``DEFAULT_PRESETS`` that fit ``options`` and
    ``max_layers``; the first stack is added if it is not one of them). The effective
    receptive field (gradients of random-weight networks) is measured for the presets only.

    Show it by making it the last expression of a cell (a bundle of the HTML and a PNG of
    its first state, see ``_html.StaticFallback``), or embed
    ``to_html()`` anywhere HTML is accepted. ``data`` holds every number the figure shows.
    """

    def __init__(
        self,
        image: np.ndarray,
        layers: Sequence | None = None,
        max_layers: int = 6,
        options: Sequence[str] = DEFAULT_OPTIONS,
        presets: dict[str, Sequence] | None = None,
        size: int = 64,
        title: str | None = None,
    ) -> None:
        self.size = check_int("size", size, minimum=16)
        if self.size > 128:
            raise ValueError(f"size must be <= 128 (a readable figure), got {self.size}")
        self.max_layers = check_int("max_layers", max_layers, minimum=1)
        self.options = self._check_options(options)
        n = len(self.options)
        count = sum(n**depth for depth in range(self.max_layers + 1))
        if count > MAX_STACKS:
            raise ValueError(
                f"max_layers={self.max_layers} with {n} options reaches {count} stacks, more "
                f"than {MAX_STACKS}: offer fewer options or a smaller max_layers"
            )
        layers = DEFAULT_LAYERS if layers is None else layers
        self.layers = self._check_stack("layers", layers)
        self.presets = self._check_presets(presets)
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.title = title or "Receptive field: which pixels does one output unit see?"
        self.photo = _square_photo(image, self.size)
        self.table = stack_table(self.options, self.max_layers, self.size)
        self.data = self._compute()

    # ------------------------------------------------------------------ argument checks

    @staticmethod
    def _check_options(options: object) -> tuple[str, ...]:
        if isinstance(options, (str, bytes)) or not isinstance(options, (list, tuple)):
            raise TypeError(f"options must be a tuple of menu keys, got {type(options).__name__}")
        if not options:
            raise ValueError("options must not be empty")
        for key in options:
            if key not in MENU:
                raise ValueError(f"options: {key!r} is not a menu key; use some of {list(MENU)}")
        if len(set(options)) != len(options):
            raise ValueError(f"options must not repeat a key, got {tuple(options)}")
        return tuple(options)

    def _check_stack(self, name: str, layers: object) -> tuple[str, ...]:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple)):
            raise TypeError(f"{name} must be a list of layers, got {type(layers).__name__}")
        if len(layers) > self.max_layers:
            raise ValueError(
                f"{name} has {len(layers)} layers, more than max_layers={self.max_layers}"
            )
        return tuple(
            _menu_key(f"{name}[{i}]", layer, self.options) for i, layer in enumerate(layers)
        )

    def _check_presets(self, presets: object) -> dict[str, tuple[str, ...]]:
        if presets is None:  # the defaults that this menu can build
            chosen = {
                name: keys
                for name, keys in DEFAULT_PRESETS.items()
                if len(keys) <= self.max_layers and all(k in self.options for k in keys)
            }
        else:
            if not isinstance(presets, dict):
                raise TypeError(f"presets must be a dict name -> layers, got {type(presets)}")
            chosen = {}
            for name, keys in presets.items():
                if not isinstance(name, str) or not name:
                    raise TypeError(f"presets: names must be non-empty str, got {name!r}")
                chosen[name] = self._check_stack(f"presets[{name!r}]", keys)
        if self.layers not in chosen.values():
            chosen = {"this figure's first stack": self.layers, **chosen}
        if len(chosen) > MAX_PRESETS:
            raise ValueError(
                f"presets: at most {MAX_PRESETS} (each is measured), got {len(chosen)}"
            )
        return chosen

    # ------------------------------------------------------------------ numbers

    def stack_info(self, keys: Sequence[str]) -> dict:
        """What the figure shows for one stack: ``out`` (0: no output), rf, jump, start."""
        keys = self._check_stack("keys", keys)
        i = stack_index(keys, self.options)
        return {
            "out": int(self.table["out"][i]),
            "rf": int(self.table["rf"][i]),
            "jump": int(self.table["jump"][i]),
            "start": float(self.table["start2"][i]) / 2,
        }

    def _compute(self) -> dict:
        presets = []
        for name, keys in self.presets.items():
            index = stack_index(keys, self.options)
            valid = self.table["out"][index] > 0
            presets.append(
                {
                    "name": name,
                    "keys": list(keys),
                    "index": index,
                    "erf": _erf_payload(self.photo, keys) if valid and keys else None,
                }
            )
        return {
            "title": self.title,
            "size": self.size,
            "scale": max(2, round(256 / self.size)),
            "photo": pack_uint(self.photo),
            "options": [{"key": k, "label": LABELS[k]} for k in self.options],
            "max_layers": self.max_layers,
            "layers": list(self.layers),
            "table": {name: pack_uint(values) for name, values in self.table.items()},
            "presets": presets,
            "erf": {
                "seeds": ERF_SEEDS,
                "channels": ERF_CHANNELS,
                "mass": ERF_MASS,
                "core_mass": ERF_CORE_MASS,
            },
        }

    def to_html(self) -> str:
        """The figure as one self-contained HTML string (inline style, script and data)."""
        return render_widget(
            widget="receptive-field",
            data=self.data,
            label=(
                f"{self.title}. Interactive figure: build a stack of layers, pick an output "
                "unit and see the pixels of the photo it depends on."
            ),
            js_file="receptive_field.js",
            css_file="receptive_field.css",
            entry="mountReceptiveField",
            static_png=self.static_png(),
        )

    _static_figure = receptive_field_figure  # the first stack's centre unit and its fields

    def __repr__(self) -> str:
        return (
            f"ReceptiveField(photo {self.size}x{self.size}, layers={list(self.layers)}, "
            f"max_layers={self.max_layers}, options={self.options})"
        )

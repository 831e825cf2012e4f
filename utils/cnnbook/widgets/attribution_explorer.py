"""The attribution explorer: Grad-CAM maps and feature maps of a real CNN, without a kernel.

Chapter 13 explains a pretrained classifier's decisions with Grad-CAM and has a live
(ipywidgets) explorer, which the static book shows in its first state only. This figure
is the kernel-free counterpart: Python runs the network once per photo, computes the
Grad-CAM map of each of the top classes at each chosen layer (``attribution_maps``, the
same numbers as ``cnnbook.interpret.grad_cam``) and the activations of the most active
channels, and quantises them to uint8. The page's script only looks them up and draws:
the photo with the map over it in a colour-blind-safe colormap (inferno), or the
channels' feature maps, with the class's name and probability.

Example (chapter 13)::

    from cnnbook.widgets.attribution_explorer import AttributionExplorer
    AttributionExplorer(model, {"chelsea": sample_photo("chelsea")},
                        layers=["features.18", "features.13", "features.6"])
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from cnnbook._checks import check_int
from cnnbook._torch_checks import check_model, eval_mode
from cnnbook.interpret import normalize_map, preprocess, resolve_layer
from cnnbook.photos import photo_as_float, square_photo
from cnnbook.pretrained import imagenet_categories
from cnnbook.widgets._html import StaticFallback, json_for_script, pack_uint, render_widget

__all__ = [
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_LAYERS",
    "MAX_PAYLOAD_BYTES",
    "MAX_PHOTOS",
    "AttributionExplorer",
    "attribution_maps",
]

MAX_PHOTOS = 6
MAX_LAYERS = 4
MAX_CLASSES = 5
MAX_CHANNELS = 8
MAX_PAYLOAD_BYTES = 600_000  # the JSON data of one figure; its page must stay light
CMAP = "inferno"  # perceptually uniform and colour-blind safe, as cnnbook.viz.overlay
JPEG_QUALITY = 85
DISPLAY_PX = 256  # CSS pixels of the photo on the page


def attribution_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[str], k: int) -> dict:
    """Grad-CAM of the ``k`` most probable classes at every layer: one forward pass.

    x: (1, C, H, W); layers: names of submodules that output feature maps (1, K, h, w).
    One forward pass records every layer's output, then one backward pass per class
    gives the gradients at all layers at once (``grad_cam`` would run the network twice
    per layer and class). Returns a dict:

    - ``num_classes``: how many scores the model returns;
    - ``top``: k pairs (class index, softmax probability), most probable first;
    - ``activations``: layer -> (K, h, w) float32, the layer's output for x;
    - ``cams``: layer -> (k, H, W) float32 in [0, 1]: ReLU(sum_k w_k A_k) with w_k the
      spatial mean of d logit / d A_k, upsampled bilinearly to H x W and divided by its
      maximum, what ``cnnbook.interpret.grad_cam(model, layer, x, class)`` returns.
    """
    model = check_model(model)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        raise TypeError("x must be a float tensor of shape (1, C, H, W) (see preprocess)")
    if x.shape[0] != 1:
        raise ValueError(f"x must hold one image (1, C, H, W), got {tuple(x.shape)}")
    modules = dict(resolve_layer(model, name) for name in layers)
    saved: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            saved[name] = output

        return hook

    with eval_mode(model):
        handles = [module.register_forward_hook(keep(name)) for name, module in modules.items()]
        try:
            logits = model(x.detach().clone().requires_grad_(True))
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            raise ValueError("model must return class scores of shape (1, num_classes)")
        k = check_int("k", k, minimum=1)
        if k > logits.shape[1]:
            raise ValueError(f"k must be at most the {logits.shape[1]} classes, got {k}")
        for name in modules:
            output = saved.get(name)
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                raise ValueError(f"layer {name!r} must output a feature map (1, K, h, w)")
        probabilities, indices = logits.detach().softmax(dim=1)[0].topk(k)
        outputs = [saved[name] for name in modules]
        cams: dict[str, list[np.ndarray]] = {name: [] for name in modules}
        for j, c in enumerate(indices.tolist()):
            grads = torch.autograd.grad(logits[0, c], outputs, retain_graph=j < k - 1)
            for name, A, dA in zip(modules, outputs, grads, strict=True):
                weights = dA.mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1)
                cam = F.relu((weights * A).sum(dim=1, keepdim=True))  # (1, 1, h, w)
                cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="bilinear")
                heat = cam[0, 0].detach().numpy()
                cams[name].append(normalize_map(heat, signed=False, percentile=100.0))
    return {
        "num_classes": int(logits.shape[1]),
        "top": [(int(c), float(p)) for c, p in zip(indices, probabilities, strict=True)],
        "activations": {
            name: A[0].detach().numpy() for name, A in zip(modules, outputs, strict=True)
        },
        "cams": {name: np.stack(maps) for name, maps in cams.items()},
    }


def _quantise(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """values -> (uint8 codes, lo, hi) with values ~ lo + code * (hi - lo) / 255."""
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return np.zeros(values.shape, dtype=np.int64), lo, hi
    return np.round((values - lo) / (hi - lo) * 255).astype(np.int64), lo, hi


def _jpeg_uri(photo: np.ndarray) -> str:
    """(H, W, 3) uint8 -> a JPEG data URI."""
    buffer = io.BytesIO()
    PIL.Image.fromarray(photo).save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _colormap() -> np.ndarray:
    """(256, 3) uint8 RGB of CMAP, the table the script colours every map with."""
    colors = matplotlib.colormaps[CMAP](np.arange(256))[:, :3]
    return np.round(colors * 255).astype(np.int64)


class AttributionExplorer(StaticFallback):
    """Interactive figure: where a CNN looks (Grad-CAM) and what its layers respond to.

    model: a classifier returning (1, num_classes) scores for ImageNet-normalised input
    (``cnnbook.interpret.preprocess``); it is run in eval mode and left as it was.
    photos: name -> photo, (H, W) or (H, W, 3), uint8 or floats in [0, 1]; 1 to 6, each
    centre-cropped and resized to ``input_size`` (what the model sees, and what is shown).
    layers: 1 to 4 submodule names whose outputs are feature maps, e.g. "features.18".
    classes: how many of the most probable classes get a map (1 to 5).
    channels: how many channels per layer the feature-map mode shows (1 to 8): those with
    the largest mean activation on each photo.
    map_size: side of the stored Grad-CAM map, which is ``grad_cam``'s input-size map read
    every ``input_size // map_size`` pixels (map_size must divide input_size).
    class_names: one name per class; default ImageNet's for 1,000 classes, else "class i".

    Show it as a cell's last expression (HTML plus a PNG of its first state) or embed
    ``to_html()``. ``data`` holds every number the page shows; ``results`` the unquantised
    ``attribution_maps`` of each photo.
    """

    def __init__(
        self,
        model: nn.Module,
        photos: Mapping[str, np.ndarray],
        layers: Sequence[str],
        *,
        classes: int = 3,
        channels: int = 4,
        input_size: int = 224,
        map_size: int = 56,
        class_names: Sequence[str] | None = None,
        title: str | None = None,
    ) -> None:
        self.model = check_model(model)
        self.layers = self._check_layers(layers)
        self.classes = check_int("classes", classes, minimum=1)
        if self.classes > MAX_CLASSES:
            raise ValueError(f"classes must be at most {MAX_CLASSES}, got {self.classes}")
        self.channels = check_int("channels", channels, minimum=1)
        if self.channels > MAX_CHANNELS:
            raise ValueError(f"channels must be at most {MAX_CHANNELS}, got {self.channels}")
        self.input_size = check_int("input_size", input_size, minimum=32)
        if self.input_size > 512:
            raise ValueError(f"input_size must be at most 512, got {self.input_size}")
        self.map_size = check_int("map_size", map_size, minimum=4)
        if self.map_size > self.input_size or self.input_size % self.map_size:
            raise ValueError(
                f"map_size must divide input_size={self.input_size}, got {self.map_size}"
            )
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.title = title or "Where does the network look? Grad-CAM and feature maps"
        self.photos, originals = self._check_photos(photos, self.input_size)
        # One thread: on a busy 2-core machine a second one spin-waits and made these
        # passes 20 to 30 times slower (measured). Restored afterwards.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            first = preprocess(next(iter(originals.values())), self.input_size)
            with torch.no_grad(), eval_mode(self.model):
                scores = self.model(first)
            if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
                raise ValueError("model must return class scores of shape (1, num_classes)")
            if self.classes > scores.shape[1]:
                raise ValueError(
                    f"classes must be at most the model's {scores.shape[1]} classes, "
                    f"got {self.classes}"
                )
            self.class_names = self._check_names(class_names, scores.shape[1])
            self.results = {
                name: attribution_maps(
                    self.model, preprocess(photo, self.input_size), self.layers, self.classes
                )
                for name, photo in originals.items()
            }
        finally:
            torch.set_num_threads(threads)
        self.data = self._compute()
        size = len(json_for_script(self.data))
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"the figure's data would be {size:,} bytes, more than {MAX_PAYLOAD_BYTES:,}: "
                "pass fewer photos, layers, classes or channels, or a smaller map_size"
            )

    # ------------------------------------------------------------------ argument checks

    def _check_layers(self, layers: object) -> tuple[str, ...]:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
            raise TypeError(f"layers must be a list of layer names, got {type(layers).__name__}")
        if not 1 <= len(layers) <= MAX_LAYERS:
            raise ValueError(f"layers must hold 1 to {MAX_LAYERS} names, got {len(layers)}")
        for layer in layers:
            if not isinstance(layer, str):
                raise TypeError(f"layers must be names (str), got {layer!r}")
            resolve_layer(self.model, layer)  # ValueError naming the layer if it is not one
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers must not repeat a name, got {list(layers)}")
        return tuple(layers)

    @staticmethod
    def _check_photos(
        photos: object, size: int
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(shown, originals): the (size, size, 3) uint8 squares and the checked photos."""
        if not isinstance(photos, Mapping):
            raise TypeError(f"photos must be a dict name -> photo, got {type(photos).__name__}")
        if not 1 <= len(photos) <= MAX_PHOTOS:
            raise ValueError(f"photos must hold 1 to {MAX_PHOTOS} photos, got {len(photos)}")
        shown, originals = {}, {}
        for name, photo in photos.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"photos: names must be non-empty str, got {name!r}")
            values = photo_as_float(photo, name=f"photos[{name!r}]")
            if min(values.shape[:2]) < 8:
                raise ValueError(f"photos[{name!r}] must be at least 8 x 8, got {values.shape}")
            square = square_photo(values, size)  # (size, size, 3) in [0, 1]
            shown[name] = np.clip(np.round(square * 255), 0, 255).astype(np.uint8)
            originals[name] = values  # the model sees these, as preprocess(photo) in ch 13
        return shown, originals

    @staticmethod
    def _check_names(names: object, count: int) -> tuple[str, ...]:
        if names is None:
            if count == 1000:
                return tuple(imagenet_categories())
            return tuple(f"class {i}" for i in range(count))
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
            raise TypeError(f"class_names must be a list of str, got {type(names).__name__}")
        if len(names) != count or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"class_names must hold {count} str (one per class), got {len(names)} items"
            )
        return tuple(names)

    # ------------------------------------------------------------------ numbers

    def _photo_payload(self, name: str) -> dict:
        result = self.results[name]
        step = self.input_size // self.map_size
        rows = np.arange(self.map_size) * step + step // 2  # the pixels the map keeps
        classes = [
            {
                "index": c,
                "name": self.class_names[c],
                "probability": p,
                "text": f"{p:.1%}",
            }
            for c, p in result["top"]
        ]
        cams, features = [], []
        for layer in self.layers:
            sampled = result["cams"][layer][:, rows][:, :, rows]  # (k, m, m) in [0, 1]
            cams.append([pack_uint(np.round(m * 255).astype(np.int64)) for m in sampled])
            A = result["activations"][layer]  # (K, h, w)
            order = np.argsort(-A.mean(axis=(1, 2)), kind="stable")[: self.channels]
            chosen = []
            for index in order.tolist():
                codes, lo, hi = _quantise(A[index])
                chosen.append(
                    {
                        "index": index,
                        "lo": lo,
                        "hi": hi,
                        "text": f"{lo:.2f} to {hi:.2f}",
                        "map": pack_uint(codes),
                    }
                )
            features.append({"height": A.shape[1], "width": A.shape[2], "channels": chosen})
        return {
            "name": name,
            "uri": _jpeg_uri(self.photos[name]),
            "classes": classes,
            "cams": cams,
            "features": features,
        }

    def _compute(self) -> dict:
        first = self.results[next(iter(self.photos))]
        return {
            "title": self.title,
            "input_size": self.input_size,
            "map_size": self.map_size,
            "display": DISPLAY_PX,
            "cmap": {"name": CMAP, "rgb": pack_uint(_colormap())},
            "layers": [
                {"name": name, "shape": list(first["activations"][name].shape)}
                for name in self.layers
            ],
            "photos": [self._photo_payload(name) for name in self.photos],
        }

    # ------------------------------------------------------------------ output

    def grad_cam_map(self, photo: str, layer: str, rank: int) -> np.ndarray:
        """The stored Grad-CAM map (map_size, map_size) in [0, 1], as the page draws it."""
        p = [d["name"] for d in self.data["photos"]].index(photo)
        packed = self.data["photos"][p]["cams"][self.layers.index(layer)][rank]
        codes = np.frombuffer(base64.b64decode(packed["b64"]), dtype=np.uint8)
        return codes.reshape(self.map_size, self.map_size) / 255.0

    def to_html(self) -> str:
        """The figure as one self-contained HTML string (inline style, script and data)."""
        return render_widget(
            widget="attribution-explorer",
            data=self.data,
            label=(
                f"{self.title}. Interactive figure: pick a photo, a layer and one of the "
                "top classes, and see its Grad-CAM map over the photo or the layer's most "
                "active feature maps."
            ),
            js_file="attribution_explorer.js",
            css_file="attribution_explorer.css",
            entry="mountAttributionExplorer",
            static_png=self.static_png(),
        )

    def _static_figure(self) -> Figure:
        """The first state: the first photo, layer and class, its map and four channels.

        Composed as one RGB array shown pixel for pixel in one axes (several axes made the
        PNG cost a second on a busy machine): the grey photo blended half and half with
        the map's colours, as the page shows it, and the most active channels, each from
        its own minimum (dark) to its maximum (bright).
        """
        name, layer = next(iter(self.photos)), self.layers[0]
        result, photo = self.results[name], self.photos[name]
        c, p = result["top"][0]
        lut = _colormap() / 255.0
        S, T, GAP, LABEL = self.input_size, 100, 10, 14
        canvas = np.ones((LABEL + max(S, 2 * (T + LABEL)), S + 2 * GAP + 2 * T + GAP, 3))
        gray = (photo.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255)[..., None]
        heat = lut[np.round(result["cams"][layer][0] * 255).astype(np.int64)]
        canvas[LABEL : LABEL + S, :S] = 0.5 * gray + 0.5 * heat
        figure = Figure(figsize=(canvas.shape[1] / 80, (canvas.shape[0] + 24) / 80))
        ax = figure.add_axes((0, 0, 1, canvas.shape[0] / (canvas.shape[0] + 24)))
        label = f"Grad-CAM at {layer}: {self.class_names[c]} ({p:.1%})"
        ax.text(0, LABEL - 3, label, fontsize=8)
        A = result["activations"][layer]
        order = np.argsort(-A.mean(axis=(1, 2)), kind="stable")[:4]
        for i, index in enumerate(order.tolist()):
            codes, _, _ = _quantise(A[index])
            rows = np.arange(T) * A.shape[1] // T  # nearest neighbour, T x T pixels
            cols = np.arange(T) * A.shape[2] // T
            top = LABEL + (i // 2) * (T + LABEL)
            left = S + 2 * GAP + (i % 2) * (T + GAP)
            canvas[top : top + T, left : left + T] = lut[codes[np.ix_(rows, cols)]]
            ax.text(left, top - 3, f"channel {index}", fontsize=7)
        ax.imshow(canvas, interpolation="nearest")
        ax.set_axis_off()
        figure.suptitle(self.title, fontsize=9, weight="bold", x=0.01, ha="left")
        return figure

    def __repr__(self) -> str:
        return (
            f"AttributionExplorer(photos={list(self.photos)}, layers={list(self.layers)}, "
            f"classes={self.classes}, channels={self.channels}, map_size={self.map_size})"
        )

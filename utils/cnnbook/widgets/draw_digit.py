"""Draw a digit: the reader draws on a 28 x 28 canvas and a trained LeNet reads it live.

Chapter 7 trains LeNet-5 on MNIST; this figure runs that very network in the browser. The
reader draws with the mouse, a pen or a finger (pointer events), clears the canvas or
loads one of a few test digits, and after every stroke sees each layer's feature maps as
small grey-scale pictures and the ten class probabilities as bars.

Python exports the network's parameters into the page as little-endian float32 (base64,
about 330 KB for LeNet-5's 61,706 numbers) together with the list of its layers in the
module's order (convolution, batch norm, activation, pooling, flatten, linear). The
script runs exactly those layers, on the canvas standardised with the chapter's ``mean``
and ``std``: ``(pixel - mean) / std`` with pixels in [0, 1], ink 1 and background 0, as
``load_standardised`` does in chapter 7. The model is not changed.

A page can also load a whole image without drawing, e.g. a test's 784 MNIST pixels::

    root.dispatchEvent(new CustomEvent("cnnbook:load-digit", {detail: {pixels: [...]}}))

(784 numbers in [0, 1], row-major). After every update the figure's root carries
``data-probabilities`` (ten numbers, comma-separated, full precision), ``data-prediction``
(the argmax), ``data-ink`` (the sum of the pixels) and ``data-forward-ms`` (the time of the
last forward pass, for benchmarks/draw_digit_speed.py).

Example (chapter 7)::

    from cnnbook.widgets.draw_digit import DrawDigit
    DrawDigit(mnist_model, examples=test_images[:6], labels=test_labels[:6], mean=m, std=s)
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from cnnbook._torch_checks import eval_mode
from cnnbook.widgets._html import StaticFallback, pack_uint, render_widget

__all__ = ["MNIST_MEAN", "MNIST_STD", "SIZE", "DrawDigit", "check_lenet", "export_layers"]

SIZE = 28  # the canvas side in pixels, as MNIST's
# Mean and standard deviation of the 60,000 MNIST training images' pixels in [0, 1]: what
# chapter 7's load_standardised computes (X_train.mean(), X_train.std()).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
MAX_EXAMPLES = 12
ACTIVATIONS = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
POOLS = {nn.MaxPool2d: "maxpool", nn.AvgPool2d: "avgpool"}
# LeNet's layer kinds in order; "act" is any of ACTIVATIONS, "pool" either of POOLS, and a
# "bn" may follow each convolution (LeNet(batchnorm=True)).
LENET_KINDS = (
    "conv", "act", "pool", "conv", "act", "pool", "flatten",
    "linear", "act", "linear", "act", "linear",
)  # fmt: skip
LENET_SHAPES = {0: (1, 6), 1: (6, 16)}  # conv i: (in_channels, out_channels)
LENET_LINEAR = ((400, 120), (120, 84), (84, 10))


def _kind(layer: nn.Module) -> str:
    if isinstance(layer, nn.Conv2d):
        return "conv"
    if isinstance(layer, nn.BatchNorm2d):
        return "bn"
    if type(layer) in ACTIVATIONS:
        return "act"
    if type(layer) in POOLS:
        return "pool"
    if isinstance(layer, nn.Flatten):
        return "flatten"
    if isinstance(layer, nn.Linear):
        return "linear"
    return type(layer).__name__


def _check_layer(name: str, layer: nn.Module, kind: str, conv_index: int, lin_index: int):
    """Raise ValueError (naming ``model.<name>``) if ``layer`` is not LeNet's at this place."""
    where = f"model.{name}"
    if kind == "conv":
        c_in, c_out = LENET_SHAPES[conv_index]
        padding = 2 if conv_index == 0 else 0
        got = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride)
        if got != (c_in, c_out, (5, 5), (1, 1)) or layer.dilation != (1, 1) or layer.groups != 1:
            raise ValueError(
                f"{where} must be Conv2d({c_in}, {c_out}, kernel_size=5) as in LeNet, got {layer}"
            )
        if layer.padding != (padding, padding) or layer.padding_mode != "zeros":
            raise ValueError(
                f"{where} must have padding={padding} (zeros): the canvas is 28 x 28 "
                f"(LeNet(padding=2)), got padding={layer.padding}"
            )
    elif kind == "pool":
        ok = layer.kernel_size in (2, (2, 2)) and layer.stride in (2, (2, 2))
        ok = ok and layer.padding in (0, (0, 0)) and not layer.ceil_mode
        if isinstance(layer, nn.MaxPool2d):
            ok = ok and layer.dilation in (1, (1, 1))
        else:
            ok = ok and layer.divisor_override is None
        if not ok:
            raise ValueError(f"{where} must be a 2 x 2 pooling with stride 2, got {layer}")
    elif kind == "flatten":
        if layer.start_dim != 1 or layer.end_dim != -1:
            raise ValueError(f"{where} must be Flatten() (start_dim=1), got {layer}")
    elif kind == "linear":
        n_in, n_out = LENET_LINEAR[lin_index]
        if (layer.in_features, layer.out_features) != (n_in, n_out) or layer.bias is None:
            raise ValueError(f"{where} must be Linear({n_in}, {n_out}) with a bias, got {layer}")
    elif kind == "bn":
        c = LENET_SHAPES[conv_index - 1][1]
        if layer.num_features != c or not layer.affine or not layer.track_running_stats:
            raise ValueError(f"{where} must be BatchNorm2d({c}) with running statistics")


def check_lenet(model: object) -> list[tuple[str, nn.Module, str]]:
    """(name, layer, kind) of every layer of a LeNet-shaped ``model``; else Type/ValueError.

    model: a ``cnnbook.models.lenet.LeNet`` or an ``nn.Sequential`` with its layers (as
    chapter 7's ``lenet5()``): conv(1->6, 5x5, padding 2) [bn], activation, 2x2 pooling,
    conv(6->16, 5x5) [bn], activation, pooling, flatten, then 400 -> 120 -> 84 -> 10
    linear layers with activations between them.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a LeNet (torch.nn.Module), got {type(model).__name__}")
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            "model must be a cnnbook.models.lenet.LeNet or an nn.Sequential with its layers, "
            f"got {type(model).__name__}"
        )
    layers = [(name, layer, _kind(layer)) for name, layer in model.named_children()]
    kinds = [k for _, _, k in layers if k != "bn"]
    if tuple(kinds) != LENET_KINDS:
        raise ValueError(
            "model must have LeNet's layers (conv, activation, pool, conv, activation, pool, "
            "flatten, linear, activation, linear, activation, linear; activations ReLU, "
            f"Sigmoid or Tanh, pools max or average), got {', '.join(k for _, _, k in layers)}"
        )
    conv_index = lin_index = 0
    previous = None
    for name, layer, kind in layers:
        if kind == "bn" and previous != "conv":
            raise ValueError(f"model.{name}: a BatchNorm2d must follow a convolution")
        _check_layer(name, layer, kind, conv_index, lin_index)
        conv_index += kind == "conv"
        lin_index += kind == "linear"
        previous = kind
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"model.{name} holds NaN or infinite values")
    return layers


def export_layers(model: object) -> tuple[list[dict], np.ndarray]:
    """The layers as the script runs them, and every number they need as one float32 array.

    Returns (layers, weights): ``layers`` in the module's order, each a dict with ``name``,
    ``kind`` (conv, bn, relu, sigmoid, tanh, maxpool, avgpool, flatten, linear) and, for
    layers with numbers, the ``offset`` of each array in ``weights`` (conv/linear: weight
    (out, in[, 5, 5]) then bias; bn: weight, bias, running_mean, running_var, plus ``eps``).
    """
    flat: list[np.ndarray] = []
    offset = 0
    out: list[dict] = []

    def put(tensor: torch.Tensor) -> int:
        nonlocal offset
        array = tensor.detach().to("cpu", torch.float32).numpy().ravel()
        flat.append(array)
        start, offset = offset, offset + array.size
        return start

    for name, layer, kind in check_lenet(model):
        entry: dict = {"name": name}
        if kind == "conv":
            entry.update(kind="conv", c_in=layer.in_channels, c_out=layer.out_channels, k=5)
            entry.update(padding=layer.padding[0], weight=put(layer.weight))
            entry["bias"] = None if layer.bias is None else put(layer.bias)
        elif kind == "bn":
            entry.update(kind="bn", channels=layer.num_features, eps=float(layer.eps))
            for key in ("weight", "bias", "running_mean", "running_var"):
                entry[key] = put(getattr(layer, key))
        elif kind == "act":
            entry["kind"] = ACTIVATIONS[type(layer)]
        elif kind == "pool":
            entry["kind"] = POOLS[type(layer)]
        elif kind == "linear":
            entry.update(kind="linear", n_in=layer.in_features, n_out=layer.out_features)
            entry.update(weight=put(layer.weight), bias=put(layer.bias))
        else:
            entry["kind"] = "flatten"
        out.append(entry)
    return out, np.concatenate(flat).astype("<f4")


def _images(name: str, values: object) -> np.ndarray:
    """(K, 28, 28) or (K, 1, 28, 28) images, uint8 or float in [0, 1] -> (K, 28, 28) uint8."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if not isinstance(values, (np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be an array of 28 x 28 images, got {type(values).__name__}")
    array = np.asarray(values)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"{name} must have shape (K, 28, 28) or (K, 1, 28, 28), got {array.shape}")
    if not 1 <= len(array) <= MAX_EXAMPLES:
        raise ValueError(f"{name} must hold 1 to {MAX_EXAMPLES} images, got {len(array)}")
    if array.dtype == np.uint8:
        return array.copy()
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 or float in [0, 1], got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold raw pixels in [0, 1], got NaN or infinity")
    if array.min() < 0 or array.max() > 1:
        raise ValueError(
            f"{name} must hold raw pixels in [0, 1] (not standardised), got values in "
            f"[{array.min():.3g}, {array.max():.3g}]"
        )
    return np.round(array * 255).astype(np.uint8)


def _positive_float(name: str, value: object, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number")
    return value


class DrawDigit(StaticFallback):
    """Interactive figure: draw a digit and watch a LeNet classify it, layer by layer.

    model: a ``cnnbook.models.lenet.LeNet(padding=2)`` (any activation, pooling or
    batch norm) or an ``nn.Sequential`` with the same layers, as chapter 7's ``lenet5()``;
    its parameters (and batch-norm statistics, used as in eval mode) are copied into the
    page. examples: 1 to 12 test digits the reader can load, (K, 28, 28) or
    (K, 1, 28, 28), uint8 or raw floats in [0, 1] (ink 1); None: the canvas starts empty.
    The first example is the first state. labels: their true classes (optional).
    mean, std: the standardisation the model was trained with, ``(x - mean) / std``.
    """

    def __init__(
        self,
        model: nn.Module,
        examples: object = None,
        labels: Sequence[int] | None = None,
        *,
        mean: float = MNIST_MEAN,
        std: float = MNIST_STD,
        title: str | None = None,
    ) -> None:
        self.layers, self.weights = export_layers(model)
        self.mean = _positive_float("mean", mean, positive=False)
        self.std = _positive_float("std", std, positive=True)
        self.examples = None if examples is None else _images("examples", examples)
        self.labels = self._check_labels(labels)
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.title = title or "Draw a digit: LeNet reads it as you draw"
        first = np.zeros((SIZE, SIZE)) if self.examples is None else self.examples[0] / 255
        self.first_image = first.astype(np.float32)
        self.first_probabilities = self.probabilities(model, first)
        self.data = self._compute()

    def _check_labels(self, labels: object) -> list[int] | None:
        if labels is None:
            return None
        if self.examples is None:
            raise ValueError("labels need examples")
        if isinstance(labels, torch.Tensor):
            labels = labels.tolist()
        if isinstance(labels, np.ndarray):
            labels = labels.tolist()
        if not isinstance(labels, (list, tuple)):
            raise TypeError(f"labels must be a sequence of ints, got {type(labels).__name__}")
        if len(labels) != len(self.examples):
            raise ValueError(
                f"labels must have one class per example ({len(self.examples)}), got {len(labels)}"
            )
        for label in labels:
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9:
                raise ValueError(f"labels must be classes 0-9, got {label!r}")
        return list(labels)

    def probabilities(self, model: nn.Module, image: object) -> np.ndarray:
        """softmax(model((image - mean) / std)) for one (28, 28) image in [0, 1] -> (10,).

        Runs the module in eval mode (every submodule's mode is restored afterwards).
        """
        x = torch.as_tensor(np.asarray(image, dtype=np.float32)).reshape(1, 1, SIZE, SIZE)
        param = next(model.parameters())
        x = ((x - self.mean) / self.std).to(param.device, param.dtype)
        with eval_mode(model), torch.no_grad():
            return torch.softmax(model(x), dim=1)[0].double().cpu().numpy()

    def _compute(self) -> dict:
        examples = []
        if self.examples is not None:
            for i, image in enumerate(self.examples):
                label = None if self.labels is None else self.labels[i]
                name = f"test digit {i + 1}" + ("" if label is None else f" (a {label})")
                examples.append({"name": name, "label": label, "pixels": pack_uint(image)})
        return {
            "title": self.title,
            "size": SIZE,
            "mean": self.mean,
            "std": self.std,
            "layers": self.layers,
            "weights": base64.b64encode(self.weights.tobytes()).decode("ascii"),
            "examples": examples,
            # what torch computed for the first state: the book's browser test compares
            # the page's numbers with it
            "first_probabilities": [float(p) for p in self.first_probabilities],
        }

    def to_html(self) -> str:
        """The figure as one self-contained HTML string (inline style, script and data)."""
        return render_widget(
            widget="draw-digit",
            data=self.data,
            label=(
                f"{self.title}. Interactive figure: draw a digit on the 28 by 28 canvas; the "
                "feature maps of every layer and the ten class probabilities follow."
            ),
            js_file="draw_digit.js",
            css_file="draw_digit.css",
            entry="mountDrawDigit",
            static_png=self.static_png(),
        )

    def _static_figure(self) -> Figure:
        """The first state: the digit and its ten class probabilities as bars."""
        figure = Figure(figsize=(6.4, 2.4))
        left = figure.add_axes((0.01, 0.08, 0.3, 0.8))
        left.imshow(self.first_image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        left.set_axis_off()
        left.set_title("the canvas (28 \u00d7 28)", fontsize=10)
        right = figure.add_axes((0.42, 0.18, 0.56, 0.7))
        probs = self.first_probabilities
        best = int(np.argmax(probs))
        colours = ["#440154" if c == best else "#9a9aa3" for c in range(10)]
        right.bar(range(10), probs, color=colours)
        right.set_xticks(range(10))
        right.set_ylim(0, 1)
        right.set_xlabel("class", fontsize=9)
        right.set_title(f"probabilities: {best} ({probs[best]:.1%})", fontsize=10)
        right.tick_params(labelsize=8)
        return figure

    def __repr__(self) -> str:
        count = 0 if self.examples is None else len(self.examples)
        kinds = ", ".join(layer["kind"] for layer in self.layers)
        return (
            f"DrawDigit({kinds}; {self.weights.size} numbers, {count} examples, "
            f"mean={self.mean:.4g}, std={self.std:.4g})"
        )

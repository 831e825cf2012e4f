"""Unit and bad-input tests of the draw-a-digit widget (no browser; see
test_browser_draw_digit.py for the network running in the page).

The payload must carry the module's own float32 parameters bit for bit, in the module's
layer order, and the page must stay small.
"""

from __future__ import annotations

import base64
from collections import OrderedDict

import numpy as np
import pytest
import torch
from browser_utils import assert_self_contained, embedded_data
from torch import nn

from cnnbook.models.lenet import LeNet
from cnnbook.widgets._html import MAX_STATIC_PNG_BYTES, read_asset
from cnnbook.widgets.draw_digit import DrawDigit, export_layers

MAX_HTML_BYTES = 500_000


def chapter_lenet5() -> nn.Sequential:
    """Chapter 7's own lenet5(): an nn.Sequential with LeNet's named layers."""
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 6, kernel_size=5, padding=2),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(6, 16, kernel_size=5),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Linear(400, 120),
            relu3=nn.ReLU(),
            fc2=nn.Linear(120, 84),
            relu4=nn.ReLU(),
            fc3=nn.Linear(84, 10),
        )
    )


def seeded(factory, seed: int = 0):
    torch.manual_seed(seed)
    return factory()


def decoded_weights(data: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data["weights"]), dtype="<f4")


def exported_arrays(data: dict, model: nn.Module) -> dict[str, np.ndarray]:
    """Every array of the payload by its state_dict name, cut out of the float32 blob."""
    weights = decoded_weights(data)
    state = model.state_dict()
    out = {}
    for layer in data["layers"]:
        for key in ("weight", "bias", "running_mean", "running_var"):
            if layer.get(key) is not None:
                name = f"{layer['name']}.{key}"
                size = state[name].numel()
                out[name] = weights[layer[key] : layer[key] + size].reshape(state[name].shape)
    return out


@pytest.mark.parametrize(
    "factory",
    [
        LeNet,
        chapter_lenet5,
        lambda: LeNet(activation="sigmoid", pool="avg"),
        lambda: LeNet(batchnorm=True),
    ],
    ids=["LeNet", "chapter-lenet5", "sigmoid-avg", "batchnorm"],
)
def test_weights_round_trip_exactly(factory):
    model = seeded(factory)
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        with torch.no_grad():  # non-trivial statistics, so a swap would show
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-1, 1)
                    m.running_var.uniform_(0.5, 2)
    widget = DrawDigit(model)
    data = embedded_data(widget.to_html())
    arrays = exported_arrays(data, model)
    expected = {
        name: t
        for name, t in model.state_dict().items()
        if not name.endswith("num_batches_tracked")
    }
    assert set(arrays) == set(expected), "every parameter and statistic, nothing else"
    for name, tensor in expected.items():
        want = tensor.numpy().astype("<f4")
        assert arrays[name].tobytes() == want.tobytes(), f"{name} differs"
    assert decoded_weights(data).size == sum(t.numel() for t in expected.values())
    # the layers in the module's order, with the module's kinds
    assert [layer["name"] for layer in data["layers"]] == [n for n, _ in model.named_children()]


def test_lenet_payload_size_and_self_contained():
    model = seeded(LeNet)
    images = torch.rand(6, 1, 28, 28)
    widget = DrawDigit(model, examples=images, labels=[0, 1, 2, 3, 4, 5])
    html = widget.to_html()
    data = assert_self_contained(html, "draw-digit", "mountDrawDigit")
    assert decoded_weights(data).size == 61_706
    assert len(html.encode("utf-8")) <= MAX_HTML_BYTES, f"{len(html):,} bytes"
    assert len(widget.static_png()) <= MAX_STATIC_PNG_BYTES
    assert [e["label"] for e in data["examples"]] == [0, 1, 2, 3, 4, 5]
    first = np.frombuffer(base64.b64decode(data["examples"][0]["pixels"]["b64"]), dtype="u1")
    assert np.array_equal(first, np.round(images[0, 0].numpy().ravel() * 255))
    assert (data["mean"], data["std"]) == (0.1307, 0.3081)
    bundle = widget._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    # the script declares one top-level name, the entry point
    script = read_asset("draw_digit.js")
    tops = [line for line in script.splitlines() if line.startswith(("function ", "var "))]
    assert tops == ["function mountDrawDigit(root, data) {"]


def test_first_state_probabilities_are_the_modules():
    model = seeded(LeNet)
    model.train()
    model.conv1.eval()  # mixed modes, as with a frozen backbone
    images = torch.rand(2, 28, 28)
    widget = DrawDigit(model, examples=images, mean=0.2, std=0.5)
    modes = [m.training for m in model.modules()]
    assert modes == [m is not model.conv1 for m in model.modules()], "modes restored"
    with torch.no_grad():
        model.eval()
        want = torch.softmax(model((images[:1, None] - 0.2) / 0.5), dim=1)[0]
    # the widget stores the first example as uint8, so compare on that image
    stored = torch.tensor(widget.first_image)[None, None]
    with torch.no_grad():
        exact = torch.softmax(model((stored - 0.2) / 0.5), dim=1)[0]
    assert np.allclose(widget.first_probabilities, exact.double().numpy(), atol=1e-7)
    assert np.allclose(widget.first_probabilities, want.double().numpy(), atol=1e-2)
    assert widget.first_probabilities.sum() == pytest.approx(1)
    # no examples: the first state is the empty canvas
    empty = DrawDigit(model)
    zeros = torch.zeros(1, 1, 28, 28)
    with torch.no_grad():
        model.eval()
        blank = torch.softmax(model((zeros - 0.1307) / 0.3081), dim=1)[0].double().numpy()
    assert np.all(np.isfinite(empty.first_probabilities))
    assert np.allclose(empty.first_probabilities, blank, atol=1e-7)
    assert embedded_data(empty.to_html())["examples"] == []


def test_export_layers_kinds():
    layers, weights = export_layers(seeded(lambda: LeNet(batchnorm=True, activation="sigmoid")))
    assert [layer["kind"] for layer in layers] == [
        "conv", "bn", "sigmoid", "maxpool", "conv", "bn", "sigmoid", "maxpool",
        "flatten", "linear", "sigmoid", "linear", "sigmoid", "linear",
    ]  # fmt: skip
    assert layers[0]["bias"] is None and layers[0]["padding"] == 2
    assert weights.dtype == np.dtype("<f4")


class NotSequential(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = LeNet()

    def forward(self, x):
        return self.body(x)


def nan_lenet() -> nn.Module:
    model = LeNet()
    with torch.no_grad():
        model.fc2.weight[3, 4] = float("nan")
    return model


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        ("lenet", TypeError, "model must be a LeNet"),
        (NotSequential(), TypeError, "model must be a cnnbook.models.lenet.LeNet"),
        (LeNet(padding=0), ValueError, r"model.conv1 must have padding=2"),
        (nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU()), ValueError, "LeNet's layers"),
        (
            nn.Sequential(*list(LeNet().children())[:-1], nn.Linear(84, 5)),
            ValueError,
            r"model.11 must be Linear\(84, 10\)",
        ),
        (
            nn.Sequential(*[nn.GELU() if isinstance(m, nn.ReLU) else m for m in LeNet()]),
            ValueError,
            "GELU",
        ),
        (
            nn.Sequential(
                *[nn.MaxPool2d(3) if isinstance(m, nn.MaxPool2d) else m for m in LeNet()]
            ),
            ValueError,
            "2 x 2 pooling",
        ),
        (nan_lenet(), ValueError, r"model.fc2.weight holds NaN"),
    ],
)
def test_bad_models(model, error, match):
    with pytest.raises(error, match=match):
        DrawDigit(model)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"examples": "digits"}, TypeError, "examples must be an array"),
        ({"examples": np.zeros((2, 32, 32))}, ValueError, r"examples must have shape"),
        ({"examples": np.zeros((0, 28, 28))}, ValueError, "examples must hold 1 to 12"),
        ({"examples": np.zeros((13, 28, 28))}, ValueError, "examples must hold 1 to 12"),
        ({"examples": np.full((1, 28, 28), -0.42)}, ValueError, "not standardised"),
        ({"examples": np.full((1, 28, 28), np.nan)}, ValueError, "examples must hold raw"),
        ({"examples": np.zeros((1, 28, 28), dtype=np.int64)}, TypeError, "uint8 or float"),
        ({"labels": [1]}, ValueError, "labels need examples"),
        ({"examples": np.zeros((2, 28, 28)), "labels": [1]}, ValueError, "one class per"),
        ({"examples": np.zeros((1, 28, 28)), "labels": [10]}, ValueError, "classes 0-9"),
        ({"examples": np.zeros((1, 28, 28)), "labels": 3}, TypeError, "labels must be"),
        ({"std": 0}, ValueError, "std must be a finite positive"),
        ({"std": float("inf")}, ValueError, "std must be"),
        ({"mean": "0.1"}, TypeError, "mean must be a number"),
        ({"mean": True}, TypeError, "mean must be a number"),
        ({"title": 3}, TypeError, "title must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DrawDigit(LeNet(), **kwargs)

"""Diagrams of chapters 12-14: the shapes and numbers drawn equal what torch and the library
compute (a conv layer's forward, Grad-CAM's hooks, cnnbook.attacks.fgsm)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from cnnbook.attacks import fgsm, input_gradient
from cnnbook.diagrams.attribution import (
    feature_map_diagram,
    fgsm_diagram,
    grad_cam_diagram,
    tiny_fgsm_example,
)
from cnnbook.diagrams.style import diagram_texts
from cnnbook.interpret import grad_cam_from_scratch


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 5, 3, stride=2, padding=1),  # "2": (5, 8, 8) for a 16 x 16 input
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 4),
    ).eval()


# --------------------------------------------------------------------------- feature maps


@pytest.mark.parametrize(("stride", "padding"), [(2, 3), (1, 0)])
def test_feature_map_labels_are_the_layers_forward_shapes(stride, padding):
    torch.manual_seed(1)
    layer = nn.Conv2d(1, 16, 7, stride=stride, padding=padding)
    image = torch.rand(1, 28, 28)
    out = layer(image[None])
    texts = diagram_texts(feature_map_diagram(layer, image, channel=5))
    h, w = out.shape[2:]
    assert "input 1\u00d728\u00d728" in texts
    assert f"16 maps {h}\u00d7{w}" in texts
    assert f"output 16\u00d7{h}\u00d7{w}" in texts
    assert "16 kernels\n1\u00d77\u00d77 each" in texts
    assert f"stride {stride}, padding {padding}" in texts
    assert "channel 5" in texts and "filter 5's\nresponse" in texts


def test_feature_map_shows_the_channels_real_response():
    torch.manual_seed(2)
    layer = nn.Conv2d(3, 4, 3, padding=1)
    image = torch.rand(3, 10, 10)
    fig = feature_map_diagram(layer, image, channel=2)
    shown = fig.axes[0].get_images()[1].get_array()  # the input, then the channel's map
    expected = layer(image[None])[0, 2].detach().numpy()
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(np.asarray(shown), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((nn.Linear(3, 3), torch.rand(1, 8, 8)), TypeError, "layer"),
        ((nn.Conv2d(1, 4, 3), "image"), TypeError, "image"),
        ((nn.Conv2d(1, 4, 3), torch.rand(2, 1, 8, 8)), ValueError, "image"),
        ((nn.Conv2d(3, 4, 3), torch.rand(1, 8, 8)), ValueError, "channels"),
        ((nn.Conv2d(1, 4, 3), torch.rand(1, 8, 8), 4), ValueError, "channel"),
        ((nn.Conv2d(1, 4, 3), torch.rand(1, 8, 8), 1.0), TypeError, "channel"),
    ],
)
def test_feature_map_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        feature_map_diagram(*args)


# --------------------------------------------------------------------------- Grad-CAM


def test_grad_cam_shapes_and_map_match_the_library():
    model = _small_cnn()
    x = torch.rand(1, 3, 16, 16)
    fig = grad_cam_diagram(model, "2", x, target=1)
    texts = diagram_texts(fig)
    acts = {}
    model[2].register_forward_hook(lambda m, i, o: acts.update(A=o))
    model(x)
    k, h, w = acts["A"].shape[1:]
    assert (k, h, w) == (5, 8, 8)
    assert "x: 3\u00d716\u00d716" in texts
    assert f"A: {k}\u00d7{h}\u00d7{w}" in texts
    assert f"\u2202y_c/\u2202A: {k}\u00d7{h}\u00d7{w}" in texts
    assert f"\u03b1: {k}" in texts
    assert f"ReLU(\u03a3 \u03b1_k A_k)\n{h}\u00d7{w}" in texts
    assert "upsampled to\n16\u00d716" in texts and "score y_c\nc = 1" in texts
    cam = grad_cam_from_scratch(model, "2", x, 1)
    shown = np.asarray(fig.axes[0].get_images()[1].get_array())  # photo, map, photo, heat
    top = cam.max()
    expected = (cam - cam.min()) / (top - cam.min()) if top > cam.min() else np.zeros_like(cam)
    np.testing.assert_allclose(shown, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("layer", "x", "target", "error", "match"),
    [
        ("nope", torch.rand(1, 3, 16, 16), 0, ValueError, "nope"),
        ("6", torch.rand(1, 3, 16, 16), 0, ValueError, "feature map"),
        ("2", torch.rand(1, 3, 16, 16), 4, ValueError, "target"),
        ("2", torch.rand(1, 3, 16, 16), -1, ValueError, "target"),
        ("2", torch.rand(2, 3, 16, 16), 0, ValueError, "x must be one image"),
        ("2", [1.0], 0, TypeError, "x must be"),
    ],
)
def test_grad_cam_rejects_bad_arguments(layer, x, target, error, match):
    with pytest.raises(error, match=match):
        grad_cam_diagram(_small_cnn(), layer, x, target)


def test_grad_cam_leaves_no_hook_behind():
    model = _small_cnn()
    grad_cam_diagram(model, "2", torch.rand(1, 3, 16, 16), 0)
    with pytest.raises(ValueError):
        grad_cam_diagram(model, "2", torch.rand(1, 3, 16, 16), 9)
    assert not model[2]._forward_hooks


# --------------------------------------------------------------------------- FGSM


def _grid_numbers(texts: list[str], title: str, n: int) -> np.ndarray:
    """The n cell values drawn just before the grid's title."""
    i = texts.index(title)
    return np.array([float(t) for t in texts[i - n : i]])


@pytest.mark.parametrize("epsilon", [0.15, 0.3])
def test_fgsm_numbers_are_the_librarys(epsilon):
    model, x, y = tiny_fgsm_example()
    texts = diagram_texts(fgsm_diagram(model, x, y, epsilon))
    sign = input_gradient(model, x, y).sign().flatten().numpy()
    x_adv = fgsm(model, x, y, epsilon).flatten().numpy()
    np.testing.assert_allclose(_grid_numbers(texts, "x", 9), x.flatten().numpy(), atol=0.005)
    np.testing.assert_array_equal(_grid_numbers(texts, "sign(\u2207\u2093L)", 9), sign)
    stepped = _grid_numbers(texts, f"x + {epsilon:g}\u00b7sign", 9)
    np.testing.assert_allclose(stepped, x.flatten().numpy() + epsilon * sign, atol=0.005)
    np.testing.assert_allclose(_grid_numbers(texts, "clip to [0, 1]", 9), x_adv, atol=0.005)
    assert f"L\u221e ball, radius {epsilon:g}" in texts


def test_tiny_fgsm_example_clips_at_both_ends():
    model, x, y = tiny_fgsm_example()
    sign = input_gradient(model, x, y).sign()
    stepped = x + 0.15 * sign
    assert (stepped < 0).any() and (stepped > 1).any(), "the default example shows clipping"


@pytest.mark.parametrize(
    ("x", "y", "epsilon", "error", "match"),
    [
        (torch.rand(1, 1, 6, 6), torch.tensor([0]), 0.1, ValueError, "x must be one small"),
        (torch.rand(2, 1, 3, 3), torch.tensor([0, 1]), 0.1, ValueError, "x must be one small"),
        (torch.rand(1, 3, 3, 3), torch.tensor([0]), 0.1, ValueError, "x"),
        (torch.rand(1, 1, 3, 3), torch.tensor([5]), 0.1, ValueError, "y"),
        (torch.rand(1, 1, 3, 3), torch.tensor([0]), -0.1, ValueError, "epsilon"),
    ],
)
def test_fgsm_rejects_bad_arguments(x, y, epsilon, error, match):
    model, _, _ = tiny_fgsm_example()
    with pytest.raises(error, match=match):
        fgsm_diagram(model, x, y, epsilon)

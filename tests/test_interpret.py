"""cnnbook.interpret: attribution maps against Captum and autograd, photos, bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnbook import interpret
from cnnbook.interpret import (
    grad_cam,
    grad_cam_from_scratch,
    guided_grad_cam,
    integrated_gradients,
    normalize_map,
    occlusion,
    preprocess,
    resolve_layer,
    saliency,
    top_k,
)
from cnnbook.photos import square_photo
from cnnbook.pretrained import IMAGENET_MEAN, IMAGENET_STD, imagenet_categories, weights_file


def small_cnn(seed: int = 0, activation: type[nn.Module] = nn.ReLU, classes: int = 5) -> nn.Module:
    """x: (1, 3, H, W) -> logits (1, classes); layers named conv1, conv2, fc."""
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(3, 4, 3, padding=1))
    model.add_module("act1", activation())
    model.add_module("conv2", nn.Conv2d(4, 6, 3, padding=1, stride=2))
    model.add_module("act2", activation())
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(6, classes))
    return model.eval()


def image_tensor(seed: int = 0, H: int = 12, W: int = 12) -> torch.Tensor:
    return torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _tiny_and_tidy(one_thread):
    """One torch thread (tiny tensors) and no figure left open after a test."""
    yield
    plt.close("all")


# --------------------------------------------------------------------------- Grad-CAM


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    H=st.integers(6, 20),
    W=st.integers(6, 20),
    layer=st.sampled_from(["conv1", "act1", "conv2", "act2"]),
    target=st.integers(0, 4),
    relu=st.booleans(),
)
def test_grad_cam_from_scratch_matches_captum(seed, H, W, layer, target, relu):
    model = small_cnn(seed)
    x = image_tensor(seed, H, W)
    ours = grad_cam_from_scratch(model, layer, x, target, relu=relu)
    module = model.get_submodule(layer)
    captum = LayerGradCam(model, module).attribute(
        x.clone().requires_grad_(True), target=target, relu_attributions=relu
    )[0, 0]
    assert ours.shape == tuple(captum.shape)
    assert np.abs(ours - captum.detach().numpy()).max() < 1e-5
    wrapped = grad_cam(model, module, x, target, relu=relu, upsample=False, normalize=False)
    assert np.abs(ours - wrapped).max() < 1e-5


def test_grad_cam_upsamples_and_normalises():
    model, x = small_cnn(1), image_tensor(1, 16, 12)
    with_relu = grad_cam(model, "conv2", x, 2)
    assert with_relu.shape == (16, 12)
    assert with_relu.min() >= 0 and np.isclose(with_relu.max(), 1.0)
    signed = grad_cam(model, "conv2", x, 2, relu=False)
    assert signed.shape == (16, 12) and np.isclose(np.abs(signed).max(), 1.0)
    raw = grad_cam(model, "conv2", x, 2, relu=False, normalize=False)
    assert np.allclose(signed, raw / np.abs(raw).max(), atol=1e-6)


def test_grad_cam_leaves_model_untouched():
    model, x = small_cnn(2), image_tensor(2)
    before = [p.detach().clone() for p in model.parameters()]
    grad_cam_from_scratch(model, "conv2", x, 0)
    grad_cam(model, "conv2", x, 0)
    assert all(p.grad is None for p in model.parameters()), "no gradient left on the weights"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not model.conv2._forward_hooks, "the forward hook must be removed"


def test_resolve_layer_by_name_and_module():
    model = small_cnn()
    assert resolve_layer(model, "conv2") == ("conv2", model.conv2)
    assert resolve_layer(model, model.conv1) == ("conv1", model.conv1)


# --------------------------------------------------------------------------- other methods


def test_saliency_is_max_abs_gradient():
    model, x = small_cnn(3), image_tensor(3)
    x_leaf = x.clone().requires_grad_(True)
    model(x_leaf)[0, 1].backward()
    expected = x_leaf.grad[0].abs().max(dim=0).values.numpy()
    got = saliency(model, x, 1, normalize=False)
    assert np.allclose(got, expected, atol=1e-7)
    shown = saliency(model, x, 1)
    assert shown.shape == (12, 12) and shown.min() >= 0 and shown.max() <= 1


def test_integrated_gradients_completeness():
    model, x = small_cnn(4), image_tensor(4)
    raw, delta = integrated_gradients(model, x, 3, n_steps=64, normalize=False, return_delta=True)
    with torch.no_grad():
        gap = float(model(x)[0, 3] - model(torch.zeros_like(x))[0, 3])
    assert raw.shape == (12, 12)
    assert isinstance(delta, float)
    assert abs(raw.sum() - gap) == pytest.approx(abs(delta), abs=1e-4)
    assert abs(delta) < 0.05 * abs(gap) + 1e-4, "64 steps should nearly meet completeness"
    shown = integrated_gradients(model, x, 3, n_steps=8)
    assert shown.shape == (12, 12) and shown.min() >= -1 and shown.max() <= 1


def test_integrated_gradients_of_a_linear_model_is_exact():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    x = image_tensor(5, 4, 4)
    baseline = torch.full_like(x, 0.5)
    raw = integrated_gradients(model, x, 1, baseline=baseline, n_steps=4, normalize=False)
    w = model[1].weight[1].detach().view(3, 4, 4)
    expected = ((x[0] - baseline[0]) * w).sum(dim=0).numpy()  # gradient is constant
    assert np.allclose(raw, expected, atol=1e-5)


def test_occlusion_of_a_sum_model():
    """score = sum of all pixels: occluding a patch with 0 drops the score by the patch sum."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1, bias=False)).eval()
    nn.init.ones_(model[1].weight)
    x = image_tensor(6, 8, 8)
    raw = occlusion(model, x, 0, window=4, stride=4, normalize=False)
    patch_sums = x[0].sum(dim=0).view(2, 4, 2, 4).sum(dim=(1, 3))  # (2, 2)
    expected = np.kron(patch_sums.numpy(), np.ones((4, 4)))
    assert np.allclose(raw, expected, atol=1e-5)
    shown = occlusion(model, x, 0, window=4, stride=4)
    assert np.isclose(np.abs(shown).max(), 1.0)


@pytest.mark.parametrize(("H", "W", "window", "stride"), [(8, 8, 4, 4), (10, 7, 4, 3)])
def test_occlusion_cost_covers_the_edges(H, W, window, stride):
    """One pass per position; a last, clipped window when the stride does not fit."""
    model = small_cnn(11)
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(len(output)))
    occlusion(model, image_tensor(11, H, W), 0, window=window, stride=stride, batch_size=3)
    per_side = [-(-(side - window) // stride) + 1 for side in (H, W)]
    assert sum(seen) - 2 == per_side[0] * per_side[1], "two unoccluded passes: check, reference"


def test_guided_grad_cam_guides_relu6_like_relu():
    """No activation reaches 6 here, so ReLU6 and ReLU nets must give the same guided map."""
    x, target = image_tensor(10), 4
    relu_net = small_cnn(10, nn.ReLU)
    relu6_net = small_cnn(10, nn.ReLU6)
    assert relu6_net.conv1(x).max() < 6 and relu6_net[:3](x).max() < 6
    a = guided_grad_cam(relu_net, "conv2", x, target, normalize=False)
    b = guided_grad_cam(relu6_net, "conv2", x, target, normalize=False)
    assert a.shape == (12, 12) and a.min() >= 0 and b.max() > 0
    assert np.allclose(a, b, rtol=1e-5, atol=1e-6 * b.max())
    # without the guided rule (plain gradient x Grad-CAM) the map is clearly different
    x_leaf = x.clone().requires_grad_(True)
    relu6_net(x_leaf)[0, target].backward()
    cam = torch.from_numpy(grad_cam(relu6_net, "conv2", x, target, normalize=False))
    plain = (x_leaf.grad[0] * cam).abs().max(dim=0).values.numpy()
    assert np.abs(plain - b).max() > 0.1 * b.max()


def test_guided_copy_keeps_outputs_and_model():
    model = small_cnn(8, nn.ReLU6)
    x = 3 * image_tensor(8)  # large enough that some activations exceed 6
    guided = interpret.guided_copy(model)
    assert torch.equal(model(x), guided(x))
    assert isinstance(model.act1, nn.ReLU6), "the original model is not modified"
    assert not any(isinstance(m, nn.ReLU6) for m in guided.modules())


# --------------------------------------------------------------------------- normalisation


def test_normalize_map():
    a = np.array([[-4.0, 2.0], [1.0, 0.0]])
    assert np.allclose(normalize_map(a, signed=True, percentile=100), a / 4)
    assert np.allclose(normalize_map(a, signed=False, percentile=100), np.abs(a) / 4)
    assert np.array_equal(normalize_map(np.zeros((3, 3)), signed=True), np.zeros((3, 3)))
    big = np.ones((10, 10))
    big[0, 0] = 1000.0
    shown = normalize_map(big, signed=False, percentile=90)
    assert shown[0, 0] == 1.0 and np.allclose(shown[1:, 1:], 1.0), "outlier clipped"


# --------------------------------------------------------------------------- photos, labels


def test_square_photo_and_preprocess():
    photo = np.zeros((30, 50, 3), dtype=np.uint8)
    photo[:, 10:40] = 200  # the centred 30 x 30 square is exactly this band
    square = square_photo(photo, size=15)
    assert square.shape == (15, 15, 3) and square.dtype == np.float32
    assert np.allclose(square, 200 / 255, atol=1e-6)
    grey = square_photo(np.full((20, 20), 0.25), size=10)
    assert grey.shape == (10, 10, 3) and np.allclose(grey, 0.25)
    mean_colour = np.broadcast_to(np.array(IMAGENET_MEAN), (16, 16, 3))
    x = preprocess(mean_colour, size=8)
    assert x.shape == (1, 3, 8, 8) and x.dtype == torch.float32
    assert torch.allclose(x, torch.zeros_like(x), atol=1e-6)
    white = preprocess(np.ones((8, 8, 3)), size=8)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(white[0, :, 0, 0], expected, atol=1e-6)


def test_imagenet_categories():
    names = imagenet_categories()
    assert len(names) == 1000
    assert names[281] == "tabby" and names[285] == "Egyptian cat"


def test_top_k():
    model, x = small_cnn(9), image_tensor(9)
    best = top_k(model, x, k=3)
    assert [p.index for p in best] == model(x)[0].argsort(descending=True)[:3].tolist()
    assert best[0].name == f"class {best[0].index}"
    assert all(a.probability >= b.probability for a, b in zip(best[:-1], best[1:], strict=True))
    wide = small_cnn(9, classes=1000)
    assert top_k(wide, x, k=1)[0].name == imagenet_categories()[top_k(wide, x, k=1)[0].index]


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": "conv9"}, ValueError, "layer"),
        ({"layer": nn.Conv2d(3, 4, 3)}, ValueError, "layer"),
        ({"layer": 3}, TypeError, "layer"),
        ({"layer": "fc"}, ValueError, "feature map"),
        ({"target": 5}, ValueError, "target"),
        ({"target": -1}, ValueError, "target"),
        ({"target": 1.0}, TypeError, "target"),
        ({"x": np.zeros((1, 3, 8, 8), np.float32)}, TypeError, "x"),
        ({"x": torch.zeros(1, 3, 8, 8, dtype=torch.int64)}, TypeError, "x"),
        ({"x": torch.zeros(3, 8, 8)}, ValueError, "x"),
        ({"x": torch.zeros(2, 3, 8, 8)}, ValueError, "x"),
        ({"model": "resnet"}, TypeError, "model"),
    ],
)
def test_grad_cam_rejects_bad_arguments(kwargs, error, match):
    args = {"model": small_cnn(), "layer": "conv2", "x": image_tensor(), "target": 0} | kwargs
    with pytest.raises(error, match=match):
        grad_cam(**args)
    with pytest.raises(error, match=match):
        grad_cam_from_scratch(**args)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x: saliency(m, x, 7), ValueError, "target"),
        (lambda m, x: saliency(m, x[0], 0), ValueError, "x"),
        (lambda m, x: guided_grad_cam(m, "nope", x, 0), ValueError, "layer"),
        (lambda m, x: integrated_gradients(m, x, 0, n_steps=1), ValueError, "n_steps"),
        (lambda m, x: integrated_gradients(m, x, 0, baseline=x[:, :2]), ValueError, "baseline"),
        (lambda m, x: integrated_gradients(m, x, 0, baseline=0.0), TypeError, "baseline"),
        (lambda m, x: occlusion(m, x, 0, window=13), ValueError, "window"),
        (lambda m, x: occlusion(m, x, 0, stride=0), ValueError, "stride"),
        (lambda m, x: occlusion(m, x, 0, window=4, stride=5), ValueError, "stride"),
        (
            lambda m, x: occlusion(m, x, 0, window=4, stride=2, baseline="grey"),
            TypeError,
            "baseline",
        ),
        (lambda m, x: top_k(m, x, k=6), ValueError, "k"),
        (lambda m, x: normalize_map(np.zeros(4), signed=True), ValueError, "attribution"),
        (
            lambda m, x: normalize_map(np.zeros((2, 2)), signed=True, percentile=0),
            ValueError,
            "percentile",
        ),
        (lambda m, x: normalize_map(np.zeros((2, 2)), signed=1), TypeError, "signed"),
    ],
)
def test_methods_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(small_cnn(), image_tensor())


@pytest.mark.parametrize(
    ("image", "error"),
    [
        (np.zeros((8, 8, 4), np.uint8), ValueError),
        (np.zeros((2, 8, 8, 3), np.uint8), ValueError),
        (np.full((8, 8, 3), 2.0), ValueError),
        (np.zeros((8, 8, 3), bool), TypeError),
        (np.zeros((8, 8, 3), complex), TypeError),
        ([[0, 1], [1, 0]], TypeError),
    ],
)
def test_photos_reject_bad_images(image, error):
    with pytest.raises(error, match="image"):
        square_photo(image)
    with pytest.raises(error, match="image"):
        preprocess(image)


def test_square_photo_rejects_bad_sizes():
    photo = np.zeros((8, 8, 3))
    with pytest.raises(TypeError, match="size"):
        square_photo(photo, size=2.5)


# --------------------------------------------------------------------------- pretrained model


def _weights_present() -> bool:
    return weights_file("mobilenet_v2", "IMAGENET1K_V1").is_file()


def test_pretrained_missing_offline_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="TORCH_HOME"):
        interpret.pretrained_mobilenet_v2()


@pytest.mark.skipif(not _weights_present(), reason="MobileNetV2 weights not in TORCH_HOME")
def test_pretrained_model_sees_the_cat():
    from cnnbook.photos import sample_photo

    model = interpret.pretrained_mobilenet_v2()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = preprocess(sample_photo("chelsea"))
    assert 281 <= top_k(model, x, k=1)[0].index <= 285, "chelsea is one of the cat classes"
    heat = grad_cam(model, "features.18", x, 285)
    assert heat.shape == (224, 224)
    ours = grad_cam_from_scratch(model, "features.18", x, 285)
    theirs = grad_cam(model, "features.18", x, 285, upsample=False, normalize=False)
    assert np.abs(ours - theirs).max() < 1e-5


def _cnn_with_batchnorm() -> nn.Module:
    """small_cnn with a BatchNorm and a Dropout: both behave differently in train mode."""
    model = small_cnn(seed=3)
    model.conv1 = nn.Sequential(model.conv1, nn.BatchNorm2d(4), nn.Dropout(0.5))
    with torch.no_grad():  # running statistics that differ from one image's statistics
        model.conv1[1].running_mean.uniform_(-1, 1)
        model.conv1[1].running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize(
    "attribute",
    [
        lambda m, x: saliency(m, x, 1),
        lambda m, x: integrated_gradients(m, x, 1, n_steps=8),
        lambda m, x: occlusion(m, x, 1, window=4, stride=4),
        lambda m, x: grad_cam(m, "conv2", x, 1),
        lambda m, x: grad_cam_from_scratch(m, "conv2", x, 1),
        lambda m, x: guided_grad_cam(m, "conv2", x, 1),
        lambda m, x: np.array([p.probability for p in top_k(m, x, k=3)]),
    ],
    ids=["saliency", "ig", "occlusion", "grad_cam", "from_scratch", "guided", "top_k"],
)
def test_attribution_of_a_model_left_in_training_mode_equals_eval_mode(attribute):
    model, x = _cnn_with_batchnorm(), image_tensor(seed=4)
    expected = attribute(model.eval(), x)
    model.train()
    model.conv1[2].eval()  # a submodule in its own mode must come back in it
    stats = model.conv1[1].running_mean.clone()
    got = attribute(model, x)
    assert np.allclose(got, expected, atol=1e-6), "train mode changed the explanation"
    assert torch.equal(model.conv1[1].running_mean, stats), "BatchNorm statistics moved"
    assert model.training and model.conv1[1].training and not model.conv1[2].training

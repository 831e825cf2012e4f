"""Architecture and block diagrams: their labels are the real module's forward shapes.

Each test runs its own forward pass (real tensors, plain calls of the sub-layers, no
hooks of the library) and compares the diagram's shape labels, in drawing order, and its
number of boxes, skips and merges with the module's.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from matplotlib.text import Text
from torch import nn

from cnnbook.diagrams.architecture import chain_diagram, trace_layers, unet_diagram
from cnnbook.diagrams.blocks import (
    dense_block_diagram,
    inception_diagram,
    residual_block_diagram,
    se_diagram,
)
from cnnbook.diagrams.style import MAX_WIDTH_IN, diagram_texts
from cnnbook.models.cifar_resnet import ConvBN, ResidualBlock, cifar_resnet
from cnnbook.models.densenet import DenseBlock
from cnnbook.models.inception import InceptionModule
from cnnbook.models.lenet import LeNet
from cnnbook.models.mobilenet import InvertedResidual
from cnnbook.models.resnet import BasicBlock, Bottleneck
from cnnbook.models.se import SqueezeExcitation
from cnnbook.models.unet import UNet


def shapes_drawn(fig) -> list[str]:
    texts = [t.get_text() for t in fig.findobj(Text) if t.get_gid() == "shape"]
    assert set(texts) <= set(diagram_texts(fig)), "every shape label is a drawn text"
    return texts


def count(fig, gid: str) -> int:
    return sum(p.get_gid() == gid for p in fig.axes[0].patches)


def text_of(t: torch.Tensor) -> str:
    return "×".join(str(d) for d in t.shape[1:])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_lenet_chain_shows_each_layers_output_shape():
    model = LeNet().eval()
    x = torch.randn(1, 1, 28, 28)
    expected, labels = [text_of(x)], []
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.Flatten, nn.Linear)):
                expected.append(text_of(x))
            if isinstance(layer, nn.Conv2d):
                labels.append(f"conv {layer.kernel_size[0]}×{layer.kernel_size[1]}, {x.shape[1]}")
    fig = chain_diagram(model, (1, 28, 28))
    assert shapes_drawn(fig) == expected == ["1×28×28", "6×28×28", "6×14×14", "16×10×10",
                                             "16×5×5", "400", "120", "84", "10"]  # fmt: skip
    texts = diagram_texts(fig)
    for label in labels:  # "conv 5×5, 6" with its ReLU on a second line
        assert sum(t.split("\n")[0] == label for t in texts) == 1
    assert [t for t in texts if t.startswith("fc")] == ["fc, 120\nReLU", "fc, 84\nReLU", "fc, 10"]
    assert count(fig, "skip") == 0
    assert not [t for t in fig.findobj(Text) if t.get_gid() == "group"], "LeNet has no stages"
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN


@pytest.mark.parametrize("blocks", [(1, 0, 1), (0, 2, 0)])
def test_resnet9_chain_has_its_stages_and_one_skip_per_residual_block(blocks):
    model = cifar_resnet(8, blocks).eval()
    x = torch.rand(1, 3, 32, 32)
    expected = [text_of(x)]
    with torch.no_grad():
        h = model.stem((x - model.mean) / model.std)
        expected.append(text_of(h))
        for stage in model.stages:
            for part in stage:  # ConvBN, max pool, residual blocks
                h = part(h)
                expected.append(text_of(h))
        h = model.pool(h)
        expected += [text_of(h), text_of(model.fc(h.flatten(1)))]
    fig = chain_diagram(model, (3, 32, 32))
    assert shapes_drawn(fig) == expected
    n_blocks = sum(isinstance(m, ResidualBlock) for m in model.modules())
    assert n_blocks == sum(blocks) and count(fig, "skip") == n_blocks
    assert sum(t.startswith("residual block") for t in diagram_texts(fig)) == n_blocks
    groups = {t.get_text() for t in fig.findobj(Text) if t.get_gid() == "group"}
    assert groups == {"stem"} | {f"stage {i + 1}" for i in range(len(model.stages))}
    n_convbn = sum(isinstance(m, ConvBN) for m in model.modules()) - 2 * n_blocks
    assert sum(t.startswith("conv 3×3") for t in diagram_texts(fig)) == n_convbn


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [({"base": 8, "depth": 3}, 48), ({"base": 4, "depth": 2, "skip": False}, 30)],
)
def test_unet_levels_show_the_forward_shapes(kwargs, size):
    model = UNet(3, 4, **kwargs).eval()
    x = torch.randn(1, 3, size, size)
    encoder, decoder = [], []
    with torch.no_grad():
        features, h = [], x
        for block in model.down:
            h = block(h)
            features.append(h)
            encoder.append(text_of(h))
            h = F.max_pool2d(h, 2)
        h = model.bottleneck(h)
        bottom = text_of(h)
        for up, feature in zip(model.ups, reversed(features), strict=True):
            h = up(h, feature)
            decoder.append(text_of(h))
        out = model.head(h)
    fig = unet_diagram(model, (3, size, size))
    assert shapes_drawn(fig) == [*encoder, bottom, *decoder]
    depth = kwargs["depth"]
    assert count(fig, "level") == 2 * depth + 1
    assert count(fig, "skip") == (depth if model.skip else 0)
    assert f"conv 1×1, 4 → {text_of(out)}" in diagram_texts(fig)
    assert f"input 3×{size}×{size}" in diagram_texts(fig)


def _basic_expected(block, x):
    a = block.relu(block.bn1(block.conv1(x)))
    b = block.bn2(block.conv2(a))
    return [a, b]


def _bottleneck_expected(block, x):
    a = block.relu(block.bn1(block.conv1(x)))
    b = block.relu(block.bn2(block.conv2(a)))
    return [a, b, block.bn3(block.conv3(b))]


@pytest.mark.parametrize(
    ("block", "C", "inner"),
    [
        (BasicBlock(16, 16), 16, _basic_expected),
        (BasicBlock(16, 32, stride=2), 16, _basic_expected),
        (BasicBlock(16, 16, residual=False), 16, _basic_expected),
        (Bottleneck(64, 16), 64, _bottleneck_expected),
        (Bottleneck(32, 16, stride=2), 32, _bottleneck_expected),
    ],
)
def test_resnet_blocks_show_their_layers_shortcut_and_sum(block, C, inner):
    block.eval()
    x = torch.randn(1, C, 12, 12)
    with torch.no_grad():
        expected = [x, *inner(block, x)]
        if block.shortcut is not None:
            expected.append(block.shortcut(x))
        expected.append(block(x))
    fig = residual_block_diagram(block, (C, 12, 12))
    assert shapes_drawn(fig) == [text_of(t) for t in expected]
    assert count(fig, "layer") == sum(isinstance(m, nn.Conv2d) for m in block.modules())
    assert count(fig, "skip") == count(fig, "merge") == int(block.residual)
    assert ("identity" in diagram_texts(fig)) == (block.residual and block.shortcut is None)


@pytest.mark.parametrize(("C_in", "C_out", "stride"), [(8, 8, 1), (8, 16, 2)])
def test_inverted_residual_shows_expand_depthwise_project(C_in, C_out, stride):
    block = InvertedResidual(C_in, C_out, stride).eval()
    x = torch.randn(1, C_in, 10, 10)
    expected = [text_of(x)]
    with torch.no_grad():
        h = x
        for layer in block.block:
            h = layer(h)
            if isinstance(layer, nn.Conv2d):
                expected.append(text_of(h))
        expected.append(text_of(block(x)))
    fig = residual_block_diagram(block, (C_in, 10, 10))
    assert shapes_drawn(fig) == expected
    texts = [t.split("\n")[0] for t in diagram_texts(fig)]
    assert f"dw conv 3×3, {6 * C_in}" + (", /2" if stride == 2 else "") in texts
    assert count(fig, "skip") == count(fig, "merge") == int(block.use_shortcut)


def test_cifar_residual_block_is_drawn_with_identity_skip():
    block = ResidualBlock(8).eval()
    fig = residual_block_diagram(block, (8, 6, 6))
    assert shapes_drawn(fig) == ["8×6×6"] * 4 and count(fig, "skip") == 1
    assert count(fig, "layer") == 2


def test_inception_has_four_branches_joined_by_concat():
    module = InceptionModule(24, 8, 12, 16, 4, 8, 8).eval()
    x = torch.randn(1, 24, 9, 9)
    expected = [text_of(x)]
    with torch.no_grad():
        for branch in (module.branch1, module.branch3, module.branch5, module.branch_pool):
            h = x
            leaves = [m for m in branch.modules() if not list(m.children())]  # nested Sequentials
            for layer in leaves:
                h = layer(h)
                if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                    expected.append(text_of(h))
        expected.append(text_of(module(x)))
    fig = inception_diagram(module, (24, 9, 9))
    assert shapes_drawn(fig) == expected
    assert expected[-1] == "40×9×9"  # 8 + 16 + 8 + 8 channels
    n_layers = sum(isinstance(m, (nn.Conv2d, nn.MaxPool2d)) for m in module.modules())
    assert count(fig, "layer") == n_layers == 7
    assert count(fig, "merge") == 1 and "concat" in diagram_texts(fig)
    assert count(fig, "skip") == 0


def test_se_block_shows_squeeze_excitation_and_scale():
    block = SqueezeExcitation(32, reduction=4).eval()
    x = torch.randn(1, 32, 7, 7)
    with torch.no_grad():
        s = x.mean(dim=(2, 3))
        hidden = block.fc1(s)
        gates = block.fc2(block.relu(hidden))
        out = block(x)
    fig = se_diagram(block, (32, 7, 7))
    assert shapes_drawn(fig) == [
        text_of(x),
        text_of(s),
        text_of(hidden),
        text_of(gates),
        text_of(out),
    ]
    assert ["fc, 8\nReLU", "fc, 32\nsigmoid"] == [
        t for t in diagram_texts(fig) if t.startswith("fc")
    ]
    assert count(fig, "skip") == count(fig, "merge") == 1 and "×" in diagram_texts(fig)


def test_dense_block_shows_the_growing_stack():
    block = DenseBlock(num_layers=3, C_in=10, growth_rate=4).eval()
    x = torch.randn(1, 10, 6, 6)
    expected = []
    with torch.no_grad():
        features = [x]
        for layer in block.layers:
            stack = torch.cat(features, dim=1)
            new = layer(stack)
            expected += [text_of(stack), text_of(new)]
            features.append(new)
        expected.append(text_of(block(x)))
    fig = dense_block_diagram(block, (10, 6, 6))
    assert shapes_drawn(fig) == expected
    assert expected[-1] == "22×6×6"
    assert count(fig, "layer") == len(block.layers) == 3
    assert "layer 2\nconv 1×1, 16 → conv 3×3, 4" in diagram_texts(fig)


def test_tracing_restores_training_mode_and_lists_calls_in_order():
    model = LeNet().train()
    calls = trace_layers(model, (1, 28, 28))
    assert model.training and all(m.training for m in model.modules())
    assert [c.name for c in calls][:4] == ["", "conv1", "relu1", "pool1"]
    assert calls[0].out_shape == (10,) and calls[1].in_shapes == ((1, 28, 28),)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: chain_diagram("LeNet", (1, 28, 28)), TypeError, "model"),
        (lambda: chain_diagram(LeNet(), (1, 28)), ValueError, "input_shape"),
        (lambda: chain_diagram(LeNet(), [1, 28, 0]), ValueError, r"input_shape\[2\]"),
        (lambda: chain_diagram(LeNet(), "1x28x28"), TypeError, "input_shape"),
        (lambda: chain_diagram(LeNet(), (1, 28, 28), per_row=1), ValueError, "per_row"),
        # 8 x 8 -> conv1 8 x 8 -> pool 4 x 4: too small for conv2's 5 x 5 kernel
        (lambda: chain_diagram(LeNet(), (1, 8, 8)), ValueError, "'conv2' \\(Conv2d\\)"),
        (lambda: unet_diagram(LeNet(), (1, 28, 28)), TypeError, "UNet"),
        (lambda: residual_block_diagram(LeNet(), (1, 28, 28)), TypeError, "block"),
        (lambda: residual_block_diagram(BasicBlock(8, 8), (4, 9, 9)), ValueError, "'conv1'"),
        (lambda: inception_diagram(SqueezeExcitation(8), (8, 4, 4)), TypeError, "Inception"),
        (lambda: inception_diagram(InceptionModule(8, *[2] * 6), (3, 5, 5)), ValueError, "branch1"),
        (lambda: se_diagram(SqueezeExcitation(8), (5, 4, 4)), ValueError, "'fc1' \\(Linear\\)"),
        (lambda: dense_block_diagram(DenseBlock(2, 4, 2), (3, 4, 4)), ValueError, "layers.0"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()

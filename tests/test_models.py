"""Tests of cnnbook.models: the book's networks against torchvision and blocks against
reference computations written with torch.nn.functional.

The strongest check is a transplant: torchvision's randomly initialised weights are
loaded into the book's model by position (cnnbook.models.weights.load_by_position),
and both networks must then give the same outputs on a random input.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models import convnext as tv_convnext
from torchvision.models import densenet as tv_densenet
from torchvision.models import mobilenetv2 as tv_mobilenet
from torchvision.ops import SqueezeExcitation as TvSqueezeExcitation

from cnnbook.models.alexnet import AlexNet
from cnnbook.models.convnext import ConvNeXtBlock, drop_path
from cnnbook.models.densenet import DenseBlock, DenseLayer, DenseNet, Transition, densenet121
from cnnbook.models.inception import InceptionModule, conv_unit
from cnnbook.models.lenet import LeNet
from cnnbook.models.mobilenet import DepthwiseSeparable, InvertedResidual
from cnnbook.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from cnnbook.models.se import SpatialAttention, SqueezeExcitation
from cnnbook.models.vgg import CONFIGS, VGG, make_features, vgg11, vgg16
from cnnbook.models.weights import load_by_position

FEW = settings(max_examples=15, deadline=None, database=None)
TV = torchvision.models


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(build, **kwargs) -> nn.Module:
    """Build a model without allocating or initialising its weights (fast)."""
    with torch.device("meta"):
        return build(**kwargs)


def randomise(module: nn.Module) -> nn.Module:
    """Non-trivial parameters and BatchNorm statistics, so that a transplant is tested."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return module


def assert_transplant(mine: nn.Module, theirs: nn.Module, x: torch.Tensor, atol=1e-5) -> None:
    """Load theirs into mine by position; both must compute the same function in eval mode."""
    load_by_position(mine, theirs.state_dict())
    mine.eval()
    theirs.eval()
    with torch.no_grad():
        expected, got = theirs(x), mine(x)
    assert got.shape == expected.shape
    scale = expected.abs().max().clamp_min(1.0)
    assert torch.allclose(got, expected, atol=atol * scale, rtol=1e-5), (
        f"largest difference {(got - expected).abs().max():.3g}"
    )


# ----------------------------------------------------------------------------- whole networks


@pytest.mark.parametrize(
    ("build", "reference", "expected"),
    [
        (AlexNet, TV.alexnet, 61_100_840),
        (vgg11, TV.vgg11, 132_863_336),
        (vgg16, TV.vgg16, 138_357_544),
        (resnet18, TV.resnet18, 11_689_512),
        (resnet34, TV.resnet34, 21_797_672),
        (resnet50, TV.resnet50, 25_557_032),
        (densenet121, TV.densenet121, 7_978_856),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_parameter_counts_and_shapes_match_torchvision(build, reference, expected):
    mine, theirs = on_meta(build), on_meta(reference)
    assert n_params(mine) == n_params(theirs) == expected
    own, other = mine.state_dict(), theirs.state_dict()
    assert [t.shape for t in own.values()] == [t.shape for t in other.values()]
    x = torch.zeros(2, 3, 224, 224, device="meta")
    mine.eval()
    theirs.eval()
    assert mine(x).shape == theirs(x).shape == (2, 1000)


def test_num_classes_changes_only_the_classifier():
    for build in (AlexNet, vgg11, resnet18, resnet50, densenet121):
        small = on_meta(build, num_classes=10)
        assert small(torch.zeros(1, 3, 64, 64, device="meta")).shape == (1, 10)


@pytest.mark.parametrize(
    ("build", "reference", "size"),
    [
        (resnet18, TV.resnet18, 64),
        (resnet50, TV.resnet50, 64),
        (AlexNet, TV.alexnet, 64),
        (densenet121, TV.densenet121, 32),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_torchvision_weights_load_by_position(build, reference, size):
    torch.manual_seed(1)
    theirs = reference()
    assert_transplant(build(), theirs, torch.randn(2, 3, size, size))


def test_vgg16_torchvision_weights_load_by_position():
    theirs = TV.vgg16()  # the book's model is built on meta and only receives the weights
    mine = on_meta(vgg16).to_empty(device="cpu")
    assert_transplant(mine, theirs, torch.randn(1, 3, 32, 32))


def test_alexnet_two_gpu_layout_has_the_papers_60_million():
    model = on_meta(AlexNet, two_gpu=True)
    assert n_params(model) == 60_965_224
    conv2 = model.features.conv2
    assert conv2.groups == 2 and conv2.weight.shape == (256, 48, 5, 5)
    assert model(torch.zeros(1, 3, 227, 227, device="meta")).shape == (1, 1000)


def test_vgg_configs_and_batch_norm():
    assert sum(isinstance(c, int) for c in CONFIGS["vgg16"]) == 13
    assert n_params(on_meta(VGG, config="vgg19")) == n_params(on_meta(TV.vgg19))
    with_bn = on_meta(VGG, config="vgg11", batch_norm=True)
    assert n_params(with_bn) == n_params(on_meta(TV.vgg11_bn))
    tiny = make_features([8, "M", 16], in_channels=1)
    assert tiny(torch.zeros(1, 1, 10, 10)).shape == (1, 16, 5, 5)


def test_resnet_custom_stages_and_plain_variant():
    model = ResNet(BasicBlock, [1, 1, 1], widths=[8, 16, 32], num_classes=5, in_channels=1)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)
    plain = ResNet(BasicBlock, [2, 2, 2, 2], residual=False)
    assert all(
        not b.residual and b.shortcut is None for b in plain.modules() if hasattr(b, "residual")
    )
    # without projection shortcuts the plain network has fewer parameters
    shortcut_params = sum(
        n_params(b.shortcut) for b in resnet18().modules() if getattr(b, "shortcut", None)
    )
    assert n_params(plain) == 11_689_512 - shortcut_params


def test_zero_init_residual_makes_every_block_start_as_identity():
    model = resnet18(zero_init_residual=True).eval()
    block = model.stages[0][1]  # identity shortcut: 64 -> 64, stride 1
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), F.relu(x))
    assert all(
        float(b.last_bn.weight.detach().abs().max()) == 0
        for b in model.stages.modules()
        if isinstance(b, BasicBlock)
    )


# ----------------------------------------------------------------------------- ResNet blocks


def basic_block_reference(block: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)), written with functional ops."""

    def bn(m: nn.BatchNorm2d, t):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    s = block.conv1.stride
    out = F.relu(bn(block.bn1, F.conv2d(x, block.conv1.weight, stride=s, padding=1)))
    out = bn(block.bn2, F.conv2d(out, block.conv2.weight, padding=1))
    if block.shortcut is not None:
        conv, norm = block.shortcut
        x = bn(norm, F.conv2d(x, conv.weight, stride=conv.stride))
    return F.relu(out + x) if block.residual else F.relu(out)


@pytest.mark.parametrize(
    ("C_in", "C_out", "stride", "residual"),
    [(8, 8, 1, True), (8, 16, 2, True), (8, 8, 2, True), (8, 16, 2, False)],
)
def test_basic_block_matches_reference(C_in, C_out, stride, residual):
    block = randomise(BasicBlock(C_in, C_out, stride, residual=residual)).eval()
    x = torch.randn(2, C_in, 9, 9)
    with torch.no_grad():
        got = block(x)
        expected = basic_block_reference(block, x)
    assert got.shape == (2, C_out, (9 - 1) // stride + 1, (9 - 1) // stride + 1)
    assert torch.allclose(got, expected, atol=1e-5)
    assert (block.shortcut is not None) == (residual and (stride != 1 or C_in != C_out))


@FEW
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 3), st.integers(3, 12), st.booleans())
def test_block_shapes(C_in, width, stride, size, bottleneck):
    block = Bottleneck(C_in, width, stride) if bottleneck else BasicBlock(C_in, width, stride)
    out = block.eval()(torch.randn(1, C_in, size, size))
    H_out = (size - 1) // stride + 1
    assert out.shape == (1, block.out_channels, H_out, H_out)
    assert block.out_channels == width * (4 if bottleneck else 1)


def test_bottleneck_stride_placement_and_cost():
    v15, v1 = Bottleneck(256, 64, 2), Bottleneck(256, 64, 2, stride_in_1x1=True)
    assert v15.conv2.stride == (2, 2) and v15.conv1.stride == (1, 1)
    assert v1.conv1.stride == (2, 2) and v1.conv2.stride == (1, 1)
    assert n_params(v15) == n_params(v1)
    # the bottleneck on 256 channels costs about as much as a basic block on 64
    conv_weights = sum(
        m.weight.numel() for m in Bottleneck(256, 64).modules() if isinstance(m, nn.Conv2d)
    )
    assert conv_weights == 256 * 64 + 9 * 64 * 64 + 64 * 256 == 69_632
    assert Bottleneck(64, 16, expansion=2).out_channels == 32


def test_residual_jacobian_is_identity_plus_branch_jacobian():
    block = randomise(BasicBlock(2, 2)).eval()

    def branch(x):
        return block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))

    x = torch.randn(1, 2, 3, 3)
    J_F = torch.autograd.functional.jacobian(branch, x).reshape(18, 18)
    J = torch.autograd.functional.jacobian(lambda t: branch(t) + t, x).reshape(18, 18)
    assert torch.allclose(J, torch.eye(18) + J_F, atol=1e-6)


# ----------------------------------------------------------------------------- other blocks


def test_inception_module_matches_reference():
    module = randomise(InceptionModule(12, 4, 3, 5, 2, 3, 6)).eval()
    x = torch.randn(2, 12, 7, 7)

    def unit(seq, t, k):
        conv = seq[0]
        return F.relu(F.conv2d(t, conv.weight, conv.bias, padding=k // 2))

    with torch.no_grad():
        got = module(x)
        b1 = unit(module.branch1, x, 1)
        b3 = unit(module.branch3[1], unit(module.branch3[0], x, 1), 3)
        b5 = unit(module.branch5[1], unit(module.branch5[0], x, 1), 5)
        bp = unit(module.branch_pool[1], F.max_pool2d(x, 3, 1, 1), 1)
    assert got.shape == (2, 4 + 5 + 3 + 6, 7, 7) and module.out_channels == 18
    assert torch.allclose(got, torch.cat([b1, b3, b5, bp], 1), atol=1e-5)


def test_inception_3a_size():
    module = InceptionModule(192, 64, 96, 128, 16, 32, 32)
    assert n_params(module) == 163_696
    assert module(torch.zeros(1, 192, 28, 28)).shape == (1, 256, 28, 28)
    with_bn = InceptionModule(192, 64, 96, 128, 16, 32, 32, batch_norm=True)
    assert isinstance(with_bn.branch1[1], nn.BatchNorm2d) and with_bn.branch1[0].bias is None


def test_dense_block_and_transition_match_torchvision():
    mine = DenseBlock(3, 16, 8, bn_size=4)
    theirs = randomise(tv_densenet._DenseBlock(3, 16, 4, 8, 0.0))
    x = torch.randn(2, 16, 8, 8)
    assert_transplant(mine, theirs, x)
    out = mine(x)
    assert out.shape == (2, 16 + 3 * 8, 8, 8) and mine.out_channels == 40
    assert torch.equal(out[:, :16], x), "a dense block passes its input through unchanged"
    assert_transplant(Transition(40, 20), randomise(tv_densenet._Transition(40, 20)), out)
    assert DenseLayer(16, 8)(x).shape == (2, 8, 8, 8)
    assert DenseNet((2, 2), growth_rate=4, C_stem=8, num_classes=3)(x[:, :3]).shape == (2, 3)


def test_depthwise_separable_counts_and_reference():
    block = DepthwiseSeparable(64, 128)
    assert block.depthwise.weight.numel() == 576 and block.pointwise.weight.numel() == 8_192
    assert 576 + 8_192 == 8_768 < 73_728 == nn.Conv2d(64, 128, 3, bias=False).weight.numel()
    small = randomise(DepthwiseSeparable(3, 5, stride=2)).eval()
    x = torch.randn(2, 3, 9, 9)
    w = small.depthwise.weight
    per_channel = torch.cat(  # depthwise = one ordinary convolution per channel
        [F.conv2d(x[:, c : c + 1], w[c : c + 1], stride=2, padding=1) for c in range(3)], 1
    )
    with torch.no_grad():
        expected = F.relu(small.bn2(small.pointwise(F.relu(small.bn1(per_channel)))))
        assert torch.allclose(small(x), expected, atol=1e-5)
    assert small(x).shape == (2, 5, 5, 5)


@pytest.mark.parametrize(
    ("C_in", "C_out", "stride", "t"), [(8, 8, 1, 6), (16, 8, 1, 1), (8, 12, 2, 6)]
)
def test_inverted_residual_matches_torchvision(C_in, C_out, stride, t):
    mine = InvertedResidual(C_in, C_out, stride, t)
    theirs = randomise(tv_mobilenet.InvertedResidual(C_in, C_out, stride, t))
    assert_transplant(mine, theirs, torch.randn(2, C_in, 8, 8))
    assert mine.use_shortcut == (stride == 1 and C_in == C_out)


def test_squeeze_excitation():
    se = randomise(SqueezeExcitation(32, reduction=8))
    assert n_params(se) == 2 * 32 * 4 + 4 + 32
    x = torch.randn(2, 32, 5, 5)
    with torch.no_grad():
        s = torch.sigmoid(se.fc2(F.relu(se.fc1(x.mean((2, 3))))))
        assert torch.allclose(se(x), x * s[:, :, None, None], atol=1e-6)
        gates = se.gates(x)
    assert gates.shape == (2, 32, 1, 1) and bool(((gates > 0) & (gates < 1)).all())
    theirs = TvSqueezeExcitation(32, 4)  # the same block with 1x1 convolutions
    with torch.no_grad():
        theirs.fc1.weight.copy_(se.fc1.weight[:, :, None, None])
        theirs.fc1.bias.copy_(se.fc1.bias)
        theirs.fc2.weight.copy_(se.fc2.weight[:, :, None, None])
        theirs.fc2.bias.copy_(se.fc2.bias)
        assert torch.allclose(se(x), theirs(x), atol=1e-5)
    assert SqueezeExcitation(8, reduction=16).fc1.out_features == 1


def test_spatial_attention_gates_positions_from_channel_mean_and_max():
    sa = randomise(SpatialAttention(kernel_size=5))
    assert n_params(sa) == 2 * 5 * 5 + 1 == n_params(SpatialAttention(5))
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        pooled = torch.stack([x.mean(1), x.max(1).values], dim=1)  # (2, 2, 7, 9)
        gate = torch.sigmoid(F.conv2d(pooled, sa.conv.weight, sa.conv.bias, padding=2))
        assert torch.allclose(sa(x), x * gate, atol=1e-6)
        assert sa.gate(x).shape == (2, 1, 7, 9)
    shuffled = x[:, torch.randperm(6)]  # the gate ignores the order of the channels
    with torch.no_grad():
        assert torch.allclose(sa.gate(shuffled), sa.gate(x), atol=1e-6)
    for bad in (4, 0):
        with pytest.raises(ValueError, match="kernel_size"):
            SpatialAttention(bad)
    with pytest.raises(TypeError, match="kernel_size"):
        SpatialAttention(3.0)


def test_convnext_block_matches_torchvision_and_starts_near_identity():
    mine = ConvNeXtBlock(16, layer_scale=0.5)
    theirs = randomise(tv_convnext.CNBlock(16, 0.5, 0.0))
    x = torch.randn(2, 16, 9, 9)
    assert_transplant(mine, theirs, x)
    fresh = ConvNeXtBlock(16).eval()
    with torch.no_grad():
        change = (fresh(x) - x).norm() / x.norm()
    assert change < 1e-4, "with gamma = 1e-6 a new block is almost the identity"
    assert n_params(ConvNeXtBlock(96)) == 79_296
    no_scale = ConvNeXtBlock(8, layer_scale=None)
    assert no_scale.gamma is None and no_scale(torch.randn(1, 8, 4, 4)).shape == (1, 8, 4, 4)


def test_drop_path():
    x = torch.ones(1000, 3, 2, 2)
    assert drop_path(x, 0.3, training=False) is x
    out = drop_path(x, 0.3, training=True)
    per_sample = out.flatten(1)
    kept = per_sample[:, 0] > 0
    assert torch.allclose(per_sample[kept], torch.tensor(1 / 0.7))  # survivors scaled up
    assert torch.all(per_sample[~kept] == 0)
    assert 0.6 < kept.float().mean() < 0.8


# ----------------------------------------------------------------------------- weights


def test_load_by_position_rejects_other_architectures_and_keeps_the_model():
    model = BasicBlock(4, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="state_dict"):
        load_by_position(model, BasicBlock(4, 8).state_dict())  # extra projection entries
    other = BasicBlock(4, 4)
    other.conv2 = nn.Conv2d(4, 4, 5, padding=2, bias=False)
    with pytest.raises(ValueError, match="shape"):
        load_by_position(model, other.state_dict())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(TypeError, match="model"):
        load_by_position("resnet", {})
    with pytest.raises(TypeError, match="state_dict"):
        load_by_position(model, [1, 2])
    pairs = load_by_position(model, BasicBlock(4, 4).state_dict())
    assert pairs[0] == ("conv1.weight", "conv1.weight")


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("build", "kwargs", "error", "name"),
    [
        (BasicBlock, dict(C_in=0, C_out=4), ValueError, "C_in"),
        (BasicBlock, dict(C_in=4, C_out=4.0), TypeError, "C_out"),
        (BasicBlock, dict(C_in=4, C_out=4, stride=0), ValueError, "stride"),
        (BasicBlock, dict(C_in=4, C_out=4, residual=1), TypeError, "residual"),
        (Bottleneck, dict(C_in=4, width=0), ValueError, "width"),
        (Bottleneck, dict(C_in=4, width=4, expansion=0), ValueError, "expansion"),
        (Bottleneck, dict(C_in=4, width=4, stride_in_1x1="yes"), TypeError, "stride_in_1x1"),
        (ResNet, dict(block=nn.Conv2d, layers=[1]), TypeError, "block"),
        (ResNet, dict(block=BasicBlock, layers=[]), TypeError, "layers"),
        (ResNet, dict(block=BasicBlock, layers=[1, 0]), ValueError, "layers[1]"),
        (ResNet, dict(block=BasicBlock, layers=[1, 1], widths=[8]), ValueError, "widths"),
        (
            ResNet,
            dict(block=BasicBlock, layers=[1], widths=[8], num_classes=0),
            ValueError,
            "num_classes",
        ),
        (resnet18, dict(in_channels=True), TypeError, "in_channels"),
        (AlexNet, dict(num_classes=0), ValueError, "num_classes"),
        (AlexNet, dict(dropout=1.0), ValueError, "dropout"),
        (AlexNet, dict(two_gpu="no"), TypeError, "two_gpu"),
        (VGG, dict(config="vgg12"), ValueError, "config"),
        (VGG, dict(config=[64, "X"]), TypeError, "config[1]"),
        (VGG, dict(config=["M"]), ValueError, "config"),
        (VGG, dict(config="vgg11", dropout=-0.1), ValueError, "dropout"),
        (VGG, dict(config="vgg11", batch_norm=None), TypeError, "batch_norm"),
        (make_features, dict(config=[8], in_channels=0), ValueError, "in_channels"),
        (
            InceptionModule,
            dict(C_in=8, c1=4, c3_reduce=0, c3=4, c5_reduce=2, c5=2, pool_proj=2),
            ValueError,
            "c3_reduce",
        ),
        (conv_unit, dict(C_in=4, C_out=4, k=2), ValueError, "k"),
        (conv_unit, dict(C_in=4, C_out=4, k=3, batch_norm=0), TypeError, "batch_norm"),
        (DenseLayer, dict(C_in=4, growth_rate=0), ValueError, "growth_rate"),
        (DenseBlock, dict(num_layers=0, C_in=4, growth_rate=4), ValueError, "num_layers"),
        (DenseLayer, dict(C_in=4, growth_rate=4, bn_size=0), ValueError, "bn_size"),
        (Transition, dict(C_in=4, C_out=0), ValueError, "C_out"),
        (DenseNet, dict(block_config=()), TypeError, "block_config"),
        (DenseNet, dict(block_config=(2, 0)), ValueError, "block_config[1]"),
        (DenseNet, dict(compression=1.5), ValueError, "compression"),
        (DepthwiseSeparable, dict(C_in=4, C_out=8, k=4), ValueError, "k"),
        (DepthwiseSeparable, dict(C_in="4", C_out=8), TypeError, "C_in"),
        (InvertedResidual, dict(C_in=4, C_out=8, stride=3), ValueError, "stride"),
        (InvertedResidual, dict(C_in=4, C_out=8, expand_ratio=0), ValueError, "expand_ratio"),
        (SqueezeExcitation, dict(C=0), ValueError, "C"),
        (SqueezeExcitation, dict(C=8, reduction=0), ValueError, "reduction"),
        (ConvNeXtBlock, dict(C=0), ValueError, "C"),
        (ConvNeXtBlock, dict(C=8, layer_scale=0.0), ValueError, "layer_scale"),
        (ConvNeXtBlock, dict(C=8, layer_scale="small"), TypeError, "layer_scale"),
        (ConvNeXtBlock, dict(C=8, drop_path_prob=1.0), ValueError, "drop_path_prob"),
        (drop_path, dict(x=torch.ones(2), p=-0.1, training=True), ValueError, "p"),
        (LeNet, dict(padding=-1), ValueError, "padding"),
        (LeNet, dict(activation="tanh"), ValueError, "activation"),
        (LeNet, dict(pool="min"), ValueError, "pool"),
        (LeNet, dict(batchnorm=1), TypeError, "batchnorm"),
    ],
)
def test_bad_arguments_name_the_argument(build, kwargs, error, name):
    with pytest.raises(error, match=name.replace("[", r"\[").replace("]", r"\]")):
        build(**kwargs)


def test_resnet50_v1_layout_strides_the_first_1x1_and_keeps_the_parameters():
    v15, v1 = resnet50(num_classes=10), resnet50(num_classes=10, stride_in_1x1=True)
    assert n_params(v1) == n_params(v15)
    first = v1.stages[1][0]  # the first block of stage 2 halves the resolution
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    assert all(b.conv1.stride == (1, 1) for b in v1.stages[1][1:])
    with pytest.raises(ValueError, match="stride_in_1x1=True needs Bottleneck"):
        resnet18(stride_in_1x1=True)
    with pytest.raises(TypeError, match="stride_in_1x1 must be a bool"):
        resnet50(stride_in_1x1=1)


# ----------------------------------------------------------------------------- LeNet


def lenet_reference(model: LeNet, x: torch.Tensor) -> torch.Tensor:
    """LeNet-5's forward pass written with torch.nn.functional and the model's weights."""
    for i in (1, 2):
        conv = getattr(model, f"conv{i}")
        x = F.max_pool2d(F.relu(F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)), 2)
    x = x.flatten(1)
    x = F.relu(F.linear(x, model.fc1.weight, model.fc1.bias))
    x = F.relu(F.linear(x, model.fc2.weight, model.fc2.bias))
    return F.linear(x, model.fc3.weight, model.fc3.bias)


@pytest.mark.parametrize(("padding", "size"), [(2, 28), (0, 32)])
def test_lenet_shapes_parameters_and_forward(padding, size):
    model = LeNet(padding).eval()
    names = [name for name, _ in model.named_children()]
    expected = "conv1 relu1 pool1 conv2 relu2 pool2 flatten fc1 relu3 fc2 relu4 fc3"
    assert names == expected.split()
    assert n_params(model) == 61_706  # 156 + 2,416 + 48,120 + 10,164 + 850
    x = torch.randn(3, 1, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), lenet_reference(model, x))


def test_lenet_variants():
    classic = LeNet(activation="sigmoid", pool="avg")
    assert isinstance(classic.sigmoid1, nn.Sigmoid) and isinstance(classic.pool2, nn.AvgPool2d)
    normed = LeNet(batchnorm=True)
    assert normed.conv1.bias is None and isinstance(normed.bn2, nn.BatchNorm2d)
    assert n_params(normed) == 61_706 - (6 + 16) + 2 * (6 + 16)  # no conv bias, BN scale+shift
    assert normed(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# ----------------------------------------------------------------------------- export policy

LIBRARY = Path(__file__).resolve().parents[1] / "utils" / "cnnbook"


def test_models_package_exports_nothing_and_modules_list_their_networks():
    init = ast.parse((LIBRARY / "models" / "__init__.py").read_text())
    assert all(isinstance(node, ast.Expr) for node in init.body), "only the docstring"
    for path in sorted((LIBRARY / "models").glob("[!_]*.py")):
        tree = ast.parse(path.read_text())
        listed = next(
            ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__"
        )
        classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        public = {name for name in classes if not name.startswith("_")}
        assert public <= set(listed), f"{path.name}: {sorted(public - set(listed))} not in __all__"


def test_every_network_lives_in_models():
    """Outside cnnbook/models/, a top-level nn.Module subclass is a loss or private to its
    module (a class local to a function, e.g. a wrapper for torch.func, is not a network)."""
    strays = []
    for path in sorted(LIBRARY.rglob("*.py")):
        if "models" in path.relative_to(LIBRARY).parts:
            continue
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = [ast.unparse(base) for base in node.bases]
            if any(b.startswith(("nn.", "torch.nn.")) for b in bases):
                if not node.name.endswith("Loss"):
                    strays.append(f"{path.relative_to(LIBRARY)}:{node.name}")
    assert not strays, f"networks outside cnnbook.models: {strays}"

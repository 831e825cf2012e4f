"""Tests of cnnbook.module_analysis: analyze_module on real networks (torchvision models,
branches, channels-last blocks) against PyTorch's parameter and FLOP counts, the published
receptive fields, and arith.analyze on plain stacks.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnbook.arith import Conv, Pool, analyze
from cnnbook.layer_table import ModuleReport, stage_summary
from cnnbook.module_analysis import analyze_module, count_params


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, (3, 5), stride=2, groups=2, bias=False),
        nn.BatchNorm2d(16),
        nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, groups=4),
        nn.Conv2d(8, 8, 3, dilation=2, padding="same", groups=8),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def test_flops_per_layer_match_flop_counter():
    net, x = small_net(), torch.zeros(1, 3, 32, 32)
    reports = analyze_module(net, (3, 32, 32))
    assert [r.name for r in reports] == [str(i) for i in range(len(net))]
    with FlopCounterMode(display=False) as counter:
        net(x)
    counts = counter.get_flop_counts()  # per module path: "Sequential.3", ...
    for layer, report in zip(net, reports, strict=True):
        assert report.flops == sum(counts.get(f"Sequential.{report.name}", {}).values())
        x = layer(x)
        assert report.out_shape == tuple(x.shape[1:]), report.name
    assert sum(r.params for r in reports) == count_params(net)


ZOO = ["resnet18", "resnet50", "vgg16", "mobilenet_v2", "efficientnet_b0", "convnext_tiny"]
REAL = ["resnet18"]  # the others live on the "meta" device: shapes without memory or time


@pytest.fixture(scope="module")
def zoo(request):
    """(name, model, reports at 224 x 224); one model alive at a time, each built once."""
    torch.manual_seed(0)
    with torch.device("cpu" if request.param in REAL else "meta"):
        model = getattr(torchvision.models, request.param)(weights=None).eval()
    return request.param, model, analyze_module(model, (3, 224, 224))


@pytest.mark.parametrize("zoo", ZOO, indirect=True)
def test_params_of_torchvision_models(zoo):
    name, model, reports = zoo
    total = sum(p.numel() for p in model.parameters())
    assert count_params(model) == total
    assert sum(r.params for r in reports) == total, name
    assert all(isinstance(r, ModuleReport) for r in reports)


@pytest.mark.parametrize("zoo", ["resnet18", "mobilenet_v2"], indirect=True)
def test_flops_of_torchvision_models_match_flop_counter(zoo):
    _, model, _ = zoo
    x = torch.zeros(1, 3, 96, 96, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    counts = counter.get_flop_counts()
    theirs = sum(counts["Global"].values())  # convolution and addmm: nothing else is counted
    reports = analyze_module(model, (3, 96, 96))
    assert abs(sum(r.flops for r in reports) - theirs) <= 0.01 * theirs
    prefix = type(model).__name__ + "."
    for r in reports:
        if r.kind in ("Conv2d", "Linear"):
            assert r.flops == sum(counts[prefix + r.name].values()), r.name


@pytest.mark.parametrize("zoo", ["vgg16"], indirect=True)
def test_vgg16_receptive_fields(zoo):
    _, _, reports = zoo
    by_name = {r.name: r for r in reports}
    assert by_name["features.28"].rf == 196, "conv5_3"
    assert by_name["features.30"].rf == 212, "pool5"
    stages = stage_summary(reports)
    assert [r.rf for r in stages] == [5, 14, 40, 92, 196, 212]
    assert [r.spatial for r in stages] == [(n, n) for n in (224, 112, 56, 28, 14, 7)]
    assert [r.jump for r in stages] == [1, 2, 4, 8, 16, 32]
    assert by_name["classifier.6"].rf is None  # after flatten there is no spatial field


@pytest.mark.parametrize("zoo", ["resnet50"], indirect=True)
def test_resnet50_receptive_fields(zoo):
    _, model, reports = zoo
    stages = stage_summary(reports)
    assert [r.rf for r in stages] == [7, 35, 91, 267, 427]
    assert [r.name for r in stages][-1] == "layer4.2.conv2"
    assert {r.name: r for r in reports}["avgpool"].rf is None  # global pooling: whole image
    # the original v1 bottleneck strides its first 1x1 conv, not the 3x3: the 3x3 then
    # works at twice the jump, and the field grows to 483
    blocks = [model.layer2[0], model.layer3[0], model.layer4[0]]
    try:
        for block in blocks:
            block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
        assert [r.rf for r in stage_summary(analyze_module(model, (3, 224, 224)))][-1] == 483
    finally:
        for block in blocks:
            block.conv1.stride, block.conv2.stride = (1, 1), (2, 2)


def test_analyze_module_on_sequential_matches_analyze():
    specs = [Conv(8, 7, 2, 3), Pool(3, 2, 1), Conv(16, 3, padding=1), Conv(16, 3, 2, 1)]
    net = nn.Sequential(
        nn.Conv2d(3, 8, 7, 2, 3), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 16, 3, padding=1)
    )
    net.append(nn.Conv2d(16, 16, 3, 2, 1))
    ours = analyze(specs, (3, 64, 64))
    theirs = analyze_module(net, (3, 64, 64))
    for a, b in zip(ours, theirs, strict=True):
        assert (a.out_shape, a.params, a.flops) == (b.out_shape, b.params, b.flops)
        assert (a.rf, a.jump, a.start) == (b.rf, b.jump, b.start)


def test_analyze_module_restores_training_mode_and_accepts_a_lone_layer():
    net = small_net().train()
    analyze_module(net, (1, 3, 16, 16))
    assert all(m.training for m in net.modules())
    (report,) = analyze_module(nn.Conv2d(3, 4, 3), (3, 8, 8))
    assert (report.out_shape, report.params, report.rf) == ((4, 6, 6), 112, 3)


def test_analyze_module_falls_back_to_a_real_forward_pass(monkeypatch):
    net = small_net()
    expected = analyze_module(net, (3, 16, 16))

    def no_meta(*args, **kwargs):
        raise NotImplementedError("pretend some operation has no meta kernel")

    monkeypatch.setattr(torch.func, "functional_call", no_meta)
    assert analyze_module(net, (3, 16, 16)) == expected


@pytest.mark.parametrize("zoo", ["convnext_tiny"], indirect=True)
def test_convnext_channels_last_blocks_keep_the_field(zoo):
    # ConvNeXt runs LayerNorm and Linear on (N, H, W, C) tensors between permutes; a
    # patchify stem (4x4, stride 4), then 7x7 depthwise convs: 4 + 3 * 6 * 4 = 76, ...
    stages = stage_summary(zoo[2])
    assert [r.rf for r in stages] == [76, 224, 1096, 1688]
    assert [r.spatial for r in stages] == [(n, n) for n in (56, 28, 14, 7)]


# ----------------------------------------------------------------------------- bad inputs

CONV = nn.Conv2d(3, 4, 3)
BAD_CALLS = {
    "module-type": (analyze_module, ([Conv(8, 3)], (3, 8, 8)), TypeError, "model"),
    "module-shape": (analyze_module, (CONV, (3, 8)), ValueError, "input_shape"),
    "module-shape-float": (analyze_module, (CONV, (3, 8.0, 8)), TypeError, r"input_shape\[1\]"),
    "count-type": (count_params, ("resnet",), TypeError, "model"),
}


@pytest.mark.parametrize("case", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_rejects_bad_arguments(case):
    func, args, error, message = case
    with pytest.raises(error, match=message):
        func(*args)


class Untraceable(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x  # control flow on data


def test_untraceable_model_says_why():
    with pytest.raises(RuntimeError, match="could not trace Untraceable"):
        analyze_module(Untraceable(), (3, 8, 8))

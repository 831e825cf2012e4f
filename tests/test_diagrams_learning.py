"""Diagrams of chapters 10, 11 and 17: the numbers drawn equal the library's (the DDP shards
and mean gradient, trainable counts after the freeze functions, the metric losses)."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from cnnbook.diagrams.learning import (
    ddp_diagram,
    ddp_example,
    ring_all_reduce,
    siamese_diagram,
    transfer_diagram,
    transfer_modes,
    triplet_diagram,
)
from cnnbook.diagrams.style import diagram_texts
from cnnbook.distributed import shard
from cnnbook.metric_learning import contrastive_loss, triplet_loss
from cnnbook.models.embedding import EmbeddingNet
from cnnbook.transfer import backbone_blocks, freeze_backbone, unfreeze


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- DDP


@pytest.mark.parametrize("world_size", [2, 3, 4, 5])
def test_ring_all_reduce_leaves_the_mean_on_every_rank(world_size):
    values = np.random.default_rng(world_size).normal(size=(world_size, 7))
    reduced = ring_all_reduce(values)
    assert reduced.shape == values.shape
    np.testing.assert_allclose(reduced, np.broadcast_to(values.mean(0), values.shape))


def test_ddp_example_shards_and_gradients():
    ex = ddp_example(world_size=3, n_items=12, n_params=3, seed=0)
    assert ex.shards == [shard(torch.arange(12), r, 3).tolist() for r in range(3)]
    np.testing.assert_allclose(ex.reduced[1], ex.gradients.mean(0))
    # Equal shards of a mean loss: the mean of the ranks' gradients is the batch gradient.
    np.testing.assert_allclose(ex.reduced[0], ex.full_batch, atol=1e-6)


def test_ddp_diagram_shows_the_mean_of_the_shown_gradients():
    ex = ddp_example()
    texts = diagram_texts(ddp_diagram())
    W, P = ex.gradients.shape
    for r in range(W):
        assert f"items {', '.join(map(str, ex.shards[r]))}" in texts
    i = texts.index("local gradient g_0")
    shown = []
    for r in range(W):
        start = texts.index(f"local gradient g_{r}") + 1
        shown.append([float(t) for t in texts[start : start + P]])
    shown = np.array(shown)
    np.testing.assert_allclose(shown, ex.gradients, atol=0.005)
    after = [float(t) for t in texts[i + 1 + P + 1 : i + 1 + P + 1 + P]]  # node "0", then grid
    np.testing.assert_allclose(after, shown.mean(0), atol=0.01)
    line = next(t for t in texts if t.startswith("every rank: mean gradient"))
    numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", line)]
    np.testing.assert_allclose(numbers, shown.mean(0), atol=0.01)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"world_size": 1}, ValueError, "world_size"),
        ({"world_size": 5, "n_items": 10}, ValueError, "world_size"),
        ({"n_items": 10}, ValueError, "n_items"),
        ({"n_params": 0}, ValueError, "n_params"),
        ({"world_size": 2.0}, TypeError, "world_size"),
    ],
)
def test_ddp_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ddp_diagram(**kwargs)


# --------------------------------------------------------------------------- transfer


@pytest.fixture(scope="module")
def mobilenet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v2(num_classes=10)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("top_blocks", [5, 2])
def test_transfer_counts_are_those_after_the_freeze_functions(mobilenet, top_blocks):
    texts = diagram_texts(transfer_diagram(mobilenet, top_blocks=top_blocks))
    expected = []
    for how in ("fe", "ft", "partial"):
        m = torchvision.models.mobilenet_v2(num_classes=10)
        if how == "ft":
            unfreeze(m)
        else:
            freeze_backbone(m, top_blocks=0 if how == "fe" else top_blocks)
        expected.append(_trainable(m))
    shown = [int(t.split(": ")[1].replace(",", "")) for t in texts if t.startswith("trainable:")]
    assert shown == expected
    assert expected[0] == 12_810 and expected[1] == 2_236_682  # chapter 11's numbers
    blocks = backbone_blocks(mobilenet)
    n = len(blocks)
    low = sum(p.numel() for _, b in blocks[: n - top_blocks] for p in b.parameters())
    assert f"features.0\u2013{n - top_blocks - 1}\n{low:,} params, locked" in texts
    assert "head classifier.1" in texts and "12,810 params" in texts
    high = sum(p.numel() for _, b in blocks[n - top_blocks :] for p in b.parameters())
    assert texts.count(f"top {top_blocks} blocks\n{high:,} params, trainable") == 2
    assert texts.count(f"top {top_blocks} blocks\n{high:,} params, locked") == 1
    assert sum(t.endswith("locked") for t in texts) == 3  # FE: two parts, partial: one


def test_transfer_modes_leave_the_model_alone(mobilenet):
    before = [p.requires_grad for p in mobilenet.parameters()]
    modes = transfer_modes(mobilenet, 5)
    assert [p.requires_grad for p in mobilenet.parameters()] == before
    assert [_trainable(m) for m in modes.values()][0] == 12_810


@pytest.mark.parametrize(
    ("model", "top_blocks", "error", "match"),
    [
        ("model", 5, TypeError, "model"),
        (None, 0, ValueError, "top_blocks"),
        (None, 19, ValueError, "top_blocks"),
        (None, 2.5, TypeError, "top_blocks"),
    ],
)
def test_transfer_rejects_bad_arguments(mobilenet, model, top_blocks, error, match):
    with pytest.raises(error, match=match):
        transfer_diagram(mobilenet if model is None else model, top_blocks)


# --------------------------------------------------------------------------- chapter 17


def _value(texts: list[str], prefix: str) -> float:
    line = next(t for t in texts if prefix in t)
    return float(line.split(prefix)[1].split("\n")[0])


@pytest.mark.parametrize(("same", "margin"), [(False, 0.5), (True, 1.0), (False, 2.0)])
def test_siamese_loss_is_the_librarys(same, margin):
    torch.manual_seed(0)
    net = EmbeddingNet().eval()
    x = torch.rand(2, 1, 28, 28)
    texts = diagram_texts(siamese_diagram(net, x[0], x[1], same, margin))
    z1, z2 = net(x[:1]), net(x[1:])
    loss = contrastive_loss(z1, z2, torch.tensor([float(same)]), margin=margin).item()
    assert _value(texts, "L = ") == pytest.approx(loss, abs=5e-4)
    assert _value(texts, "\n= ") == pytest.approx((z1 - z2).norm().item(), abs=5e-4)
    assert "x_1: 1\u00d728\u00d728" in texts and "z_2: 32" in texts
    n_params = sum(p.numel() for p in net.parameters())
    assert f"one network, shared weights ({n_params:,} parameters)" in texts


def test_triplet_loss_is_the_librarys():
    torch.manual_seed(1)
    net = EmbeddingNet(dim=8).eval()
    a, p, n = torch.rand(3, 1, 1, 28, 28)
    texts = diagram_texts(triplet_diagram(net, a, p, n, margin=0.5))
    za, zp, zn = net(a), net(p), net(n)
    assert _value(texts, "L = ") == pytest.approx(triplet_loss(za, zp, zn, 0.5).item(), abs=5e-4)
    assert _value(texts, "d(a, p) = ") == pytest.approx((za - zp).norm().item(), abs=5e-4)
    assert _value(texts, "d(a, n) = ") == pytest.approx((za - zn).norm().item(), abs=5e-4)
    assert "z_a: 8" in texts and "x_n: 1\u00d728\u00d728" in texts


def test_metric_diagrams_reject_bad_arguments():
    net, x = EmbeddingNet(), torch.rand(1, 28, 28)
    with pytest.raises(TypeError, match="same"):
        siamese_diagram(net, x, x, 1)
    with pytest.raises(ValueError, match="margin"):
        siamese_diagram(net, x, x, True, margin=-1.0)
    with pytest.raises(TypeError, match="x2"):
        siamese_diagram(net, x, x.numpy(), True)
    with pytest.raises(ValueError, match="negative"):
        triplet_diagram(net, x, x, torch.rand(2, 1, 28, 28))
    with pytest.raises(TypeError, match="model"):
        triplet_diagram("net", x, x, x)

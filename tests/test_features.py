"""cnnbook.features: hooks against running the submodules directly, filter grids, dead
channels, activation maximisation, and bad arguments."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnbook.features import (
    ActivationMax,
    channel_activation,
    count_dead,
    dead_channels,
    feature_maps,
    filter_grid,
    get_layer,
    maximize_activation,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_net(seed: int = 0) -> nn.Sequential:
    """(N, 3, 16, 16) -> (N, 5); in-place ReLUs, BatchNorm and a nested block."""
    torch.manual_seed(seed)
    block = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True))
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 4, 3, padding=1),  # (N, 4, 16, 16)
            relu1=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(2),  # (N, 4, 8, 8)
            block=block,  # (N, 6, 8, 8)
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(6, 5),
        )
    )


def _warm_batchnorm(net: nn.Sequential) -> None:
    """Give BatchNorm non-trivial running statistics so that eval and train mode differ."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(8, 3, 16, 16) * 2)


def test_hooks_return_what_the_submodules_compute():
    net = tiny_net()
    _warm_batchnorm(net)
    x = torch.rand(2, 3, 16, 16)
    maps = feature_maps(net, x, ["conv1", "relu1", "pool", "block.0", "block.1", "block"])
    net.eval()
    with torch.no_grad():
        conv1 = net.conv1(x)
        relu1 = torch.relu(conv1)
        pool = net.pool(relu1)
        b0 = net.block[0](pool)
        b1 = net.block[1](b0)
        out = torch.relu(b1)
    # conv1 is followed by an in-place ReLU: the hook must have kept a copy
    assert torch.equal(maps["conv1"], conv1) and (maps["conv1"] < 0).any()
    for name, ref in (("relu1", relu1), ("pool", pool), ("block.0", b0), ("block.1", b1)):
        assert torch.allclose(maps[name], ref, atol=1e-6), name
    assert torch.allclose(maps["block"], out, atol=1e-6)
    assert list(maps) == ["conv1", "relu1", "pool", "block.0", "block.1", "block"]


def test_feature_maps_uses_eval_mode_and_restores_the_mode():
    net = tiny_net()
    _warm_batchnorm(net)
    net.train()
    x = torch.rand(4, 3, 16, 16)
    got = feature_maps(net, x, "block.1")["block.1"]
    assert net.training, "the caller's training mode must be restored"
    net.eval()
    with torch.no_grad():
        ref = net.block[1](net.block[0](net.pool(torch.relu(net.conv1(x)))))
    assert torch.allclose(got, ref, atol=1e-6)


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this layer should not run")


def test_stop_early_skips_later_layers():
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), boom=_Boom()))
    x = torch.rand(1, 1, 6, 6)
    assert feature_maps(net, x, "conv")["conv"].shape == (1, 2, 4, 4)
    with pytest.raises(RuntimeError, match="should not run"):
        feature_maps(net, x, "conv", stop_early=False)


class _WithSpare(nn.Module):
    """A model holding a layer that its forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.unused = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_layer_the_forward_never_runs_is_reported():
    with pytest.raises(ValueError, match="unused"):
        feature_maps(_WithSpare(), torch.rand(1, 3, 16, 16), ["conv", "unused"])


@settings(max_examples=15, deadline=None)
@given(
    C_out=st.integers(1, 10),
    C_in=st.sampled_from([1, 3]),
    k=st.integers(1, 5),
    pad=st.integers(0, 2),
    scale=st.sampled_from(["each", "all"]),
)
def test_filter_grid_places_every_scaled_filter(C_out, C_in, k, pad, scale):
    w = torch.randn(C_out, C_in, k, k, generator=torch.Generator().manual_seed(C_out * k))
    grid = filter_grid(w, pad=pad, scale=scale)
    ncols = int(np.ceil(np.sqrt(C_out)))
    nrows = int(np.ceil(C_out / ncols))
    assert grid.shape[:2] == (nrows * (k + pad) + pad, ncols * (k + pad) + pad)
    peak_all = w.abs().max().item()
    for i in range(C_out):
        r, c = divmod(i, ncols)
        top, left = pad + r * (k + pad), pad + c * (k + pad)
        tile = grid[top : top + k, left : left + k]
        peak = w[i].abs().max().item() if scale == "each" else peak_all
        expected = (w[i] / peak).numpy()
        if C_in == 1:
            np.testing.assert_allclose(tile, expected[0], atol=1e-6)
        else:
            np.testing.assert_allclose(tile, 0.5 + 0.5 * expected.transpose(1, 2, 0), atol=1e-6)
    if C_in == 1:
        assert grid.ndim == 2 and np.abs(grid).max() <= 1 + 1e-9
    else:
        assert grid.shape[2] == 3 and grid.min() >= 0 and grid.max() <= 1


def test_filter_grid_of_a_zero_filter_is_zero():
    w = torch.zeros(2, 1, 3, 3)
    w[1, 0, 1, 1] = 2.0
    grid = filter_grid(w, ncols=2, pad=0)
    assert np.array_equal(grid[:, :3], np.zeros((3, 3)))
    assert grid[1, 4] == 1.0


def test_dead_channels_and_count_dead():
    acts = torch.zeros(3, 4, 2, 2)
    acts[0, 1, 0, 0] = 1.0
    acts[2, 3, 1, 1] = 0.05
    assert dead_channels(acts).tolist() == [True, False, True, False]
    assert dead_channels(acts, tol=0.1).tolist() == [True, False, True, True]
    net = tiny_net()
    with torch.no_grad():
        net.conv1.bias[2] = -100.0  # channel 2 can never pass the ReLU
    counts = count_dead(net, torch.rand(8, 3, 16, 16), ["relu1"])
    assert counts["relu1"][1] == 4 and counts["relu1"][0] >= 1
    maps = feature_maps(net, torch.rand(8, 3, 16, 16), "relu1")["relu1"]
    assert dead_channels(maps)[2]


def test_maximize_activation_raises_the_channel_and_leaves_the_model_alone():
    net = tiny_net()
    _warm_batchnorm(net)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    # block.1 is BatchNorm before the ReLU: signed, so its gradient is never zero
    result = maximize_activation(net, "block.1", 1, size=16, steps=25, lr=0.1, jitter=1)
    assert isinstance(result, ActivationMax)
    assert result.image.shape == (3, 16, 16) and result.start.shape == (3, 16, 16)
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert result.final_value > result.start_value + 0.05
    random_images = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    best_random = channel_activation(net, "block.1", 1, random_images).max().item()
    assert result.final_value > best_random, "it should beat every random image"
    assert len(result.objective) == 25
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training and all(p.requires_grad for p in net.parameters())
    again = maximize_activation(net, "block.1", 1, size=16, steps=25, lr=0.1, jitter=1)
    assert torch.equal(again.image, result.image), "the same seed gives the same picture"


def test_channel_activation_is_the_mean_of_the_feature_map():
    net = tiny_net()
    x = torch.rand(3, 3, 16, 16)
    maps = feature_maps(net, x, "block.0")["block.0"]
    got = channel_activation(net, "block.0", 4, x)
    assert torch.allclose(got, maps[:, 4].mean(dim=(1, 2)))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.3, 0.4)
    normed = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(
        channel_activation(net, "conv1", 0, x, normalize=(mean, std)),
        channel_activation(net, "conv1", 0, normed),
        atol=1e-6,
    )


# ----------------------------------------------------------------------------- bad input


def test_layer_not_in_model_names_the_argument():
    net = tiny_net()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="layer 'conv9' is not in the model"):
        feature_maps(net, x, "conv9")
    with pytest.raises(ValueError, match="layer"):
        maximize_activation(net, "nope", 0, steps=1)
    with pytest.raises(TypeError, match="layer"):
        get_layer(net, 3)
    with pytest.raises(ValueError, match="layers"):
        feature_maps(net, x, [])
    with pytest.raises(TypeError, match="model"):
        feature_maps("net", x, "conv1")


@pytest.mark.parametrize(
    ("x", "error", "text"),
    [
        (np.zeros((1, 3, 16, 16), dtype=np.float32), TypeError, "x must be a torch.Tensor"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), TypeError, "x must hold floats"),
        (torch.zeros(3, 16, 16), ValueError, r"x must have shape \(N, C, H, W\)"),
    ],
)
def test_bad_images_name_the_argument(x, error, text):
    with pytest.raises(error, match=text):
        feature_maps(tiny_net(), x, "conv1")
    with pytest.raises(error, match=text):
        channel_activation(tiny_net(), "conv1", 0, x)


def test_other_bad_arguments():
    net = tiny_net()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="channel must be < 4"):
        channel_activation(net, "conv1", 4, x)
    with pytest.raises(ValueError, match="channel must be < 6"):
        maximize_activation(net, "block", 6, size=16, steps=1)
    with pytest.raises(ValueError, match="steps"):
        maximize_activation(net, "block", 0, steps=0)
    with pytest.raises(ValueError, match="size"):
        maximize_activation(net, "block", 0, size=4)
    with pytest.raises(ValueError, match="normalize"):
        maximize_activation(net, "block", 0, steps=1, normalize=((0.5,), (0.2,)))
    with pytest.raises(ValueError, match="weight must have shape"):
        filter_grid(torch.zeros(4, 2, 3, 3))
    with pytest.raises(TypeError, match="weight"):
        filter_grid(np.zeros((4, 1, 3, 3)))
    with pytest.raises(ValueError, match="scale"):
        filter_grid(torch.zeros(4, 1, 3, 3), scale="max")
    with pytest.raises(ValueError, match="tol"):
        dead_channels(torch.zeros(1, 2, 3, 3), tol=-1.0)
    with pytest.raises(ValueError, match="activations"):
        dead_channels(torch.zeros(2, 3, 3))

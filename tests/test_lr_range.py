"""cnnbook.lr_range: the geometric sweep, divergence stop, suggestions, restored weights,
determinism and bad arguments."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnbook.lr_range import LRRangeResult, lr_range_test, lr_schedule


def _problem(seed: int = 0, n: int = 256) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small, learnable 3-class problem with 20% label noise (so that no weights fit it
    perfectly and too large a step makes the loss explode) and a linear model for it."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(3, 5, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    X = centres[y] + torch.randn(n, 5, generator=g)
    noisy = torch.rand(n, generator=g) < 0.2
    y = torch.where(noisy, torch.randint(0, 3, (n,), generator=g), y)
    torch.manual_seed(seed)
    return nn.Linear(5, 3), X, y


@settings(max_examples=100, deadline=None)
@given(
    st.floats(1e-8, 1e-1),
    st.floats(1.001, 1e6),
    st.integers(2, 300),
)
def test_schedule_is_geometric_from_start_to_end(start, factor, steps):
    lrs = lr_schedule(start, start * factor, steps)
    assert len(lrs) == steps
    assert lrs[0] == pytest.approx(start) and lrs[-1] == pytest.approx(start * factor)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert all(r == pytest.approx(factor ** (1 / (steps - 1)), rel=1e-9) for r in ratios)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["sgd", "adam"]))
def test_weights_and_mode_are_restored(seed, kind):
    model, X, y = _problem(seed)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def make(params):
        if kind == "adam":
            return torch.optim.Adam(params)
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    result = lr_range_test(model, (X, y), optimizer=make, num_steps=30, end_lr=10.0, seed=seed)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not model.training, "the model's eval mode should be restored"
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 30


def test_loss_falls_then_explodes_and_the_test_stops():
    model, X, y = _problem(1)
    result = lr_range_test(model, (X, y), start_lr=1e-4, end_lr=1e4, num_steps=200)
    assert result.diverged and len(result.lrs) < 200
    assert result.lrs == lr_schedule(1e-4, 1e4, 200)[: len(result.lrs)]
    assert min(result.smoothed) < result.smoothed[0] - 0.1, "the loss should fall first"
    # The suggestion sits a decade below the minimum, on the falling part of the curve.
    assert result.suggested_lr == pytest.approx(result.min_loss_lr / 10)
    assert result.lrs[0] <= result.steepest_lr <= result.min_loss_lr
    assert 1e-3 < result.suggested_lr < 10


def test_smoothed_loss_is_the_bias_corrected_moving_average():
    model, X, y = _problem(2)
    result = lr_range_test(model, (X, y), num_steps=20, end_lr=1e-2, smoothing=0.8)
    average = 0.0
    for i, (loss, smooth) in enumerate(zip(result.losses, result.smoothed, strict=True)):
        average = 0.8 * average + 0.2 * loss
        assert smooth == pytest.approx(average / (1 - 0.8 ** (i + 1)))
    no_smoothing = lr_range_test(model, (X, y), num_steps=20, end_lr=1e-2, smoothing=0.0)
    assert no_smoothing.smoothed == pytest.approx(no_smoothing.losses)


def test_seeded_runs_are_identical_and_dataloaders_work():
    model, X, y = _problem(3)
    first = lr_range_test(model, (X, y), num_steps=40, seed=5)
    second = lr_range_test(model, (X, y), num_steps=40, seed=5)
    assert first.losses == second.losses
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=False)
    from_loader = lr_range_test(model, loader, num_steps=25)  # 8 batches, repeated
    assert len(from_loader.lrs) <= 25 and all(map(math.isfinite, from_loader.losses[:5]))


def test_nan_losses_end_the_test_and_are_ignored_by_the_suggestion():
    result = LRRangeResult(
        lrs=[1e-3, 1e-2, 1e-1, 1.0],
        losses=[2.0, 1.0, 0.5, math.nan],
        smoothed=[2.0, 1.5, 1.0, math.nan],
        diverged=True,
    )
    assert result.min_loss_lr == 1e-1 and result.suggested_lr == pytest.approx(1e-2)
    model, X, y = _problem(4)
    X = X.clone()
    X[:] = math.nan  # every batch gives a NaN loss at once
    early = lr_range_test(model, (X, y), num_steps=50)
    assert early.diverged and len(early.lrs) == 1


def test_plot_draws_raw_and_smoothed_curves():
    import matplotlib

    matplotlib.use("Agg")
    model, X, y = _problem(5)
    ax = lr_range_test(model, (X, y), num_steps=30).plot()
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"model": "net"}, TypeError, "model"),
        ({"train_data": [1, 2, 3]}, TypeError, "train_data"),
        ({"train_data": (torch.zeros(4, 5), torch.zeros(3))}, ValueError, "train_data"),
        ({"train_data": (torch.zeros(0, 5), torch.zeros(0))}, ValueError, "empty"),
        ({"start_lr": 0}, ValueError, "start_lr"),
        ({"start_lr": "1e-3"}, TypeError, "start_lr"),
        ({"end_lr": 1e-9}, ValueError, "end_lr"),
        ({"num_steps": 1}, ValueError, "num_steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"smoothing": 1.0}, ValueError, "smoothing"),
        ({"diverge_factor": 1.0}, ValueError, "diverge_factor"),
        ({"seed": -1}, ValueError, "seed"),
        ({"loss_fn": 3}, TypeError, "loss_fn"),
        ({"optimizer": "adam"}, TypeError, "optimizer"),
        ({"optimizer": lambda params: "adam"}, TypeError, "optimizer"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, name):
    model, X, y = _problem(6, n=16)
    args = {"model": model, "train_data": (X, y), **kwargs}
    with pytest.raises(error, match=name):
        lr_range_test(args.pop("model"), args.pop("train_data"), **args)

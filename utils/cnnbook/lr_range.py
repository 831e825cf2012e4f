"""The learning-rate range test (Smith, 2017): raise the LR every batch, watch the loss.

Starting from a tiny learning rate, the LR grows geometrically each training step while
the loss is recorded. The loss first barely moves (LR too small to matter), then falls
fastest, then bottoms out and blows up (LR too large). A good peak LR for training lies
a little before the bottom; ``suggested_lr`` is the LR of the lowest smoothed loss
divided by 10, a common rule of thumb, and ``steepest_lr`` where the smoothed loss falls
fastest. The model's weights are restored afterwards: the test only looks.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from cnnbook._checks import check_int

# Steps before divergence may stop the test: the first losses are noisy.
_MIN_STEPS_BEFORE_STOP = 5


@dataclass
class LRRangeResult:
    """What ``lr_range_test`` measured, one entry per step actually taken.

    lrs: learning rate of each step; losses: that batch's loss (before the step);
    smoothed: bias-corrected exponential moving average of the losses; diverged: True if
    the test stopped early because the loss exploded.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged: bool

    def _lowest(self) -> int:
        """Index of the lowest finite smoothed loss (a diverged run may end in inf/NaN)."""
        finite = [i for i, v in enumerate(self.smoothed) if math.isfinite(v)]
        if not finite:
            raise ValueError("the range test recorded no finite loss: lower start_lr")
        return min(finite, key=self.smoothed.__getitem__)

    @property
    def min_loss_lr(self) -> float:
        """The learning rate at the lowest smoothed loss."""
        return self.lrs[self._lowest()]

    @property
    def suggested_lr(self) -> float:
        """A peak LR to train with: ``min_loss_lr / 10`` (not below the first LR tried)."""
        return max(self.min_loss_lr / 10, self.lrs[0])

    @property
    def steepest_lr(self) -> float:
        """The LR where the smoothed loss falls fastest per factor of LR, up to its minimum."""
        stop = self._lowest()
        if stop < 1:
            return self.lrs[0]
        slopes = [
            (self.smoothed[i + 1] - self.smoothed[i])
            / (math.log(self.lrs[i + 1]) - math.log(self.lrs[i]))
            for i in range(stop)
        ]
        return self.lrs[min(range(len(slopes)), key=slopes.__getitem__)]

    def plot(self, ax: object = None) -> object:
        """Raw and smoothed loss against the LR (log axis), with the suggestion marked."""
        if ax is None:
            import matplotlib.pyplot as plt  # here: importing pyplot picks a backend

            _, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
        ax.plot(self.lrs, self.losses, color="0.7", lw=1, label="batch loss")
        ax.plot(self.lrs, self.smoothed, color="#0072B2", lw=2, label="smoothed")
        ax.axvline(self.suggested_lr, color="#D55E00", ls="--", label="suggested LR")
        ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss")
        # Clip the final explosion so that the informative part of the curve stays readable.
        finite = [v for v in self.losses + self.smoothed if math.isfinite(v)]
        start = [v for v in self.smoothed[:5] if math.isfinite(v)]
        if finite and start:
            low, high = min(finite), 1.25 * max(start)
            if high > low:
                ax.set_ylim(low - 0.05 * (high - low), high)
        ax.set_title("Learning-rate range test")
        ax.legend()
        ax.grid(alpha=0.3)
        return ax


def _check_lr(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_unit(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def lr_schedule(start_lr: float, end_lr: float, num_steps: int) -> list[float]:
    """``num_steps`` learning rates growing geometrically from start_lr to end_lr."""
    start_lr = _check_lr("start_lr", start_lr)
    end_lr = _check_lr("end_lr", end_lr)
    num_steps = check_int("num_steps", num_steps, minimum=2)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be larger than start_lr, got {end_lr} <= {start_lr}")
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (num_steps - 1)) for i in range(num_steps)]


def _batches(
    data: object, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y) batches: shuffled slices of an (X, y) pair, or a DataLoader repeated."""
    if isinstance(data, DataLoader):
        while True:
            empty = True
            for batch in data:
                empty = False
                yield batch[0], batch[1]
            if empty:
                raise ValueError("train_data is empty: the DataLoader yielded no batches")
    X, y = data
    n = X.shape[0]
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield X[idx], y[idx]


def _check_data(train_data: object) -> object:
    if isinstance(train_data, DataLoader):
        return train_data
    if not (isinstance(train_data, tuple | list) and len(train_data) == 2):
        raise TypeError("train_data must be an (X, y) pair of tensors or a DataLoader")
    X, y = train_data
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(
            f"train_data must hold tensors, got {type(X).__name__} and {type(y).__name__}"
        )
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"train_data: X and y must have the same number of samples, got shapes "
            f"{tuple(X.shape)} and {tuple(y.shape)}"
        )
    if X.shape[0] == 0:
        raise ValueError("train_data is empty: X has 0 samples")
    return X, y


def lr_range_test(
    model: nn.Module,
    train_data: object,
    *,
    optimizer: Callable[[object], torch.optim.Optimizer] | None = None,
    loss_fn: Callable | None = None,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_steps: int = 100,
    batch_size: int = 64,
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
    seed: int = 0,
) -> LRRangeResult:
    """Run the LR range test on ``model`` and restore its weights afterwards.

    train_data: an (X, y) pair of tensors (X: (N, ...), y: (N,) labels; shuffled batches of
        ``batch_size``, reshuffled each pass) or a DataLoader (used as given, repeated).
    optimizer: a function params -> optimizer (default SGD with momentum 0.9); its LR is
        overwritten every step. loss_fn: default cross-entropy.
    start_lr, end_lr, num_steps: the geometric LR sweep (``lr_schedule``).
    smoothing: beta of the moving average of the loss in [0, 1) (0: no smoothing).
    diverge_factor: stop once the smoothed loss exceeds this times its minimum, or is
        not finite. seed: shuffling and dropout.
    The model runs on the device its parameters are on; data batches are moved there.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    lrs = lr_schedule(start_lr, end_lr, num_steps)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    smoothing = _check_unit("smoothing", smoothing)
    diverge_factor = _check_lr("diverge_factor", diverge_factor)
    if diverge_factor <= 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor}")
    seed = check_int("seed", seed, minimum=0)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (logits, y) -> loss, got {loss_fn!r}")
    if optimizer is not None and not callable(optimizer):
        raise TypeError(f"optimizer must be a function params -> optimizer, got {optimizer!r}")
    data = _check_data(train_data)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    make = optimizer or (lambda params: torch.optim.SGD(params, lr=start_lr, momentum=0.9))

    saved = copy.deepcopy(model.state_dict())
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.random.fork_rng(devices=[]):  # seeded dropout, caller's RNG untouched
            torch.manual_seed(seed)
            batches = _batches(data, batch_size, torch.Generator().manual_seed(seed))
            result = _sweep(
                model,
                make(model.parameters()),
                loss_fn,
                batches,
                lrs,
                device,
                smoothing,
                diverge_factor,
            )
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    return result


def _sweep(
    model: nn.Module,
    opt: object,
    loss_fn: Callable,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    lrs: list[float],
    device: torch.device,
    smoothing: float,
    diverge_factor: float,
) -> LRRangeResult:
    """The loop itself: set the LR, one training step, record, maybe stop."""
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"optimizer must return a torch.optim.Optimizer, got {type(opt).__name__}")
    model.train()
    taken, losses, smoothed, diverged = [], [], [], False
    average, best = 0.0, math.inf
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        average = smoothing * average + (1 - smoothing) * value
        smooth = average / (1 - smoothing ** (step + 1))  # bias correction of the EMA
        taken.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        best = min(best, smooth)
        if not math.isfinite(smooth) or (
            step >= _MIN_STEPS_BEFORE_STOP and smooth > diverge_factor * best
        ):
            diverged = True
            break
    return LRRangeResult(lrs=taken, losses=losses, smoothed=smoothed, diverged=diverged)

"""The recipe of chapter 10's fast trainer: every knob of ``fast_train.train_fast``, checked.

``Recipe`` is a frozen dataclass: one object says how a run trains (batch, schedule,
regularisation, augmentation, EMA, evaluation, speed flags), so two runs differ exactly
where their recipes do. Bad values raise ValueError/TypeError naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnbook._checks import check_bool, check_int

__all__ = ["Recipe"]


@dataclass(frozen=True)
class Recipe:
    """Every knob of the trainer. Defaults: a CPU-sized run of the full recipe.

    epochs, batch_size: the global batch; in a distributed run each of the W ranks
        takes batch_size / W images per step, so the optimisation is the same.
    lr: peak learning rate of SGD (Nesterov, ``momentum``); the schedule rises linearly
        from 0 for the first ``warmup`` fraction of the steps and falls linearly to 0.
    weight_decay: L2 penalty on convolution and linear weights (not BatchNorm, biases).
    label_smoothing: target probability moved from the true class to all classes.
    pad, flip: translation of up to ``pad`` pixels and horizontal flips (0 / False: off).
    ema_decay: decay of the exponential moving average of the weights (None: no EMA).
    tta: evaluate with flip test-time augmentation.
    amp: autocast (bf16, or fp16 with a GradScaler where bf16 is missing). None: on for
        CUDA. On a CPU it is always off (a warning says so if you asked for it).
    channels_last: NHWC memory layout. None: on for CUDA only; True also on a CPU.
    compile: wrap the model in ``torch.compile`` (slow to start, faster per step).
    eval_every: evaluate the test data every this many epochs (0: only at the end).
    target_acc: record the training time at which evaluation first reached it.
    seed: shuffling and augmentation.
    """

    epochs: int = 8
    batch_size: int = 256
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    warmup: float = 0.2
    pad: int = 2
    flip: bool = True
    ema_decay: float | None = 0.98
    tta: bool = True
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    eval_every: int = 0
    target_acc: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("pad", self.pad, minimum=0)
        check_int("eval_every", self.eval_every, minimum=0)
        check_int("seed", self.seed, minimum=0)
        _check_number("lr", self.lr, low=0.0, low_open=True)
        _check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        _check_number("warmup", self.warmup, low=0.0, high=1.0)
        if self.ema_decay is not None:
            _check_number("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        if self.target_acc is not None:
            _check_number("target_acc", self.target_acc, low=0.0, high=1.0)
        for name in ("flip", "tta", "compile"):
            check_bool(name, getattr(self, name))
        for name in ("amp", "channels_last"):
            if getattr(self, name) is not None:
                check_bool(name, getattr(self, name))


def _check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in [low, high] (open ends as asked); errors name ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or not math.isfinite(value):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value

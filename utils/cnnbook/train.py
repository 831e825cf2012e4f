"""The book's training loop: ``fit``, ``evaluate`` and ``predict``.

``fit`` is a plain loop a reader can follow line by line (``_train_epoch``): forward,
loss, backward, optional gradient clipping, optimizer step, scheduler step. Around it:
a tqdm progress bar, a per-epoch ``History`` (``cnnbook.history``), an optional live plot
(``cnnbook.live_plot``), mixed precision and channels_last on CUDA, and "load the
checkpoint if present, else train and save it" (``cnnbook.checkpoints``).

Data may be a ``(X, y)`` pair of tensors (the fast path for small data held in memory:
batches are cut on the device, no DataLoader), a ``torch.utils.data.Dataset`` or a
``DataLoader`` (see ``cnnbook.batches``).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnbook._checks import check_bool, check_choice, check_int
from cnnbook._torch_checks import check_labels, check_model, eval_mode
from cnnbook.batches import Batches, as_tensor
from cnnbook.checkpoints import load_checkpoint, save_checkpoint
from cnnbook.history import History
from cnnbook.live_plot import LivePlot, in_jupyter_kernel, show_history
from cnnbook.runtime import device as default_device
from cnnbook.runtime import max_steps, warn_steps_capped

SCHEDULER_STEPS = ("batch", "epoch")
# Schedulers whose period is counted in optimizer steps, not epochs.
_PER_BATCH_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


def _first_layer(model: nn.Module) -> str:
    for name, module in model.named_modules():
        if not list(module.children()):
            return f"{name}: {module}" if name else str(module)
    return type(model).__name__


def _forward_first(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """The first forward pass of a run: a shape error becomes a ValueError that shows
    the batch and the model's first layer instead of a matrix-multiplication message."""
    try:
        return model(x)
    except RuntimeError as err:
        raise ValueError(
            f"the model cannot take a batch from {name} with shape {tuple(x.shape)} "
            f"and dtype {x.dtype}; its first layer is {_first_layer(model)}. "
            f"Original error: {err}"
        ) from err


def _check_labels(y: torch.Tensor, logits: torch.Tensor, name: str) -> None:
    """Integer labels must be (N,) and lie in 0 .. num_outputs - 1."""
    if y.dtype.is_floating_point or logits.ndim != 2:
        return  # soft targets or a non-classification output: nothing to check
    num_classes = logits.shape[1]
    try:
        check_labels(name, y, num_classes)
    except ValueError as err:
        raise ValueError(f"{err}: the model has {num_classes} outputs") from None


def _correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Number of correct argmax predictions (a 0-dim tensor), None if not a classifier."""
    if logits.ndim != 2:
        return None
    if y.ndim == 1 and not y.dtype.is_floating_point:
        return (logits.argmax(dim=1) == y).sum()
    if y.shape == logits.shape:  # soft targets (Mixup, CutMix, label smoothing)
        return (logits.argmax(dim=1) == y.argmax(dim=1)).sum()
    return None


# ----------------------------------------------------------------------------- one epoch


@dataclass
class _Setup:
    """Everything one training step needs besides the batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    scheduler: object | None
    per_batch: bool
    scaler: torch.amp.GradScaler
    use_amp: bool
    channels_last: bool
    grad_clip: float | None
    max_steps: int | None = None  # CNNBOOK_MAX_STEPS: stop after this many steps in all
    steps_done: int = 0
    batch_transform: Callable | None = None

    def capped(self) -> bool:
        return self.max_steps is not None and self.steps_done >= self.max_steps


def _prepare(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _train_epoch(s: _Setup, batches: Batches, bar: object, first: bool) -> tuple[float, float]:
    """One pass over the training data; returns (mean loss, accuracy)."""
    s.model.train()
    # Sums stay on the device: calling .item() every batch would wait for the GPU.
    loss_sum = torch.zeros((), device=batches.device, dtype=torch.float64)
    correct = torch.zeros((), device=batches.device, dtype=torch.int64)
    seen, has_acc, every = 0, True, max(1, (len(batches) or 100) // 20)
    for i, (x, y) in enumerate(batches):
        if s.batch_transform is not None:  # outside autocast: e.g. an attack in float32
            x = s.batch_transform(x, y, s.steps_done)
        x = _prepare(x, s.channels_last)
        first_batch = first and i == 0
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=s.use_amp):
            logits = _forward_first(s.model, x, batches.name) if first_batch else s.model(x)
            labels = batches.labels_to_check(first_batch)
            if labels is not None:  # before the first step: a bad label changes no weight
                _check_labels(labels, logits, batches.name)
            loss = s.loss_fn(logits, y)
        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        if s.grad_clip is not None:
            s.scaler.unscale_(s.optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(s.model.parameters(), s.grad_clip)
        s.scaler.step(s.optimizer)
        s.scaler.update()
        if s.scheduler is not None and s.per_batch:
            s.scheduler.step()
        s.steps_done += 1
        n = x.shape[0]
        seen += n
        loss_sum += loss.detach().double() * n
        c = _correct(logits.detach(), y)
        has_acc = has_acc and c is not None
        if has_acc:
            correct += c
        bar.update(1)
        if i % every == 0:
            text = {
                "loss": f"{loss_sum.item() / seen:.4f}",
                "acc": _acc_text(correct, seen, has_acc),
            }
            bar.set_postfix(text)
        if s.capped():
            break
    if seen == 0:
        raise ValueError(f"{batches.name} is empty: it produced no batches")
    acc = correct.item() / seen if has_acc else float("nan")
    return loss_sum.item() / seen, acc


def _acc_text(correct: torch.Tensor, seen: int, has_acc: bool) -> str:
    return f"{correct.item() / seen:.3f}" if has_acc else "n/a"


def _eval_pass(
    model: nn.Module,
    batches: Batches,
    loss_fn: Callable | None,
    use_amp: bool,
    channels_last: bool,
    keep: bool,
) -> dict:
    """Loss, accuracy and (if keep) logits and targets on the CPU, in eval mode."""
    loss_sum, correct, seen, has_acc = 0.0, 0, 0, True
    logits_all, targets_all = [], []
    with eval_mode(model), torch.no_grad():
        for i, (x, y) in enumerate(batches):
            x = _prepare(x, channels_last)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                logits = _forward_first(model, x, batches.name) if i == 0 else model(x)
                labels = batches.labels_to_check(i == 0)
                if labels is not None:
                    _check_labels(labels, logits, batches.name)
                if loss_fn is not None:
                    loss_sum += loss_fn(logits, y).double().item() * x.shape[0]
            c = _correct(logits, y)
            has_acc = has_acc and c is not None
            correct += int(c) if has_acc else 0
            seen += x.shape[0]
            if keep:
                logits_all.append(logits.float().cpu())
                targets_all.append(y.cpu())
    if seen == 0:
        raise ValueError(f"{batches.name} is empty: it produced no batches")
    out = {
        "loss": loss_sum / seen if loss_fn is not None else float("nan"),
        "accuracy": correct / seen if has_acc else float("nan"),
    }
    if keep:
        out["logits"] = torch.cat(logits_all)
        out["targets"] = torch.cat(targets_all)
        out["predictions"] = out["logits"].argmax(dim=1) if out["logits"].ndim == 2 else None
    return out


# ----------------------------------------------------------------------------- fit


def _make_optimizer(model: nn.Module, optimizer: object, lr: float) -> torch.optim.Optimizer:
    if optimizer is None:
        if not (isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        return torch.optim.Adam(model.parameters(), lr=lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    return optimizer


def _make_scheduler(scheduler: object, optimizer: torch.optim.Optimizer) -> object:
    """A scheduler instance, or a factory ``optimizer -> scheduler`` (handy with the
    default optimizer), or None."""
    if scheduler is None:
        return None
    if not hasattr(scheduler, "step") and callable(scheduler):
        scheduler = scheduler(optimizer)
    if not hasattr(scheduler, "step"):
        raise TypeError(
            f"scheduler must be an LR scheduler or a function optimizer -> scheduler, "
            f"got {type(scheduler).__name__}"
        )
    if getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError(
            "scheduler was built for a different optimizer than the one fit uses; pass that "
            "optimizer too, or pass scheduler=lambda opt: ... to build it on fit's optimizer"
        )
    return scheduler


def _resolve_step(scheduler: object, scheduler_step: str | None) -> bool:
    """True when the scheduler steps per batch."""
    if scheduler_step is not None:
        check_choice("scheduler_step", scheduler_step, SCHEDULER_STEPS)
    if scheduler is None:
        return False
    if scheduler_step is None:
        scheduler_step = "batch" if isinstance(scheduler, _PER_BATCH_SCHEDULERS) else "epoch"
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and scheduler_step == "batch":
        raise ValueError("scheduler_step must be 'epoch' for ReduceLROnPlateau (it needs a loss)")
    return scheduler_step == "batch"


def _check_positive(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    return float(value)


def fit(
    model: nn.Module,
    train_data: object,
    val_data: object = None,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    scheduler: object = None,
    scheduler_step: str | None = None,
    loss_fn: Callable | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 128,
    grad_clip: float | None = None,
    amp: bool = False,
    channels_last: bool = False,
    checkpoint: str | os.PathLike | None = None,
    seed: int = 0,
    live_plot: bool = False,
    progress: bool = True,
    batch_transform: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return its per-epoch History.

    train_data, val_data: an ``(X, y)`` tuple (X: (N, ...), y: (N,) int labels or (N, C)
        soft targets), a Dataset, or a DataLoader (used as given: its batch size wins).
    optimizer: default Adam(lr). scheduler: an LR scheduler on ``optimizer`` or a function
        ``optimizer -> scheduler``; stepped every batch or every epoch (``scheduler_step``;
        default: per batch for OneCycleLR/CyclicLR, per epoch otherwise).
    loss_fn: default cross-entropy. grad_clip: max gradient norm (clip_grad_norm_).
    amp, channels_last: float16 autocast and NHWC memory layout, CUDA only (warned and
        ignored elsewhere). checkpoint: a .pt path: load it if present (verified by
        SHA-256, no training), else train and save it. seed: shuffling and dropout.
    live_plot: redraw loss/accuracy curves each epoch in Jupyter, else one final plot.
    batch_transform: ``(x, y, step) -> x``, applied to each training batch on the device
        before the forward pass (``step`` counts optimizer steps from 0); e.g.
        ``cnnbook.attacks.adversarial_training`` swaps each batch for its attack.
    """
    model = check_model(model)
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    grad_clip = _check_positive("grad_clip", grad_clip)
    _check_callable("loss_fn", loss_fn)
    _check_callable("batch_transform", batch_transform, "(x, y, step) -> x")
    check_bool("live_plot", live_plot)
    check_bool("progress", progress)
    dev = default_device(None) if device is None else torch.device(device)
    if scheduler_step is not None:
        check_choice("scheduler_step", scheduler_step, SCHEDULER_STEPS)
    model.to(dev)
    if checkpoint is not None and Path(checkpoint).exists():
        return _resume(model, checkpoint, epochs, live_plot, progress)
    use_amp = _cuda_only("amp", amp, dev)
    use_cl = _cuda_only("channels_last", channels_last, dev)
    if use_cl:
        model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model, optimizer, lr)
    sched = _make_scheduler(scheduler, opt)
    setup = _Setup(
        model=model,
        optimizer=opt,
        loss_fn=loss_fn if loss_fn is not None else nn.CrossEntropyLoss(),
        scheduler=sched,
        per_batch=_resolve_step(sched, scheduler_step),
        scaler=torch.amp.GradScaler("cuda", enabled=use_amp),
        use_amp=use_amp,
        channels_last=use_cl,
        grad_clip=grad_clip,
        max_steps=max_steps(),
        batch_transform=batch_transform,
    )
    train = Batches(
        "train_data", train_data, batch_size=batch_size, shuffle=True, seed=seed, device=dev
    )
    val = None
    if val_data is not None:
        val = Batches(
            "val_data", val_data, batch_size=batch_size, shuffle=False, seed=seed, device=dev
        )
    # fork_rng: seed dropout & co. for this run without touching the caller's RNG state.
    cuda_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        history = _run_epochs(setup, train, val, epochs, live_plot, progress)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, history)
    return history


def _check_callable(name: str, value: object, signature: str = "(logits, y) -> loss") -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be None or callable {signature}, got {value!r}")


def _cuda_only(name: str, wanted: object, dev: torch.device) -> bool:
    if check_bool(name, wanted) and dev.type != "cuda":
        warnings.warn(
            f"{name}=True needs a CUDA device; running on {dev} in float32 without it",
            stacklevel=3,
        )
        return False
    return wanted


def _run_epochs(
    setup: _Setup,
    train: Batches,
    val: Batches | None,
    epochs: int,
    live_plot: bool,
    progress: bool,
) -> History:
    from tqdm.auto import tqdm  # here: tqdm.auto probes for Jupyter on import

    history = History()
    live = LivePlot() if live_plot and in_jupyter_kernel() else None
    for epoch in range(epochs):
        start = time.perf_counter()
        history.lr.append(float(setup.optimizer.param_groups[0]["lr"]))
        with tqdm(
            total=len(train), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress
        ) as bar:
            loss, acc = _train_epoch(setup, train, bar, first=epoch == 0)
            history.train_loss.append(loss)
            history.train_acc.append(acc)
            postfix = {"loss": f"{loss:.4f}", "acc": f"{acc:.3f}"}
            if val is not None:
                result = _eval_pass(
                    setup.model, val, setup.loss_fn, setup.use_amp, setup.channels_last, keep=False
                )
                history.val_loss.append(result["loss"])
                history.val_acc.append(result["accuracy"])
                postfix.update(
                    val_loss=f"{result['loss']:.4f}", val_acc=f"{result['accuracy']:.3f}"
                )
            bar.set_postfix(postfix)
        _step_epoch_scheduler(setup, history)
        history.seconds.append(time.perf_counter() - start)
        if live is not None:
            live.update(history)
        if setup.capped():
            # stacklevel 3: the warning points at fit's caller (fit -> _run_epochs -> here)
            warn_steps_capped("training", setup.steps_done, epoch + 1, epochs, stacklevel=3)
            break
    if live_plot and live is None:
        history.plot()
    return history


def _step_epoch_scheduler(setup: _Setup, history: History) -> None:
    if setup.scheduler is None or setup.per_batch:
        return
    if isinstance(setup.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        setup.scheduler.step((history.val_loss or history.train_loss)[-1])
    else:
        setup.scheduler.step()


def _resume(
    model: nn.Module, checkpoint: object, epochs: int, live_plot: bool, progress: bool
) -> History:
    history = load_checkpoint(checkpoint, model)
    if progress:
        print(f"Loaded {checkpoint} ({len(history)} epochs trained); delete it to train again.")
    if len(history) != epochs:
        warnings.warn(
            f"checkpoint {checkpoint} holds {len(history)} epochs but epochs={epochs}; "
            "using the checkpoint as it is (delete it to train again)",
            stacklevel=3,
        )
    if live_plot:
        show_history(history)
    return history


# ----------------------------------------------------------------------------- evaluate


def _eval_batches(
    data: object, batch_size: int, device: torch.device, name: str = "data"
) -> Batches:
    return Batches(name, data, batch_size=batch_size, shuffle=False, seed=0, device=device)


def _model_device(model: nn.Module, device: object) -> torch.device:
    if device is not None:
        dev = torch.device(device)
        model.to(dev)
        return dev
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def evaluate(
    model: nn.Module,
    data: object,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 256,
    loss_fn: Callable | None = None,
) -> dict:
    """Loss and accuracy of ``model`` on ``data`` (eval mode, no gradients).

    data: an ``(X, y)`` tuple, a Dataset or a DataLoader. device: default the model's.
    Returns ``{"loss", "accuracy", "logits": (N, C), "predictions": (N,), "targets": (N,)}``
    with tensors on the CPU; loss uses ``loss_fn`` (default cross-entropy).
    """
    model = check_model(model)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    dev = _model_device(model, device)
    _check_callable("loss_fn", loss_fn)
    batches = _eval_batches(data, batch_size, dev)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    return _eval_pass(model, batches, loss_fn, use_amp=False, channels_last=False, keep=True)


def predict(
    model: nn.Module,
    data: object,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Model outputs (logits) for ``data``: a tensor X (N, ...), an (X, y) tuple, a Dataset
    or a DataLoader. Returns (N, C) on the CPU, in data order, computed in eval mode."""
    model = check_model(model)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    dev = _model_device(model, device)
    if isinstance(data, torch.Tensor | np.ndarray):
        X = as_tensor("data", data)
        data = (X, torch.zeros(X.shape[0], dtype=torch.long))  # dummy labels, never checked
    batches = _eval_batches(data, batch_size, dev)
    return _eval_pass(model, batches, None, use_amp=False, channels_last=False, keep=True)["logits"]

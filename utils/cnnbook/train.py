"""The book's training loop: ``fit``, ``evaluate`` and ``predict``, plus checkpoints.

``fit`` is a plain loop a reader can follow line by line (``_train_epoch``): forward,
loss, backward, optional gradient clipping, optimizer step, scheduler step. Around it:
a tqdm progress bar, a per-epoch ``History``, an optional live plot, mixed precision and
channels_last on CUDA, and "load the checkpoint if present, else train and save it".

Data may be a ``(X, y)`` pair of tensors (the fast path for small data held in memory:
batches are cut on the device, no DataLoader), a ``torch.utils.data.Dataset`` or a
``DataLoader``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from cnnbook._checks import check_choice, check_int
from cnnbook._torch_checks import check_model, eval_mode
from cnnbook.integrity import sha256_file
from cnnbook.metrics import out_of_range_label
from cnnbook.runtime import device as default_device
from cnnbook.runtime import max_steps, warn_steps_capped

SCHEDULER_STEPS = ("batch", "epoch")
# Schedulers whose period is counted in optimizer steps, not epochs.
_PER_BATCH_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


class CheckpointCorruptError(OSError):
    """A checkpoint file does not match the SHA-256 recorded next to it (or that is missing)."""


# ----------------------------------------------------------------------------- history


@dataclass
class History:
    """Per-epoch record of a ``fit``: one entry per epoch in each list.

    ``val_loss``/``val_acc`` stay empty when there is no validation data; ``lr`` is the
    learning rate at the start of the epoch, ``seconds`` the epoch's wall time.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists of floats: safe for ``torch.load(weights_only=True)`` and JSON."""
        return {key: [float(v) for v in values] for key, values in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """Inverse of ``to_dict``; unknown keys are an error."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict of lists, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"data has unknown History fields {sorted(unknown)}")
        return cls(**{key: [float(v) for v in values] for key, values in data.items()})

    def best(self, metric: str | None = None) -> dict[str, float]:
        """The epoch with the best ``metric`` (max for accuracies, min for losses).

        Default metric: ``val_acc`` if there is validation data, else ``train_acc``.
        Returns ``{"epoch": 1-based epoch, <every metric>: value at that epoch}``.
        """
        if len(self) == 0:
            raise ValueError("the history is empty: nothing was trained")
        metric = metric or ("val_acc" if self.val_acc else "train_acc")
        names = tuple(self.__dataclass_fields__)
        check_choice("metric", metric, names)
        values = np.asarray(getattr(self, metric), dtype=float)
        if values.size == 0:
            raise ValueError(f"metric {metric!r} has no values (no validation data?)")
        pick = np.nanargmin if metric.endswith("loss") else np.nanargmax
        i = int(pick(values))
        row = {name: getattr(self, name)[i] for name in names if getattr(self, name)}
        return {"epoch": i + 1, **row}

    def plot(self, ax: Sequence | None = None) -> Sequence:
        """Loss (left) and accuracy (right) per epoch, train and validation.

        ax: two matplotlib Axes, or None for a new 9x3.5 inch figure. Returns the Axes.
        """
        if ax is None:
            import matplotlib.pyplot as plt  # here: importing pyplot picks a backend

            _, ax = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
        if len(ax) != 2:
            raise ValueError(f"ax must be two Axes (loss, accuracy), got {len(ax)}")
        epochs = np.arange(1, len(self) + 1)
        panels = (("loss", "Loss", "cross-entropy"), ("acc", "Accuracy", "accuracy"))
        for axis, (key, title, ylabel) in zip(ax, panels, strict=True):
            axis.clear()
            axis.plot(epochs, getattr(self, f"train_{key}"), "o-", label="train")
            val = getattr(self, f"val_{key}")
            if val:
                axis.plot(epochs[: len(val)], val, "s--", label="validation")
            axis.set(title=title, xlabel="epoch", ylabel=ylabel)
            if len(self):
                axis.legend()
            axis.grid(alpha=0.3)
        return ax


# ----------------------------------------------------------------------------- data


def _as_tensor(name: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        t = torch.from_numpy(value)
        # NumPy defaults to float64; models use float32.
        return t.to(torch.get_default_dtype()) if t.dtype.is_floating_point else t
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


class _Batches:
    """Batches ``(x, y)`` of one data source, already on ``device``; one pass per ``iter``.

    For an ``(X, y)`` pair the tensors move to the device once and each epoch draws a
    permutation from a seeded generator; otherwise a DataLoader does the work.
    """

    def __init__(
        self,
        name: str,
        data: object,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        device: torch.device,
    ) -> None:
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.X: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.loader: DataLoader | None = None
        if isinstance(data, tuple | list) and not isinstance(data, Dataset):
            self._from_tensors(data)
        elif isinstance(data, DataLoader):
            self.loader = data
        elif isinstance(data, Dataset):
            if _safe_len(data) == 0:
                raise ValueError(f"{name} is empty: the dataset has 0 samples")
            self.loader = DataLoader(
                data,
                batch_size=batch_size,
                shuffle=shuffle,
                generator=self.generator,
                pin_memory=device.type == "cuda",
            )
        else:
            raise TypeError(
                f"{name} must be an (X, y) tuple of tensors, a torch Dataset or a DataLoader, "
                f"got {type(data).__name__}"
            )
        if self.loader is not None and _safe_len(self.loader.dataset) == 0:
            raise ValueError(f"{name} is empty: its dataset has 0 samples")

    def _from_tensors(self, data: Sequence) -> None:
        if len(data) != 2:
            raise ValueError(f"{self.name} as a tuple must be (X, y), got {len(data)} items")
        X = _as_tensor(f"{self.name}[0] (X)", data[0])
        y = _as_tensor(f"{self.name}[1] (y)", data[1])
        if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
            raise ValueError(
                f"{self.name}: X and y must have the same number of samples, "
                f"got shapes {tuple(X.shape)} and {tuple(y.shape)}"
            )
        if X.shape[0] == 0:
            raise ValueError(f"{self.name} is empty: X has 0 samples")
        self.X, self.y = X.to(self.device), _long_labels(y).to(self.device)

    def __len__(self) -> int | None:
        if self.X is not None:
            return math.ceil(self.X.shape[0] / self.batch_size)
        return _safe_len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.X is not None:
            n = self.X.shape[0]
            if self.shuffle:
                order = torch.randperm(n, generator=self.generator).to(self.device)
            for start in range(0, n, self.batch_size):
                if self.shuffle:
                    idx = order[start : start + self.batch_size]
                    yield self.X[idx], self.y[idx]
                else:
                    yield (
                        self.X[start : start + self.batch_size],
                        self.y[start : start + self.batch_size],
                    )
            return
        for batch in self.loader:
            if not isinstance(batch, list | tuple) or len(batch) < 2:
                raise ValueError(
                    f"{self.name} must yield (x, y) batches, got {type(batch).__name__}"
                )
            x, y = batch[0], _long_labels(batch[1])
            self.cpu_labels = y  # checked before the move, where it costs no device sync
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def labels_to_check(self, first_batch: bool) -> torch.Tensor | None:
        """The labels to range-check now: at the first batch all of them if they are known
        (an (X, y) pair, a TensorDataset, a torchvision dataset's ``targets``), so that a
        bad label stops the run before any step; then each batch's CPU copy."""
        if self.X is not None:
            return self.y if first_batch else None
        if first_batch:
            known = _known_labels(self.loader.dataset)
            batch = self.cpu_labels
            # A collate_fn may turn integer labels into soft (N, K) targets (Mixup, CutMix):
            # then the dataset's labels and the batch's are checked separately.
            if known is not None and batch.ndim == 1 and not batch.dtype.is_floating_point:
                return torch.cat([known, batch])
            if known is not None:
                return known
        return self.cpu_labels


def _known_labels(dataset: object) -> torch.Tensor | None:
    """All labels of a dataset without loading its images, or None if that is not cheap."""
    if isinstance(dataset, Subset):
        inner = _known_labels(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        labels = dataset.tensors[1]
    else:
        labels = getattr(dataset, "targets", None)
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        return None
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.ndim != 1:
        return None
    return labels.long()


def _safe_len(obj: object) -> int | None:
    try:
        return len(obj)
    except TypeError:  # an IterableDataset may not know its length
        return None


def _long_labels(y: torch.Tensor) -> torch.Tensor:
    """Integer labels become int64 (what cross-entropy wants); soft targets stay float."""
    if isinstance(y, torch.Tensor) and not y.dtype.is_floating_point:
        return y.long()
    return y


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
    if y.ndim != 1:
        raise ValueError(f"labels in {name} must have shape (N,), got {tuple(y.shape)}")
    if (bad := out_of_range_label(y, num_classes)) is not None:
        raise ValueError(
            f"{name} has label {bad}, but the model has {num_classes} outputs "
            f"(num_classes={num_classes}), so labels must lie in 0..{num_classes - 1}"
        )


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

    def capped(self) -> bool:
        return self.max_steps is not None and self.steps_done >= self.max_steps


def _prepare(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _train_epoch(s: _Setup, batches: _Batches, bar: object, first: bool) -> tuple[float, float]:
    """One pass over the training data; returns (mean loss, accuracy)."""
    s.model.train()
    # Sums stay on the device: calling .item() every batch would wait for the GPU.
    loss_sum = torch.zeros((), device=batches.device, dtype=torch.float64)
    correct = torch.zeros((), device=batches.device, dtype=torch.int64)
    seen, has_acc, every = 0, True, max(1, (len(batches) or 100) // 20)
    for i, (x, y) in enumerate(batches):
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
    batches: _Batches,
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


# ----------------------------------------------------------------------------- checkpoints


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, history: History) -> Path:
    """Write ``{"model": state_dict on CPU, "history": plain lists}`` and ``path.sha256``.

    The file is written under a temporary name and renamed, so an interrupted save never
    leaves a half-written checkpoint behind. Returns the path.
    """
    model = check_model(model)
    if not isinstance(history, History):
        raise TypeError(f"history must be a History, got {type(history).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": state, "history": history.to_dict()}, tmp)
    os.replace(tmp, path)
    # sha256sum's format, so `sha256sum -c path.pt.sha256` works from a shell too.
    _sidecar(path).write_text(f"{sha256_file(path)}  {path.name}\n")
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> History:
    """Verify ``path`` against ``path.sha256``, load the weights into ``model``, return the
    History. Raises CheckpointCorruptError if the hash is missing or does not match."""
    model = check_model(model)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise CheckpointCorruptError(
            f"checkpoint {path} has no SHA-256 file {sidecar.name}, so it cannot be verified; "
            f"delete {path} to train again"
        )
    words = sidecar.read_text().split()
    expected = words[0].lower() if words else ""
    actual = sha256_file(path)
    if actual != expected:
        raise CheckpointCorruptError(
            f"checkpoint {path} is corrupt or was replaced: its SHA-256 is {actual}, "
            f"but {sidecar.name} records {expected or '(nothing)'}; "
            "delete both files to train again"
        )
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    saved = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    return History.from_dict(saved["history"])


# ----------------------------------------------------------------------------- live plot


def _in_jupyter_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class _LivePlot:
    """Redraws the History after each epoch in a Jupyter kernel through a display handle.

    The figure is a bare matplotlib Figure rendered to PNG here, so no backend is needed
    and nbclient (the book build, nbval) stores the last image as a static output.
    """

    def __init__(self) -> None:
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(9, 3.5), layout="constrained")
        self.axes = self.fig.subplots(1, 2)
        self.handle = None

    def update(self, history: History) -> None:
        import io

        from IPython.display import Image, display

        history.plot(self.axes)
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=80)
        image = Image(data=buffer.getvalue(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


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
    """
    model = check_model(model)
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    grad_clip = _check_positive("grad_clip", grad_clip)
    _check_loss_fn(loss_fn)
    for name, flag in (("live_plot", live_plot), ("progress", progress)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
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
    )
    train = _Batches(
        "train_data", train_data, batch_size=batch_size, shuffle=True, seed=seed, device=dev
    )
    val = None
    if val_data is not None:
        val = _Batches(
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


def _check_loss_fn(loss_fn: object) -> None:
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (logits, y) -> loss, got {loss_fn!r}")


def _cuda_only(name: str, wanted: object, dev: torch.device) -> bool:
    if not isinstance(wanted, bool):
        raise TypeError(f"{name} must be True or False, got {wanted!r}")
    if wanted and dev.type != "cuda":
        warnings.warn(
            f"{name}=True needs a CUDA device; running on {dev} in float32 without it",
            stacklevel=3,
        )
        return False
    return wanted


def _run_epochs(
    setup: _Setup,
    train: _Batches,
    val: _Batches | None,
    epochs: int,
    live_plot: bool,
    progress: bool,
) -> History:
    from tqdm.auto import tqdm  # here: tqdm.auto probes for Jupyter on import

    history = History()
    live = _LivePlot() if live_plot and _in_jupyter_kernel() else None
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
        if _in_jupyter_kernel():
            _LivePlot().update(history)
        else:
            history.plot()
    return history


# ----------------------------------------------------------------------------- evaluate


def _eval_batches(
    data: object, batch_size: int, device: torch.device, name: str = "data"
) -> _Batches:
    return _Batches(name, data, batch_size=batch_size, shuffle=False, seed=0, device=device)


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
    _check_loss_fn(loss_fn)
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
        X = _as_tensor("data", data)
        data = (X, torch.zeros(X.shape[0], dtype=torch.long))  # dummy labels, never checked
    batches = _eval_batches(data, batch_size, dev)
    return _eval_pass(model, batches, None, use_amp=False, channels_last=False, keep=True)["logits"]

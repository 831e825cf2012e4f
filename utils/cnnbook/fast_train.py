"""A fast CIFAR-10 trainer: every trick of chapter 10 in one readable loop.

The whole data set lives on the device as two tensors, so a batch is an index into
memory instead of a trip through a DataLoader. Each step:

1. take the next indices of this epoch's permutation (``shard``: in a distributed run,
   every rank takes every ``world_size``-th of them, like ``DistributedSampler``);
2. augment on the device (``cnnbook.batch_augment``): random horizontal flip and a random
   translation of up to ``pad`` pixels (reflect-pad, then crop);
3. forward and loss under autocast (bf16 or fp16, CUDA only) with label smoothing,
   in channels_last layout (CUDA by default);
4. backward (DDP all-reduces the gradients), SGD with Nesterov momentum, the
   warmup-then-decay ("one-cycle") learning rate, and the EMA of the weights.

At the end the EMA model is evaluated with test-time augmentation (the prediction for
an image and its mirror image averaged). The knobs are a ``cnnbook.fast_recipe.Recipe``;
the DDP plumbing is ``cnnbook.distributed``; the command line (also under torchrun) is
``cnnbook.fast_train_cli``, which ``python -m cnnbook.fast_train`` runs too.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnbook._checks import check_bool, check_int
from cnnbook._torch_checks import eval_mode
from cnnbook.batch_augment import _describe, apply_augment, random_flips, random_shifts
from cnnbook.distributed import Dist, average_buffers, current_dist, rank_device, shard
from cnnbook.fast_recipe import Recipe, _check_number
from cnnbook.history import History
from cnnbook.runtime import max_steps, warn_steps_capped

# ----------------------------------------------------------------------------- pieces


def lr_factor(step: int, total_steps: int, warmup: float) -> float:
    """The one-cycle shape: rises linearly from 0 to 1 over the first ``warmup`` fraction
    of ``total_steps``, then falls linearly to 0 at ``total_steps``.

    step counts optimizer steps from 0; the learning rate of a step is peak * factor.
    """
    step = check_int("step", step, minimum=0)
    total_steps = check_int("total_steps", total_steps, minimum=1)
    warmup = _check_number("warmup", warmup, low=0.0, high=1.0)
    peak = warmup * total_steps
    if step < peak:
        return (step + 1) / (peak + 1)  # never exactly 0: the first step already learns
    return max(0.0, (total_steps - step) / max(total_steps - peak, 1.0))


class EMA:
    """Exponential moving average of a model's weights: ema <- d * ema + (1 - d) * w.

    ``module`` is a frozen copy of the model that holds the averages; call ``update(model)``
    after every optimizer step. Floating-point buffers (BatchNorm's running statistics)
    are averaged too, integer buffers copied. The decay warms up as
    min(decay, (1 + t) / (10 + t)) after t updates, so the random initial weights are
    forgotten quickly in a short run.
    """

    def __init__(self, model: nn.Module, decay: float = 0.98) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.decay = _check_number("decay", decay, low=0.0, high=1.0, high_open=True)
        self.module = copy.deepcopy(_unwrap(model)).eval()
        self.module.requires_grad_(False)
        self.updates = 0

    def decay_at(self, t: int) -> float:
        """The decay used by update number t (from 0)."""
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay_at(self.updates)
        source = _unwrap(model).state_dict()
        for name, avg in self.module.state_dict().items():
            new = source[name].detach()
            if avg.dtype.is_floating_point:
                avg.lerp_(new.to(avg.dtype), 1.0 - d)  # avg + (1 - d) (new - avg)
            else:
                avg.copy_(new)
        self.updates += 1


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper or a torch.compile result."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ----------------------------------------------------------------------------- data


def _check_data(name: str, data: object) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise TypeError(f"{name} must be an (X, y) pair of tensors, got {type(data).__name__}")
    X, y = data
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must hold two torch tensors, got {_describe(X)}, {_describe(y)}")
    if X.ndim != 4:
        raise ValueError(f"{name}: X must be (N, C, H, W), got shape {tuple(X.shape)}")
    if X.dtype != torch.uint8 and not X.dtype.is_floating_point:
        raise TypeError(f"{name}: X must be uint8 or floating point, got {X.dtype}")
    if y.ndim != 1 or y.shape[0] != X.shape[0] or y.dtype.is_floating_point:
        raise ValueError(
            f"{name}: y must be (N,) integer labels for N = {X.shape[0]} images, "
            f"got {y.dtype} of shape {tuple(y.shape)}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return X, y.long()


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; float stays as it is."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    X: torch.Tensor,
    *,
    tta: bool = False,
    batch_size: int = 250,
    amp: bool = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """Logits (N, classes) in float32 for X: (N, C, H, W) (uint8 or float in [0, 1]).

    tta: average the logits of each image and of its mirror image. The model runs in
    eval mode on its own device; the result stays on that device. batch_size: 250 keeps
    each activation of the book's ResNets under 32 MB, which the memory allocator reuses
    instead of mapping fresh pages for every batch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(X, torch.Tensor) or X.ndim != 4:
        raise ValueError(f"X must be a (N, C, H, W) tensor, got {_describe(X)}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    check_bool("tta", tta)
    dev = next(model.parameters()).device
    outputs = []
    with eval_mode(model):
        for start in range(0, X.shape[0], batch_size):
            x = _layout(_as_float(X[start : start + batch_size].to(dev)), channels_last)
            with torch.autocast(dev.type, dtype=_amp_dtype(dev), enabled=amp):
                logits = model(x).float()
                if tta:
                    logits = 0.5 * (logits + model(x.flip(3)).float())
            outputs.append(logits)
    return torch.cat(outputs)


def evaluate_fast(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    tta: bool = False,
    batch_size: int = 250,
    amp: bool = False,
    channels_last: bool = False,
) -> float:
    """Accuracy of ``model`` on data = (X (N, C, H, W), y (N,)); with ``tta`` flip-averaged.

    In a distributed run every rank scores its share (every world_size-th image) and the
    counts are summed over the ranks, so all ranks return the accuracy on all of ``data``.
    """
    X, y = _check_data("data", data)
    ctx = current_dist()
    X, y = shard(X, ctx.rank, ctx.world_size), shard(y, ctx.rank, ctx.world_size)
    logits = predict_logits(
        model, X, tta=tta, batch_size=batch_size, amp=amp, channels_last=channels_last
    )
    correct = (logits.argmax(1).cpu() == y.cpu()).sum().item()
    correct, total = ctx.all_sum([correct, len(y)], logits.device)
    return correct / total


# ----------------------------------------------------------------------------- training


@dataclass
class FastResult:
    """What ``train_fast`` returns.

    model: the trained network (plain module). ema_model: its EMA copy, or None.
    test_acc: accuracy of the final model (the EMA one if any, with TTA if the recipe
        says so) on the test data. epochs: one dict per epoch (train_loss, train_acc,
        lr, seconds = training time so far, and test_acc where evaluated).
    train_seconds: time spent in training steps only (no evaluation, no set-up).
    images_per_second: training images processed per second (all ranks together).
    time_to_target: training seconds until ``recipe.target_acc`` was first reached.
    steps: optimizer steps taken (fewer than epochs * steps per epoch only when
        ``CNNBOOK_MAX_STEPS`` capped the run).
    """

    model: nn.Module
    ema_model: nn.Module | None
    test_acc: float
    epochs: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    images_per_second: float = 0.0
    time_to_target: float | None = None
    world_size: int = 1
    images_per_rank: int = 0
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    steps: int = 0

    @property
    def final_model(self) -> nn.Module:
        return self.ema_model if self.ema_model is not None else self.model

    def to_history(self) -> History:
        """The per-epoch numbers as a ``cnnbook.train.History`` (for checkpoints, plots)."""
        history = History()
        for row in self.epochs:
            history.train_loss.append(row["train_loss"])
            history.train_acc.append(row["train_acc"])
            history.lr.append(row["lr"])
            history.seconds.append(row["epoch_seconds"])
        return history

    def summary(self) -> dict:
        """Plain numbers (JSON-friendly)."""
        keep = ("test_acc", "train_seconds", "images_per_second", "time_to_target")
        keep += ("world_size", "images_per_rank", "device", "amp", "channels_last", "steps")
        return {key: getattr(self, key) for key in keep} | {"epochs": self.epochs}


def _amp_dtype(dev: torch.device) -> torch.dtype:
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _resolve_flags(recipe: Recipe, dev: torch.device) -> tuple[bool, bool]:
    on_cuda = dev.type == "cuda"
    amp = on_cuda if recipe.amp is None else recipe.amp
    if amp and not on_cuda:
        warnings.warn(f"amp=True needs a CUDA device; training on {dev} in float32", stacklevel=3)
        amp = False
    channels_last = on_cuda if recipe.channels_last is None else recipe.channels_last
    return amp, channels_last


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    """SGD with Nesterov momentum; weight decay only on weights with 2+ dimensions
    (convolution kernels, linear layers), not on BatchNorm scales and shifts."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)


def _epoch_plan(
    n: int, steps: int, recipe: Recipe, generator: torch.Generator, ctx: Dist
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """This rank's indices, flips and shifts for one epoch, each (steps * b, ...).

    The permutation and the augmentation are drawn for the whole epoch, identically on
    every rank (same generator state), then rank r keeps items r, r + W, r + 2W, ...: the
    W ranks together see exactly the images a one-process run sees in each step.
    """
    used = steps * recipe.batch_size
    order = torch.randperm(n, generator=generator)[:used]
    flips = random_flips(n, generator)[:used] if recipe.flip else None
    shifts = random_shifts(n, recipe.pad, generator)[:used] if recipe.pad else None
    return (
        shard(order, ctx.rank, ctx.world_size),
        shard(flips, ctx.rank, ctx.world_size) if flips is not None else None,
        shard(shifts, ctx.rank, ctx.world_size) if shifts is not None else None,
    )


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def train_fast(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor] | None,
    recipe: Recipe | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> FastResult:
    """Train ``model`` on train_data = (X (N, C, H, W) uint8 or float in [0, 1], y (N,))
    with ``recipe`` and evaluate it on test_data (None: no evaluation, test_acc is NaN).
    Returns a FastResult.

    Inside a ``torch.distributed`` process group (e.g. under torchrun) the model is
    wrapped in DistributedDataParallel and each rank trains on its share of every
    batch; every rank must pass the same data and an identically built model.
    device: default CUDA (this rank's GPU) if available, else CPU.
    on_epoch: called with each epoch's row of numbers (e.g. to print them).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    recipe = Recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    check_bool("progress", progress)
    X, y = _check_data("train_data", train_data)
    if test_data is not None:
        X_test, y_test = _check_data("test_data", test_data)
    elif recipe.eval_every or recipe.target_acc is not None:
        raise ValueError(
            "test_data is None, but the recipe asks for evaluations (eval_every, "
            "target_acc); pass test data or switch them off"
        )
    ctx = current_dist()
    if recipe.batch_size % ctx.world_size:
        raise ValueError(
            f"batch_size must be divisible by the world size {ctx.world_size}, "
            f"got {recipe.batch_size}"
        )
    steps = X.shape[0] // recipe.batch_size  # the last partial batch is dropped
    if steps == 0:
        raise ValueError(
            f"batch_size must be at most the number of training images ({X.shape[0]}), "
            f"got {recipe.batch_size}"
        )
    dev = rank_device(device, ctx)
    amp, channels_last = _resolve_flags(recipe, dev)

    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    X, y = X.to(dev), y.to(dev)  # the whole training set on the device, once
    net = model
    if ctx.active:
        ids = [dev.index] if dev.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if recipe.compile:
        net = torch.compile(net)
    optimizer = make_optimizer(model, recipe)
    total = recipe.epochs * steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(min(s, total - 1), total, recipe.warmup)
    )
    use_scaler = amp and _amp_dtype(dev) == torch.float16
    scaler = torch.amp.GradScaler(dev.type, enabled=use_scaler)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    ema = EMA(model, recipe.ema_decay) if recipe.ema_decay is not None else None
    generator = torch.Generator().manual_seed(recipe.seed)
    cap = max_steps()  # CNNBOOK_MAX_STEPS: a smoke test stops after this many steps

    def final_accuracy() -> float:
        if test_data is None:
            return float("nan")
        net_eval = ema.module if ema is not None else model
        return evaluate_fast(
            net_eval, (X_test, y_test), tta=recipe.tta, amp=amp, channels_last=channels_last
        )

    result = FastResult(
        model=model,
        ema_model=None,
        test_acc=float("nan"),
        world_size=ctx.world_size,
        device=str(dev),
        amp=amp,
        channels_last=channels_last,
    )
    from tqdm.auto import tqdm  # here: tqdm.auto probes for Jupyter on import

    bar = tqdm(total=total, desc="training", disable=not progress or ctx.rank != 0)
    model.train()
    for epoch in range(recipe.epochs):
        order, flips, shifts = _epoch_plan(X.shape[0], steps, recipe, generator, ctx)
        order = order.to(dev)
        lr = optimizer.param_groups[0]["lr"]
        _sync(dev)
        start = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64, device=dev)  # loss sum, correct, count
        b = recipe.batch_size // ctx.world_size
        for step in range(steps):
            part = slice(step * b, (step + 1) * b)
            x = _as_float(X[order[part]])
            x = apply_augment(
                x,
                flips[part] if flips is not None else None,
                shifts[part] if shifts is not None else None,
                recipe.pad,
            )
            x, target = _layout(x, channels_last), y[order[part]]
            with torch.autocast(dev.type, dtype=_amp_dtype(dev), enabled=amp):
                logits = net(x)
                loss = loss_fn(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # DDP all-reduces the gradients here
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            if ema is not None:
                ema.update(model)
            with torch.no_grad():  # kept on the device: no synchronisation per step
                sums += torch.stack(
                    [
                        loss.detach().double() * len(target),
                        (logits.argmax(1) == target).sum().double(),
                        torch.tensor(float(len(target)), dtype=torch.float64, device=dev),
                    ]
                )
            bar.update(1)
            result.steps += 1
            if cap is not None and result.steps >= cap:
                break
        _sync(dev)
        epoch_seconds = time.perf_counter() - start
        result.train_seconds += epoch_seconds
        loss_sum, correct, count = ctx.all_sum(sums.tolist(), dev)
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / count,
            "train_acc": correct / count,
            "lr": lr,
            "epoch_seconds": epoch_seconds,
            "seconds": result.train_seconds,
        }
        last = epoch + 1 == recipe.epochs
        if recipe.eval_every and ((epoch + 1) % recipe.eval_every == 0 or last):
            row["test_acc"] = final_accuracy()
            reached = recipe.target_acc is not None and row["test_acc"] >= recipe.target_acc
            if reached and result.time_to_target is None:
                result.time_to_target = result.train_seconds
        result.epochs.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}")
        if on_epoch is not None and ctx.rank == 0:
            on_epoch(row)
        if cap is not None and result.steps >= cap:
            warn_steps_capped("training", result.steps, epoch + 1, recipe.epochs, stacklevel=2)
            break
    bar.close()

    average_buffers(model, ctx)
    if ema is not None:
        average_buffers(ema.module, ctx)
        result.ema_model = ema.module
    last_row = result.epochs[-1]
    result.test_acc = last_row["test_acc"] if "test_acc" in last_row else final_accuracy()
    if recipe.target_acc is not None and result.time_to_target is None:
        if result.test_acc >= recipe.target_acc:
            result.time_to_target = result.train_seconds
    images = result.steps * recipe.batch_size
    result.images_per_rank = images // ctx.world_size
    result.images_per_second = images / max(result.train_seconds, 1e-9)
    return result


if __name__ == "__main__":  # ``python -m cnnbook.fast_train`` runs the command line too
    from cnnbook.fast_train_cli import main

    main()

"""Robustness: adversarial attacks (FGSM, PGD), adversarial training, and corruptions.

Images are ``x: (N, C, H, W)`` floats in [0, 1] and the model takes them as they are (put
any normalisation inside the model), so that ``epsilon`` is measured in pixel units: an
L-infinity budget of 0.1 lets every pixel move by at most 0.1 of the full grey range.

The attacks run the model in eval mode and take gradients with respect to the *input*
only (``torch.autograd.grad``), so they never touch the ``.grad`` of the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook._checks import check_bool, check_choice, check_int
from cnnbook._torch_checks import check_images, check_labels, check_model, eval_mode
from cnnbook.history import History
from cnnbook.train import fit

ATTACKS = ("fgsm", "pgd")
CORRUPTIONS = ("gaussian_noise", "gaussian_blur")
# Severity 1..5 of each corruption for images in [0, 1]: the noise standard deviation (as in
# ImageNet-C's Gaussian noise) and the blur's standard deviation in pixels (chosen for
# small 28x28 / 32x32 images, where ImageNet-C's values would wipe out the content).
NOISE_STD = (0.1, 0.2, 0.3, 0.45, 0.6)
BLUR_SIGMA = (0.5, 1.0, 1.5, 2.0, 2.5)


# ----------------------------------------------------------------------------- checks


def _check_epsilon(epsilon: object, name: str = "epsilon") -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
        raise TypeError(f"{name} must be a number, got {type(epsilon).__name__} {epsilon!r}")
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {epsilon}")
    return float(epsilon)


def _check_clamp(clamp: object) -> tuple[float, float] | None:
    if clamp is None:
        return None
    if not isinstance(clamp, tuple | list) or len(clamp) != 2 or not clamp[0] < clamp[1]:
        raise ValueError(f"clamp must be None or a pair (low, high) with low < high, got {clamp!r}")
    return float(clamp[0]), float(clamp[1])


# ----------------------------------------------------------------------------- attacks


def input_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable | None = None
) -> torch.Tensor:
    """Gradient of the loss with respect to the input: x (N, C, H, W), y (N,) -> (N, C, H, W).

    The loss is summed over the batch, so each image gets the gradient of its own loss.
    """
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(reduction="sum")
    x = x.detach().requires_grad_(True)
    loss = loss_fn(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float, clamp) -> torch.Tensor:
    """Back into the epsilon ball around x (L-infinity) and into the valid pixel box."""
    x_adv = x + (x_adv - x).clamp(-epsilon, epsilon)
    return x_adv if clamp is None else x_adv.clamp(*clamp)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    *,
    loss_fn: Callable | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """Fast Gradient Sign Method: one step of size epsilon up the sign of the input gradient.

    x: (N, C, H, W) in [0, 1]; y: (N,) true labels. Returns x_adv (N, C, H, W) with
    |x_adv - x| <= epsilon everywhere, clipped to ``clamp`` (None: no clipping).
    loss_fn(logits, y) must sum or average per-image losses (default cross-entropy).
    """
    model = check_model(model)
    x = check_images("x", x)
    y = check_labels("y", y, n=x.shape[0])
    epsilon = _check_epsilon(epsilon)
    clamp = _check_clamp(clamp)
    with eval_mode(model):
        grad = input_gradient(model, x, y, loss_fn)
    x_adv = x.detach() + epsilon * grad.sign()
    return x_adv if clamp is None else x_adv.clamp(*clamp)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    *,
    steps: int = 10,
    alpha: float | None = None,
    random_start: bool = True,
    loss_fn: Callable | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
) -> torch.Tensor:
    """Projected Gradient Descent (L-infinity): many small sign-gradient steps, projected.

    Starts at a uniformly random point of the epsilon ball around x (if ``random_start``),
    then ``steps`` times: step ``alpha`` (default 2.5 * epsilon / steps) along the sign of
    the input gradient, project back into the ball and into ``clamp``.
    x: (N, C, H, W); y: (N,). Returns x_adv with |x_adv - x| <= epsilon. ``seed`` fixes
    the random start.
    """
    model = check_model(model)
    x = check_images("x", x).detach()
    y = check_labels("y", y, n=x.shape[0])
    epsilon = _check_epsilon(epsilon)
    steps = check_int("steps", steps, minimum=1)
    alpha = 2.5 * epsilon / steps if alpha is None else _check_epsilon(alpha, "alpha")
    clamp = _check_clamp(clamp)
    seed = check_int("seed", seed, minimum=0)
    check_bool("random_start", random_start)
    x_adv = x.clone()
    if random_start:
        generator = torch.Generator().manual_seed(seed)
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x_adv = x + (2 * noise - 1) * epsilon  # uniform in the ball: no projection needed
        x_adv = x_adv if clamp is None else x_adv.clamp(*clamp)
    with eval_mode(model):
        for _ in range(steps):
            grad = input_gradient(model, x_adv, y, loss_fn)
            x_adv = _project(x_adv + alpha * grad.sign(), x, epsilon, clamp)
    return x_adv.detach()


def _attack_fn(attack: object) -> Callable:
    if callable(attack):
        return attack
    check_choice("attack", attack, ATTACKS)
    return fgsm if attack == "fgsm" else pgd


def accuracy_under_attack(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    attack: str | Callable,
    epsilon: float,
    *,
    batch_size: int = 500,
    **attack_kwargs: object,
) -> float:
    """Accuracy of ``model`` on adversarial versions of every image of ``data = (X, y)``.

    X: (N, C, H, W) in [0, 1]; y: (N,). attack: "fgsm", "pgd", or a function
    ``attack(model, x, y, epsilon, **attack_kwargs) -> x_adv``. Each batch is attacked
    with the true labels; the result is the fraction classified correctly (epsilon=0
    gives the clean accuracy).
    """
    model = check_model(model)
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise TypeError("data must be a pair (X, y) of tensors")
    X = check_images("data[0] (X)", data[0])
    y = check_labels("y", data[1], n=X.shape[0])
    attack_fn = _attack_fn(attack)
    epsilon = _check_epsilon(epsilon)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    correct = 0
    for start in range(0, X.shape[0], batch_size):
        x = X[start : start + batch_size].to(device)
        t = y[start : start + batch_size].to(device)
        x_adv = attack_fn(model, x, t, epsilon, **attack_kwargs) if epsilon > 0 else x
        with eval_mode(model), torch.no_grad():
            correct += int((model(x_adv).argmax(dim=1) == t).sum())
    return correct / X.shape[0]


# ----------------------------------------------------------------------------- training


def _training_step_size(epsilon: float, steps: object, alpha: float | None) -> float:
    """PGD's step for adversarial training: 1.25 * epsilon for one step (FGSM with a random
    start), else pgd's own default 2.5 * epsilon / steps."""
    steps = check_int("steps", steps, minimum=1)
    if alpha is not None:
        return alpha
    return 1.25 * epsilon if steps == 1 else 2.5 * epsilon / steps


def adversarial_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    *,
    steps: int = 1,
    alpha: float | None = None,
    loss_fn: Callable | None = None,
    seed: int = 0,
) -> tuple[float, int]:
    """One step of adversarial training: attack the batch, then learn from the attack.

    The adversarial batch comes from ``pgd`` with a random start; ``steps=1`` with
    ``alpha = 1.25 * epsilon`` (the default for one step) is "FGSM with a random start",
    the cheap variant that avoids FGSM training's failure mode of masking its own
    gradients. x: (N, C, H, W) in [0, 1]; y: (N,). Returns (loss, correct) on the
    adversarial batch.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
    epsilon = _check_epsilon(epsilon)
    alpha = _training_step_size(epsilon, steps, alpha)
    x_adv = pgd(model, x, y, epsilon, steps=steps, alpha=alpha, loss_fn=loss_fn, seed=seed)
    model.train()
    logits = model(x_adv)
    loss = (loss_fn or nn.CrossEntropyLoss())(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), int((logits.argmax(dim=1) == y).sum())


def adversarial_training(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    epsilon: float,
    steps: int = 1,
    alpha: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    scheduler: object = None,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` on adversarial examples of ``train_data = (X, y)`` (see adversarial_step).

    X: (N, C, H, W) in [0, 1]; y: (N,). optimizer: default Adam(lr); scheduler: stepped
    after every batch (e.g. OneCycleLR). Batches are shuffled with ``seed``. This is
    ``cnnbook.train.fit`` with each batch swapped for its attack (a PGD random start
    seeded with ``seed`` + the step number) before the step; it runs on the model's
    device. Returns a ``History`` whose train loss and accuracy are on adversarial batches.
    """
    model = check_model(model)
    if not isinstance(train_data, tuple | list) or len(train_data) != 2:
        raise TypeError("train_data must be a pair (X, y) of tensors")
    X = check_images("train_data[0] (X)", train_data[0])
    y = check_labels("y", train_data[1], n=X.shape[0])
    epsilon = _check_epsilon(epsilon)
    alpha = _training_step_size(epsilon, steps, alpha)
    seed = check_int("seed", seed, minimum=0)

    def attack(x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        return pgd(model, x, t, epsilon, steps=steps, alpha=alpha, seed=seed + step)

    return fit(
        model,
        (X, y),
        epochs=epochs,
        optimizer=optimizer,
        lr=lr,
        scheduler=scheduler,
        scheduler_step="batch" if scheduler is not None else None,
        device=next((p.device for p in model.parameters()), torch.device("cpu")),
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        batch_transform=attack,
    )


# ----------------------------------------------------------------------------- corruptions


def _check_severity(severity: object) -> int:
    severity = check_int("severity", severity, minimum=1)
    if severity > 5:
        raise ValueError(f"severity must be in 1..5, got {severity}")
    return severity


def gaussian_noise(x: torch.Tensor, severity: int, *, seed: int = 0) -> torch.Tensor:
    """Add Gaussian noise of std ``NOISE_STD[severity - 1]`` and clip to [0, 1].

    x: (N, C, H, W) in [0, 1]. The noise is drawn from a generator seeded with ``seed``.
    """
    x = check_images("x", x)
    std = NOISE_STD[_check_severity(severity) - 1]
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (x + std * noise).clamp(0, 1)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (reflect padding).

    x: (N, C, H, W) -> (N, C, H, W). The kernel is separable and truncated at 3 sigma.
    """
    x = check_images("x", x)
    sigma = _check_epsilon(sigma, "sigma")
    if sigma == 0:
        return x.clone()
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    C = x.shape[1]
    out = F.pad(x, (radius,) * 4, mode="reflect")
    out = F.conv2d(out, g.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)  # rows
    return F.conv2d(out, g.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)  # columns


def gaussian_blur(x: torch.Tensor, severity: int) -> torch.Tensor:
    """Blur with sigma ``BLUR_SIGMA[severity - 1]`` pixels. x: (N, C, H, W) in [0, 1]."""
    return blur(x, BLUR_SIGMA[_check_severity(severity) - 1])


def corrupt(x: torch.Tensor, kind: str, severity: int, *, seed: int = 0) -> torch.Tensor:
    """Apply one of ``CORRUPTIONS`` at severity 1..5 to x: (N, C, H, W) in [0, 1]."""
    check_choice("kind", kind, CORRUPTIONS)
    if kind == "gaussian_noise":
        return gaussian_noise(x, severity, seed=seed)
    return gaussian_blur(x, severity)

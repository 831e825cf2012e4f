"""Losses and helpers for imbalanced classes: focal losses, class weights, a balanced sampler.

- ``softmax_focal_loss`` (Lin et al., 2017) multiplies each sample's cross-entropy by
  ``(1 - p_true)^gamma``: confidently right samples count less, hard ones more. With
  ``gamma=0`` it is exactly ``nn.CrossEntropyLoss`` (class weights included);
  ``SoftmaxFocalLoss`` is the same as a module.
- ``sigmoid_focal_loss`` is the binary / multi-label form of RetinaNet, the same
  quantity as ``torchvision.ops.sigmoid_focal_loss``; the detector of chapter 15
  (``cnnbook.detector.detection_loss``) uses it.
- ``class_weights`` gives per-class weights for a weighted loss; ``balanced_sampler`` a
  ``WeightedRandomSampler`` that draws every class equally often.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import WeightedRandomSampler

from cnnbook._checks import check_choice, check_int
from cnnbook._torch_checks import check_labels

REDUCTIONS = ("mean", "sum", "none")
WEIGHT_SCHEMES = ("balanced", "effective")


# ----------------------------------------------------------------------------- checks


def _check_tensor(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_gamma(gamma: object) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"gamma must be a number >= 0, got {type(gamma).__name__} {gamma!r}")
    if not (np.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    return float(gamma)


def _reduce(loss: torch.Tensor, reduction: str, weights: torch.Tensor | None) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    # Weighted mean, as nn.CrossEntropyLoss: divide by the total weight, not by N.
    return loss.sum() / weights.sum() if weights is not None else loss.mean()


# ----------------------------------------------------------------------------- focal loss


def softmax_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-class focal loss ``-w_y (1 - p_y)^gamma log p_y`` per sample.

    logits: (N, C) scores; target: (N,) integer labels; weight: optional (C,) class
    weights w (default all 1). p = softmax(logits). reduction: "mean" (sum divided by
    the summed weights of the targets, as ``nn.CrossEntropyLoss``), "sum" or "none"
    (returns (N,)). gamma=0 gives ``F.cross_entropy(logits, target, weight=weight)``.
    """
    logits = _check_tensor("logits", logits)
    if not logits.dtype.is_floating_point or logits.ndim != 2:
        raise ValueError(
            f"logits must be a floating-point (N, C) tensor, got {logits.dtype} "
            f"{tuple(logits.shape)}"
        )
    target = check_labels("target", target, logits.shape[1])
    if target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"logits and target must have the same N, got {logits.shape[0]} and {target.shape[0]}"
        )
    gamma = _check_gamma(gamma)
    check_choice("reduction", reduction, REDUCTIONS)
    log_p = logits.log_softmax(dim=1).gather(1, target[:, None]).squeeze(1)  # (N,) log p_y
    # (1 - p)^gamma with p computed from log p: stable, and 0 ** 0 == 1 keeps gamma=0 exact.
    modulator = (1 - log_p.exp()).clamp(min=0) ** gamma if gamma != 0 else 1.0
    loss = -modulator * log_p
    w = None
    if weight is not None:
        weight = _check_tensor("weight", weight)
        if weight.shape != (logits.shape[1],):
            raise ValueError(
                f"weight must have shape (C,) = ({logits.shape[1]},), got {tuple(weight.shape)}"
            )
        w = weight.to(logits.dtype)[target]
        loss = w * loss
    return _reduce(loss, reduction, w)


class SoftmaxFocalLoss(nn.Module):
    """``softmax_focal_loss`` as a module, e.g. ``fit(..., loss_fn=SoftmaxFocalLoss(gamma=2))``.

    weight (C,) is kept as a buffer, so it follows the module to the device.
    """

    def __init__(
        self, gamma: float = 2.0, weight: torch.Tensor | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.gamma = _check_gamma(gamma)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        if weight is not None:
            weight = _check_tensor("weight", weight)
            if weight.ndim != 1:
                raise ValueError(f"weight must have shape (C,), got {tuple(weight.shape)}")
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return softmax_focal_loss(
            logits, target, gamma=self.gamma, weight=self.weight, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary focal loss of independent sigmoid outputs (RetinaNet).

    logits, targets: same shape, targets in [0, 1] (float). Per element, with p =
    sigmoid(logit) and p_t = p if target is 1 else 1 - p:
    ``-a_t (1 - p_t)^gamma log p_t``, a_t = alpha for positives and 1 - alpha for
    negatives (alpha=None: no weighting). reduction: "mean", "sum" or "none".
    """
    logits = _check_tensor("logits", logits)
    targets = _check_tensor("targets", targets)
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits must be floating point, got dtype {logits.dtype}")
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits and targets must have the same shape, got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"alpha must be a number in [0, 1] or None, got {alpha!r}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    gamma = _check_gamma(gamma)
    check_choice("reduction", reduction, REDUCTIONS)
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # -log p_t
    loss = ce
    if gamma:  # gamma = 0 is plain binary cross-entropy: skip the modulator and its graph
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction, None)


# ----------------------------------------------------------------------------- weights


def class_counts(labels: object, num_classes: int) -> torch.Tensor:
    """Samples per class ``(num_classes,)`` int64 for integer ``labels: (N,)``."""
    num_classes = check_int("num_classes", num_classes, minimum=1)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    y = check_labels("labels", labels, num_classes)
    return torch.bincount(y, minlength=num_classes)


def class_weights(
    labels: object, num_classes: int, *, scheme: str = "balanced", beta: float = 0.999
) -> torch.Tensor:
    """Per-class loss weights ``(num_classes,)`` float32 from integer ``labels: (N,)``.

    scheme "balanced": ``N / (num_classes * n_c)``, scikit-learn's "balanced" weights; a
    weighted loss then gives every class the same total weight.
    scheme "effective": ``(1 - beta) / (1 - beta^n_c)`` (Cui et al., 2019, the "effective
    number of samples"), scaled to sum to num_classes; beta in [0, 1) moves from no
    reweighting (0) towards "balanced" (close to 1).
    Every class must occur at least once.
    """
    counts = class_counts(labels, num_classes)
    check_choice("scheme", scheme, WEIGHT_SCHEMES)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"labels has no sample of class(es) {missing}: cannot weight them")
    n = counts.double()
    if scheme == "balanced":
        return (n.sum() / (num_classes * n)).float()
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta < 1:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r}")
    w = (1 - beta) / (1 - beta**n)
    return (w * num_classes / w.sum()).float()


def balanced_sampler(
    labels: object, num_classes: int, *, num_samples: int | None = None, seed: int = 0
) -> WeightedRandomSampler:
    """A sampler that draws every class equally often (with replacement).

    Each sample gets weight 1 / n_c of its class, so each class has total weight 1.
    num_samples: draws per epoch (default N, one epoch's worth); seed: its generator.
    Use as ``DataLoader(dataset, batch_size=..., sampler=balanced_sampler(y, C))``.
    """
    counts = class_counts(labels, num_classes)
    y = labels if isinstance(labels, torch.Tensor) else torch.from_numpy(np.asarray(labels))
    n = y.shape[0]
    if n == 0:
        raise ValueError("labels is empty: nothing to sample")
    num_samples = n if num_samples is None else check_int("num_samples", num_samples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    per_sample = 1.0 / counts.double()[y.long()]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(per_sample, num_samples, replacement=True, generator=generator)

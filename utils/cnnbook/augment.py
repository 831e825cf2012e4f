"""Mixup and CutMix: batch-level augmentations that mix two images and their labels.

Both return soft labels ``(N, C)``: rows of class probabilities that sum to 1. PyTorch's
``nn.CrossEntropyLoss`` takes such probability targets directly (the loss is
``-sum_c t_c log softmax(z)_c``, averaged over the batch), and so does ``cnnbook.train.fit``,
whose default loss it is; no special soft-target loss is needed.

Randomness comes from a NumPy ``Generator`` passed in (``rng``), so a seeded run mixes
the same pairs with the same weights every time. ``mix_loader`` wraps tensors in a
DataLoader that mixes every batch, ready for ``fit``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from cnnbook._checks import check_choice, check_int

METHODS = ("mixup", "cutmix")


# ----------------------------------------------------------------------------- checks


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise TypeError(f"alpha must be a positive number, got {type(alpha).__name__} {alpha!r}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    return float(alpha)


def _check_lam(lam: object) -> float | None:
    if lam is None:
        return None
    if isinstance(lam, bool) or not isinstance(lam, int | float):
        raise TypeError(f"lam must be a number in [0, 1] or None, got {type(lam).__name__}")
    if not 0 <= lam <= 1:
        raise ValueError(f"lam must lie in [0, 1], got {lam!r}")
    return float(lam)


def _check_images(x: object, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    return x


# ----------------------------------------------------------------------------- labels


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer labels ``y: (N,)`` in 0..num_classes-1 -> float32 ``(N, num_classes)``.

    Soft labels ``(N, num_classes)`` (float) are returned unchanged, as float32, so that
    an already-mixed or label-smoothed batch can be mixed again.
    """
    num_classes = check_int("num_classes", num_classes, minimum=1)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.dtype.is_floating_point:
        if y.ndim != 2 or y.shape[1] != num_classes:
            raise ValueError(
                f"y as soft labels must have shape (N, {num_classes}), got {tuple(y.shape)}"
            )
        return y.float()
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,) (integer labels), got {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"y holds labels outside 0..{num_classes - 1} (min {int(y.min())}, "
            f"max {int(y.max())}) for num_classes={num_classes}"
        )
    return torch.nn.functional.one_hot(y.long(), num_classes).float()


def _prepare(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, rng: object, ndim: int | None
) -> tuple[torch.Tensor, torch.Tensor, np.random.Generator]:
    x = _check_images(x, ndim)
    targets = one_hot(y, num_classes)
    if targets.shape[0] != x.shape[0]:
        raise ValueError(
            f"x and y must hold the same number of samples, got {x.shape[0]} and {targets.shape[0]}"
        )
    return x, targets.to(x.device), _check_rng(rng)


def _partner(n: int, rng: np.random.Generator, device: torch.device) -> torch.Tensor:
    """For every sample, the index of the sample it is mixed with (a random permutation)."""
    return torch.from_numpy(rng.permutation(n)).to(device)


# ----------------------------------------------------------------------------- mixup


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rng: np.random.Generator,
    alpha: float = 0.2,
    lam: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al., 2018): blend each sample with a random partner of the batch.

    x: (N, ...) float; y: (N,) integer labels or (N, num_classes) soft labels.
    lam ~ Beta(alpha, alpha) unless ``lam`` is given; partner = a random permutation.
    Returns ``x_mixed = lam * x + (1 - lam) * x[partner]`` (N, ...), the soft labels
    ``lam * onehot(y) + (1 - lam) * onehot(y[partner])`` (N, num_classes) and lam.
    """
    x, targets, rng = _prepare(x, y, num_classes, rng, None)
    alpha = _check_alpha(alpha)
    lam = _check_lam(lam)
    if lam is None:
        lam = float(rng.beta(alpha, alpha))
    j = _partner(x.shape[0], rng, x.device)
    x_mixed = lam * x + (1 - lam) * x[j]
    y_mixed = lam * targets + (1 - lam) * targets[j]
    return x_mixed, y_mixed, lam


# ----------------------------------------------------------------------------- cutmix


def cutmix_box(H: int, W: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random box ``(top, left, bottom, right)`` (bottom/right exclusive) for CutMix.

    Its side ratios are sqrt(1 - lam), so before clipping it covers a fraction 1 - lam of
    the H x W image; its centre is uniform over the image and the box is clipped at the
    borders (so it may cover less).
    """
    H = check_int("H", H, minimum=1)
    W = check_int("W", W, minimum=1)
    lam = _check_lam(lam)
    if lam is None:
        raise TypeError("lam must be a number in [0, 1], got None")
    rng = _check_rng(rng)
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(H * ratio), int(W * ratio)
    cy, cx = int(rng.integers(H)), int(rng.integers(W))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, H)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, W)
    return top, left, bottom, right


def cutmix(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rng: np.random.Generator,
    alpha: float = 1.0,
    lam: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CutMix (Yun et al., 2019): paste a box from a random partner into each image.

    x: (N, C, H, W) float; y: (N,) integer labels or (N, num_classes) soft labels.
    lam ~ Beta(alpha, alpha) unless given sets the box size (``cutmix_box``); one box for
    the whole batch. The labels are mixed by the area actually kept after clipping:
    ``lam_kept = 1 - box area / (H W)``. Returns (x_mixed, soft labels, lam_kept).
    """
    x, targets, rng = _prepare(x, y, num_classes, rng, 4)
    alpha = _check_alpha(alpha)
    lam = _check_lam(lam)
    if lam is None:
        lam = float(rng.beta(alpha, alpha))
    H, W = x.shape[-2:]
    top, left, bottom, right = cutmix_box(H, W, lam, rng)
    j = _partner(x.shape[0], rng, x.device)
    x_mixed = x.clone()
    x_mixed[:, :, top:bottom, left:right] = x[j, :, top:bottom, left:right]
    lam_kept = 1.0 - (bottom - top) * (right - left) / (H * W)
    y_mixed = lam_kept * targets + (1 - lam_kept) * targets[j]
    return x_mixed, y_mixed, lam_kept


# ----------------------------------------------------------------------------- loaders


class MixCollate:
    """A DataLoader ``collate_fn`` that mixes every batch with Mixup or CutMix.

    method: "mixup" or "cutmix"; alpha: the Beta parameter (default 0.2 for Mixup,
    1.0 for CutMix); seed: seeds the NumPy generator, so the loader is reproducible
    (with ``num_workers=0``; worker processes would each copy the generator).
    Accepts a list of ``(x, y)`` samples (the usual DataLoader batch) or one ``(X, y)``
    pair of batch tensors. Returns ``(x_mixed, soft labels (N, num_classes))``.
    """

    def __init__(
        self,
        method: str,
        num_classes: int,
        *,
        alpha: float | None = None,
        seed: int = 0,
    ) -> None:
        self.method = check_choice("method", method, METHODS)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        default = 0.2 if method == "mixup" else 1.0
        self.alpha = _check_alpha(default if alpha is None else alpha)
        self.rng = np.random.default_rng(check_int("seed", seed, minimum=0))

    def __call__(self, batch: object) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
            x, y = batch
        elif isinstance(batch, list | tuple) and batch:
            xs, ys = zip(*batch, strict=True)
            x, y = torch.stack(xs), torch.as_tensor(np.asarray(ys))
        else:
            raise TypeError("batch must be a list of (x, y) samples or an (X, y) pair of tensors")
        mix = mixup if self.method == "mixup" else cutmix
        x_mixed, y_mixed, _ = mix(
            x, y, num_classes=self.num_classes, rng=self.rng, alpha=self.alpha
        )
        return x_mixed, y_mixed

    def __repr__(self) -> str:
        return f"MixCollate({self.method!r}, num_classes={self.num_classes}, alpha={self.alpha})"


class _Pairs(Dataset):
    """X, y indexed together; a list of indices gives a whole batch in one step.

    Deliberately not a TensorDataset: fit range-checks a TensorDataset's integer labels
    against the batch labels, which here are soft.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, index: object) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[index], self.y[index]


def mix_loader(
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    method: str = "mixup",
    alpha: float | None = None,
    batch_size: int = 128,
    seed: int = 0,
) -> DataLoader:
    """A shuffling DataLoader over ``X: (N, ...)``, ``y: (N,)`` that mixes every batch.

    Batches are cut from the tensors directly (no per-sample collation), then mixed by
    ``MixCollate(method, num_classes, alpha=alpha, seed=seed)``; the shuffle is seeded by
    ``seed`` too. Each pass yields ``(x_mixed, soft labels (B, num_classes))``.
    """
    X = _check_images(X)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y must have the same length, got {X.shape[0]} and {y.shape[0]}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    collate = MixCollate(method, num_classes, alpha=alpha, seed=seed)
    one_hot(y, num_classes)  # fail now, not at the first batch, if a label is out of range
    dataset = _Pairs(X, y)
    # A torch generator for the order, the collate's NumPy generator for the mixing.
    order = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    batches = BatchSampler(order, batch_size=batch_size, drop_last=False)
    # batch_size=None: each "item" is already a whole batch of indices (see _Pairs).
    return DataLoader(dataset, sampler=batches, batch_size=None, collate_fn=collate)

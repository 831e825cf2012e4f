"""Metric learning: embeddings whose distances mean "same" or "different".

A network maps each image to a point on the unit sphere; training pulls images of one
class together and pushes other classes apart, so the distances still work for classes
the network never saw. The pieces, each small:

- the networks ``EmbeddingNet`` and ``SiameseNet`` live in ``cnnbook.models.embedding``;
- ``pairwise_distances``, ``contrastive_loss`` (Hadsell, Chopra and LeCun, 2006),
  ``triplet_loss`` (Schroff, Kalenichenko and Philbin, 2015) and
  ``batch_hard_triplet_loss`` (Hermans, Beyer and Leibe, 2017);
- seeded samplers ``make_pairs`` and ``make_triplets``;
- evaluation: ``embed``, ``knn_predict``, ``recall_at_k``, ``roc_auc``,
  ``best_threshold`` and ``verification_accuracy``.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cnnbook._checks import check_choice, check_int
from cnnbook._torch_checks import check_labels, check_model, eval_mode

REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- checks


def _tensor(name: str, value: object, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    return value


def _floats(name: str, value: object, ndim: int) -> torch.Tensor:
    value = _tensor(name, value, ndim)
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {value.dtype}")
    return value


def _same(name: str, value: object, n: int) -> torch.Tensor:
    """0/1 (or bool) targets 'same class?' of shape (n,), as float."""
    value = _tensor(name, value, 1)
    if value.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries, got {value.shape[0]}")
    if value.numel() and not bool(((value == 0) | (value == 1)).all()):
        raise ValueError(f"{name} must hold only 0/1 or False/True")
    return value.float() if not value.dtype.is_floating_point else value


def _positive(name: str, value: object, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _same_shape(names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        listed = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, tensors, strict=True))
        raise ValueError(f"{', '.join(names)} must have the same shape, got {listed}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice("reduction", reduction, REDUCTIONS)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


# ----------------------------------------------------------------------------- embedding


@torch.no_grad()
def embed(model: nn.Module, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Embeddings (N, dim) of X: (N, C, H, W), computed in eval mode in batches."""
    model = check_model(model)
    X = _tensor("X", X)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    with eval_mode(model):
        return torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


# ----------------------------------------------------------------------------- distances


def pairwise_distances(
    a: torch.Tensor, b: torch.Tensor | None = None, *, squared: bool = False
) -> torch.Tensor:
    """Euclidean distances D: (N, M) with D[i, j] = ||a[i] - b[j]||; a: (N, D), b: (M, D).

    Uses ||a||^2 + ||b||^2 - 2 a.b (one matrix product instead of an (N, M, D) tensor).
    Rounding can make that slightly negative, so it is clamped at 0 before the root.
    ``b=None`` means b = a. ``squared=True`` returns the squared distances.
    """
    a = _floats("a", a, 2)
    b = a if b is None else _floats("b", b, 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same width D, got {a.shape[1]} and {b.shape[1]}")
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    sq = sq.clamp_min(0)
    return sq if squared else sq.sqrt()


def contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    same: torch.Tensor,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Contrastive loss of pairs; z1, z2: (N, D) embeddings, same: (N,) 1 if same class.

    With d = ||z1 - z2||: ``same * d^2 + (1 - same) * max(0, margin - d)^2``. Similar pairs
    are pulled together; different pairs are pushed apart only while closer than margin.
    Returns a scalar (``mean``/``sum``) or the (N,) per-pair losses (``none``).
    """
    z1, z2 = _floats("z1", z1, 2), _floats("z2", z2, 2)
    _same_shape(("z1", "z2"), (z1, z2))
    same = _same("same", same, z1.shape[0]).to(z1.dtype)
    margin = _positive("margin", margin)
    d = (z1 - z2).pow(2).sum(1).sqrt()
    loss = same * d.pow(2) + (1 - same) * F.relu(margin - d).pow(2)
    return _reduce(loss, reduction)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Triplet loss ``max(0, d(a, p) - d(a, n) + margin)``; all inputs (N, D).

    d is the plain Euclidean distance. (``nn.TripletMarginLoss`` measures
    ``||a - p + eps||`` with eps = 1e-6, which differs from this by at most eps * sqrt(D).)
    Returns a scalar (``mean``/``sum``) or the (N,) per-triplet losses (``none``).
    """
    anchor = _floats("anchor", anchor, 2)
    positive = _floats("positive", positive, 2)
    negative = _floats("negative", negative, 2)
    _same_shape(("anchor", "positive", "negative"), (anchor, positive, negative))
    margin = _positive("margin", margin)
    d_ap = (anchor - positive).pow(2).sum(1).sqrt()
    d_an = (anchor - negative).pow(2).sum(1).sqrt()
    return _reduce(F.relu(d_ap - d_an + margin), reduction)


def batch_hard_triplet_loss(
    z: torch.Tensor, labels: torch.Tensor, margin: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Batch-hard triplet loss; z: (N, D) embeddings, labels: (N,) ints.

    Every sample is an anchor with its *farthest* positive and *nearest* negative in the
    batch. Anchors without a positive or without a negative are skipped. Returns a
    scalar (``mean``/``sum``) or the per-anchor losses (``none``, anchors kept only).
    """
    z = _floats("z", z, 2)
    labels = check_labels("labels", labels, n=z.shape[0]).to(z.device)
    margin = _positive("margin", margin)
    # A tiny floor keeps the root differentiable when a point is compared with itself.
    D = pairwise_distances(z, squared=True).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=z.device)
    hardest_pos = D.masked_fill(~positive, float("-inf")).amax(1)
    hardest_neg = D.masked_fill(same, float("inf")).amin(1)
    keep = positive.any(1) & (~same).any(1)
    if not bool(keep.any()):
        raise ValueError("labels must give at least one anchor with a positive and a negative")
    loss = F.relu(hardest_pos[keep] - hardest_neg[keep] + margin)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- samplers


def _class_index(labels: torch.Tensor, need: int) -> tuple[np.ndarray, list[np.ndarray]]:
    y = labels.cpu().numpy()
    classes = np.unique(y)
    members = [np.flatnonzero(y == c) for c in classes]
    if len(classes) < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {len(classes)}")
    if max(len(m) for m in members) < need:
        raise ValueError(f"labels must have a class with at least {need} samples")
    return classes, members


def make_pairs(
    labels: torch.Tensor, n_pairs: int, seed: int = 0, positive_fraction: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded random pairs; labels: (N,) -> i: (n,), j: (n,) indices, same: (n,) 0/1 float.

    A ``positive_fraction`` of the pairs (rounded) are two different samples of one class,
    the rest come from two different classes; the class of each pair is uniform over
    the classes that can provide it.
    """
    labels = check_labels("labels", labels)
    n_pairs = check_int("n_pairs", n_pairs, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    frac = _positive("positive_fraction", positive_fraction)
    if frac > 1:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    classes, members = _class_index(labels, 2 if frac > 0 else 1)
    rng = np.random.default_rng(seed)
    n_pos = round(frac * n_pairs)
    i, j = np.empty(n_pairs, dtype=np.int64), np.empty(n_pairs, dtype=np.int64)
    usable = [m for m in members if len(m) >= 2]
    for t in range(n_pos):
        m = usable[rng.integers(len(usable))]
        i[t], j[t] = rng.choice(m, size=2, replace=False)
    for t in range(n_pos, n_pairs):
        c1, c2 = rng.choice(len(classes), size=2, replace=False)
        i[t], j[t] = rng.choice(members[c1]), rng.choice(members[c2])
    same = torch.zeros(n_pairs)
    same[:n_pos] = 1
    order = torch.from_numpy(rng.permutation(n_pairs))  # mix positives and negatives
    return torch.from_numpy(i)[order], torch.from_numpy(j)[order], same[order]


def make_triplets(
    labels: torch.Tensor, n_triplets: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded random triplets; labels: (N,) -> anchor, positive, negative index tensors (n,).

    The anchor's class is uniform over classes with at least 2 samples; the positive is a
    different sample of that class, the negative a sample of another class.
    """
    labels = check_labels("labels", labels)
    n_triplets = check_int("n_triplets", n_triplets, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    classes, members = _class_index(labels, 2)
    rng = np.random.default_rng(seed)
    usable = [c for c, m in enumerate(members) if len(m) >= 2]
    a, p, n = (np.empty(n_triplets, dtype=np.int64) for _ in range(3))
    for t in range(n_triplets):
        c = usable[rng.integers(len(usable))]
        other = rng.integers(len(classes) - 1)
        other += other >= c  # uniform over the classes that are not c
        a[t], p[t] = rng.choice(members[c], size=2, replace=False)
        n[t] = rng.choice(members[other])
    return torch.from_numpy(a), torch.from_numpy(p), torch.from_numpy(n)


# ----------------------------------------------------------------------------- evaluation


def knn_predict(
    gallery: torch.Tensor, gallery_labels: torch.Tensor, queries: torch.Tensor, k: int = 1
) -> torch.Tensor:
    """Majority vote of the k nearest gallery items; gallery: (M, D), queries: (N, D) -> (N,).

    Ties in the vote go to the smallest label (as in scikit-learn's KNeighborsClassifier).
    """
    gallery, queries = _floats("gallery", gallery, 2), _floats("queries", queries, 2)
    gallery_labels = check_labels("gallery_labels", gallery_labels, n=gallery.shape[0])
    k = check_int("k", k, minimum=1)
    if k > gallery.shape[0]:
        raise ValueError(f"k must be <= the gallery size {gallery.shape[0]}, got {k}")
    nearest = pairwise_distances(queries, gallery).topk(k, dim=1, largest=False).indices
    votes = gallery_labels[nearest]  # (N, k)
    classes = gallery_labels.unique()  # sorted
    counts = (votes[:, :, None] == classes[None, None, :]).sum(1)  # (N, n_classes)
    return classes[counts.argmax(1)]  # argmax picks the first maximum: the smallest label


def recall_at_k(z: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Fraction of samples whose k nearest *other* samples include one of their class.

    z: (N, D) embeddings, labels: (N,). Each sample is a query against all the others.
    """
    z = _floats("z", z, 2)
    labels = check_labels("labels", labels, n=z.shape[0])
    k = check_int("k", k, minimum=1)
    if k > z.shape[0] - 1:
        raise ValueError(f"k must be <= N - 1 = {z.shape[0] - 1}, got {k}")
    D = pairwise_distances(z)
    D.fill_diagonal_(float("inf"))  # a sample may not retrieve itself
    nearest = D.topk(k, dim=1, largest=False).indices
    hit = (labels[nearest] == labels[:, None]).any(1)
    return hit.float().mean().item()


def roc_auc(scores: torch.Tensor, same: torch.Tensor) -> float:
    """Area under the ROC curve; scores: (N,) higher = "more likely same", same: (N,) 0/1.

    The probability that a random positive pair scores above a random negative one (ties
    count one half), computed from ranks (the Mann-Whitney U statistic).
    """
    scores = _floats("scores", scores, 1)
    same = _same("same", same, scores.shape[0]).bool()
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("same must contain both positive (1) and negative (0) pairs")
    # Rank of a score (1-based) = number of scores below it + (number equal to it + 1) / 2,
    # i.e. tied scores share the mean of their ranks. Sorting keeps it O(N log N).
    _, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    below = (counts.cumsum(0) - counts).double()
    ranks = (below + (counts.double() + 1) / 2)[inverse]
    U = ranks[same].sum() - n_pos * (n_pos + 1) / 2
    return (U / (n_pos * n_neg)).item()


def verification_accuracy(distances: torch.Tensor, same: torch.Tensor, threshold: float) -> float:
    """Accuracy of the rule "same if distance <= threshold"; distances, same: (N,)."""
    distances = _floats("distances", distances, 1)
    same = _same("same", same, distances.shape[0]).bool()
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
    return ((distances.double() <= float(threshold)) == same).float().mean().item()


def best_threshold(distances: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The threshold with the best accuracy on these pairs, and that accuracy.

    distances, same: (N,). Candidates are midpoints between consecutive sorted distances
    (and one below the smallest), so every distinct split of the pairs is tried once.
    """
    distances = _floats("distances", distances, 1)
    same = _same("same", same, distances.shape[0])
    if distances.numel() == 0:
        raise ValueError("distances must not be empty")
    d, order = distances.double().sort()
    s = same.double()[order]
    # Predicting "same" for the first t pairs: correct = positives among them + negatives after.
    pos_before = torch.cat([torch.zeros(1, dtype=torch.float64), s.cumsum(0)])
    neg_after = (1 - s).sum() - torch.cat([torch.zeros(1, dtype=torch.float64), (1 - s).cumsum(0)])
    correct = pos_before + neg_after  # (N + 1,) for t = 0..N
    # A split between two equal distances is impossible: allow t only where d changes.
    valid = torch.ones(len(d) + 1, dtype=torch.bool)
    valid[1:-1] = d[1:] > d[:-1]
    t = int(correct.masked_fill(~valid, -1).argmax())
    if t == 0:
        threshold = d[0].item() - 1.0
    elif t == len(d):
        threshold = d[-1].item()
    else:
        threshold = ((d[t - 1] + d[t]) / 2).item()
    return threshold, (correct[t] / len(d)).item()

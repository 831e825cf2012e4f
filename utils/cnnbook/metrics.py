"""Classification metrics in plain torch: accuracy, top-k, confusion matrix, precision,
recall and F1 per class, expected calibration error and the most confused class pairs.

Every function accepts torch tensors or NumPy arrays and returns torch tensors or floats.
Labels are integers ``0 .. num_classes - 1``; rows of a confusion matrix are true classes.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnbook._checks import check_int
from cnnbook._torch_checks import check_labels


def _as_tensor(name: str, value: object) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def _scores(name: str, value: object, n: int) -> torch.Tensor:
    """Scores ``(N, C)`` (logits or probabilities) matching ``n`` labels."""
    s = _as_tensor(name, value)
    if not s.dtype.is_floating_point:
        raise TypeError(f"{name} must hold floating-point scores, got dtype {s.dtype}")
    if s.ndim != 2 or s.shape[0] != n:
        raise ValueError(f"{name} must have shape (N, C) with N={n} labels, got {tuple(s.shape)}")
    return s


def _same_length(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{names} must have the same length, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] == 0:
        raise ValueError(f"{names} are empty: need at least one sample")


def accuracy(scores_or_pred: object, y: object) -> float:
    """Fraction of correct predictions.

    scores_or_pred: (N, C) logits/probabilities (argmax is taken) or (N,) predicted labels
    y: (N,) true labels
    """
    y = check_labels("y", _as_tensor("y", y))
    pred = _as_tensor("scores_or_pred", scores_or_pred)
    if pred.ndim == 2:
        pred = pred.argmax(dim=1)
    pred = check_labels("scores_or_pred", pred)
    _same_length(pred, y, "scores_or_pred and y")
    return (pred == y).double().mean().item()


def top_k_accuracy(logits: object, y: object, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    logits: (N, C) scores; y: (N,) true labels; 1 <= k <= C.
    """
    y = check_labels("y", _as_tensor("y", y))
    s = _scores("logits", logits, y.shape[0])
    k = check_int("k", k, minimum=1)
    if k > s.shape[1]:
        raise ValueError(f"k must be <= the number of classes {s.shape[1]}, got {k}")
    check_labels("y", y, s.shape[1])
    _same_length(s, y, "logits and y")
    top = s.topk(k, dim=1).indices  # (N, k)
    return (top == y[:, None]).any(dim=1).double().mean().item()


def confusion_matrix(y_true: object, y_pred: object, num_classes: int) -> torch.Tensor:
    """Counts ``(num_classes, num_classes)`` int64: entry [i, j] = samples of class i predicted j.

    y_true, y_pred: (N,) labels in 0..num_classes-1
    """
    num_classes = check_int("num_classes", num_classes, minimum=1)
    t = check_labels("y_true", _as_tensor("y_true", y_true), num_classes)
    p = check_labels("y_pred", _as_tensor("y_pred", y_pred), num_classes)
    _same_length(t, p, "y_true and y_pred")
    # One bincount over the flattened (true, pred) index is the whole matrix.
    flat = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def precision_recall_f1(
    y_true: object, y_pred: object, num_classes: int
) -> dict[str, torch.Tensor | float]:
    """Per-class precision, recall and F1 ``(num_classes,)`` float64, plus their macro means.

    A class that is never predicted has precision 0, one that never occurs has recall 0
    (scikit-learn's ``zero_division=0``). Keys: precision, recall, f1, support,
    macro_precision, macro_recall, macro_f1.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp = cm.diagonal()
    predicted = cm.sum(dim=0)  # column sums: how often each class was predicted
    actual = cm.sum(dim=1)  # row sums: how often each class occurs
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), 0.0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": actual.long(),
        "macro_precision": precision.mean().item(),
        "macro_recall": recall.mean().item(),
        "macro_f1": f1.mean().item(),
    }


def expected_calibration_error(probs: object, y: object, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins.

    probs: (N, C) predicted probabilities (rows sum to 1); y: (N,) true labels.
    The confidence of a sample is its largest probability; bin b holds the samples with
    confidence in ((b-1)/n_bins, b/n_bins]. ECE = sum over bins of
    (samples in bin / N) * |accuracy in bin - mean confidence in bin|.
    """
    y = check_labels("y", _as_tensor("y", y))
    p = _scores("probs", probs, y.shape[0]).double()
    n_bins = check_int("n_bins", n_bins, minimum=1)
    check_labels("y", y, p.shape[1])
    _same_length(p, y, "probs and y")
    if p.min() < 0 or p.max() > 1:
        raise ValueError("probs must lie in [0, 1]: apply softmax to logits first")
    confidence, pred = p.max(dim=1)
    correct = (pred == y).double()
    # bucketize against the inner edges gives bins closed on the right: (lo, hi].
    inner = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    b = torch.bucketize(confidence, inner)
    count = torch.bincount(b, minlength=n_bins).double()
    conf_sum = torch.bincount(b, weights=confidence, minlength=n_bins)
    acc_sum = torch.bincount(b, weights=correct, minlength=n_bins)
    # |acc_b - conf_b| * n_b / N == |sum correct - sum confidence| / N in each bin.
    return ((acc_sum - conf_sum).abs().sum() / count.sum()).item()


def most_confused_pairs(confusion: object, k: int = 5) -> list[tuple[int, int, float]]:
    """The ``k`` largest off-diagonal entries of a confusion matrix ``(C, C)``.

    Returns ``[(true_class, predicted_class, count), ...]``, largest count first, ties by
    (true, predicted); pairs with count 0 are left out, so the list may be shorter than k.
    Counts keep the matrix's type (int for counts, float for a normalised matrix).
    """
    cm = _as_tensor("confusion", confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square (C, C) matrix, got {tuple(cm.shape)}")
    k = check_int("k", k, minimum=1)
    off = cm.clone()
    off.fill_diagonal_(0)
    pairs = [(i, j, off[i, j].item()) for i, j in (off > 0).nonzero().tolist()]
    pairs.sort(key=lambda t: (-t[2], t[0], t[1]))
    return pairs[:k]

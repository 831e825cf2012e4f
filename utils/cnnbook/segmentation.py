"""Semantic segmentation: Dice losses, mIoU, boundary F-score.

Chapter 16 derives each piece in its own cells; this module holds the tidy versions. The
networks (U-Net, the FCN head and ASPP) are in ``cnnbook.models.unet`` and
``cnnbook.models.segmentation_heads``.

Shapes used throughout: images ``(N, C_in, H, W)``, logits ``(N, K, H, W)`` for ``K``
classes, label maps ``(N, H, W)`` int64 in ``0..K-1``.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook._checks import check_int
from cnnbook._torch_checks import check_labels

__all__ = [
    "CEDiceLoss",
    "boundary_f_score",
    "boundary_map",
    "confusion",
    "dice_loss",
    "iou_per_class",
    "mean_iou",
]

# ----------------------------------------------------------------------------- losses


def _check_logits_target(logits: object, target: object) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor of shape (N, K, H, W)")
    if not isinstance(target, torch.Tensor) or target.is_floating_point():
        raise TypeError("target must be an integer torch.Tensor of shape (N, H, W)")
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (N, K, H, W), got {tuple(logits.shape)}")
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"target must have shape {(logits.shape[0], *logits.shape[2:])} to match logits, "
            f"got {tuple(target.shape)}"
        )
    if target.numel() and (target.min() < 0 or target.max() >= logits.shape[1]):
        raise ValueError(f"target labels must lie in 0..{logits.shape[1] - 1}")


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, 1 - mean over classes of the batch Dice coefficient.

    logits: (N, K, H, W); target: (N, H, W) int labels. For class k, with p the softmax
    probabilities and t the one-hot target summed over the batch and all pixels,
    Dice_k = (2 sum p t + smooth) / (sum p + sum t + smooth). ``smooth`` keeps classes absent
    from both prediction and target at Dice 1 (and the gradient finite). Returns a 0-dim tensor.
    """
    _check_logits_target(logits, target)
    if isinstance(smooth, bool) or not isinstance(smooth, numbers.Real) or smooth < 0:
        raise ValueError(f"smooth must be a number >= 0, got {smooth!r}")
    probs = logits.softmax(dim=1)
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    overlap = (probs * one_hot).sum(dims)
    total = probs.sum(dims) + one_hot.sum(dims)
    dice = (2 * overlap + smooth) / (total + smooth).clamp_min(1e-12)
    return 1 - dice.mean()


class CEDiceLoss(nn.Module):
    """Pixel-wise cross-entropy plus ``dice_weight`` times the soft Dice loss.

    Cross-entropy gives every pixel a gradient from the start; Dice counts each class as a
    whole, so small classes weigh as much as the large background. Call as loss(logits, y).
    """

    def __init__(self, dice_weight: float = 1.0, *, smooth: float = 1.0) -> None:
        super().__init__()
        if isinstance(dice_weight, bool) or not isinstance(dice_weight, numbers.Real):
            raise TypeError(f"dice_weight must be a number, got {dice_weight!r}")
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}")
        self.dice_weight = float(dice_weight)
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_logits_target(logits, target)
        ce = F.cross_entropy(logits, target)
        return ce + self.dice_weight * dice_loss(logits, target, smooth=self.smooth)


# ----------------------------------------------------------------------------- metrics


def confusion(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, *, ignore_index: int | None = None
) -> torch.Tensor:
    """(K, K) int64 pixel counts: entry [i, j] = pixels of true class i predicted as j.

    pred, target: label maps of the same shape (any shape, e.g. (N, H, W)).
    Pixels whose target equals ``ignore_index`` are left out.
    """
    num_classes = check_int("num_classes", num_classes, minimum=1)
    t = check_labels("target", target, ndim=None)
    p = check_labels("pred", pred, num_classes, ndim=None)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {p.shape} and {t.shape}")
    if ignore_index is not None:
        keep = t != check_int("ignore_index", ignore_index)
        p, t = p[keep], t[keep]
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target must hold labels in 0..{num_classes - 1} (or ignore_index)")
    flat = torch.bincount((t * num_classes + p).flatten(), minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def iou_per_class(conf: torch.Tensor) -> torch.Tensor:
    """(K,) float64 IoU of each class from a (K, K) confusion matrix; NaN for a class that
    appears in neither target nor prediction. IoU_k = TP / (TP + FP + FN)."""
    if not isinstance(conf, torch.Tensor) or conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError("conf must be a square (K, K) torch.Tensor")
    conf = conf.double()
    tp = conf.diagonal()
    union = conf.sum(0) + conf.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, *, ignore_index: int | None = None
) -> float:
    """Mean intersection over union over the classes present in target or prediction.

    pred, target: label maps of the same shape. The confusion matrix is summed over all
    pixels of all images first (the usual "dataset" mIoU), then IoU is taken per class.
    """
    ious = iou_per_class(confusion(pred, target, num_classes, ignore_index=ignore_index))
    return float(ious[~ious.isnan()].mean()) if (~ious.isnan()).any() else float("nan")


def boundary_map(labels: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool: pixels whose label differs from a 4-neighbour (both sides of an edge).

    labels: (N, H, W) or (H, W) integer label maps. The image border is not a boundary.
    """
    labels = check_labels("labels", labels, ndim=None)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"labels must have shape (N, H, W) or (H, W), got {tuple(labels.shape)}")
    edge = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    dx = labels[:, :, 1:] != labels[:, :, :-1]
    dy = labels[:, 1:, :] != labels[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge


def _near(edge: torch.Tensor, tolerance: int) -> torch.Tensor:
    """Pixels within ``tolerance`` (chessboard distance) of an edge pixel."""
    if tolerance == 0:
        return edge
    k = 2 * tolerance + 1
    return F.max_pool2d(edge[:, None].float(), k, stride=1, padding=tolerance)[:, 0] > 0


def boundary_f_score(pred: torch.Tensor, target: torch.Tensor, *, tolerance: int = 1) -> float:
    """Boundary F-score: how well the predicted label edges match the true ones.

    pred, target: (N, H, W) or (H, W) label maps. A predicted boundary pixel counts as
    correct if a true boundary pixel lies within ``tolerance`` pixels (chessboard distance),
    and vice versa for recall; counts are pooled over all images. F = 2PR / (P + R).
    Both maps without any boundary give 1.0; exactly one without gives 0.0.
    """
    tolerance = check_int("tolerance", tolerance, minimum=0)
    p_edge = boundary_map(check_labels("pred", pred, ndim=None))
    t_edge = boundary_map(check_labels("target", target, ndim=None))
    if p_edge.shape != t_edge.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {pred.shape} and {target.shape}"
        )
    n_pred, n_true = int(p_edge.sum()), int(t_edge.sum())
    if n_pred == 0 and n_true == 0:
        return 1.0
    if n_pred == 0 or n_true == 0:
        return 0.0
    precision = int((p_edge & _near(t_edge, tolerance)).sum()) / n_pred
    recall = int((t_edge & _near(p_edge, tolerance)).sum()) / n_true
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)

"""Semantic segmentation: U-Net, an FCN head, ASPP, Dice losses, mIoU, boundary F-score.

Chapter 16 derives each piece in its own cells; this module holds the tidy versions.

Shapes used throughout: images ``(N, C_in, H, W)``, logits ``(N, K, H, W)`` for ``K``
classes, label maps ``(N, H, W)`` int64 in ``0..K-1``.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook._checks import check_choice, check_int

__all__ = [
    "ASPP",
    "CEDiceLoss",
    "DoubleConv",
    "FCNHead",
    "UNet",
    "boundary_f_score",
    "boundary_map",
    "confusion",
    "dice_loss",
    "iou_per_class",
    "mean_iou",
]

UPSAMPLING = ("transpose", "bilinear")


# ----------------------------------------------------------------------------- blocks


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions (padding 1), each followed by BatchNorm and ReLU.

    x: (N, C_in, H, W) -> (N, C_out, H, W). No bias: BatchNorm's shift replaces it.
    """

    def __init__(self, C_in: int, C_out: int) -> None:
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        super().__init__(
            nn.Conv2d(C_in, C_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(C_out, C_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
        )


class _Up(nn.Module):
    """Decoder step: double the resolution, match the skip's size, (concatenate), convolve.

    up: "transpose" (a learned 2x2 stride-2 transposed convolution) or "bilinear" (resize,
    then a 1x1 convolution to halve the channels; free of checkerboard artefacts).
    """

    def __init__(self, C_in: int, C_out: int, skip: bool, up: str) -> None:
        super().__init__()
        if up == "transpose":
            self.up = nn.ConvTranspose2d(C_in, C_out, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(C_in, C_out, kernel_size=1),
            )
        self.skip = skip
        self.conv = DoubleConv(2 * C_out if skip else C_out, C_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # odd sizes: pooling rounded down, so pad the upsampled map up to the skip's size
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dh or dw:
            x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        if self.skip:
            x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class UNet(nn.Module):
    """A U-Net (Ronneberger et al., 2015) with ``depth`` poolings, for any input size.

    x: (N, in_channels, H, W) -> logits (N, num_classes, H, W).
    Level ``i`` of the encoder has ``base * 2**i`` channels; the bottleneck has
    ``base * 2**depth``. ``skip=False`` drops the skip connections (the decoder then sees
    only the upsampled coarse features), for the ablation in chapter 16.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 4,
        *,
        base: int = 16,
        depth: int = 3,
        skip: bool = True,
        up: str = "transpose",
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        base = check_int("base", base, minimum=1)
        depth = check_int("depth", depth, minimum=1)
        if not isinstance(skip, bool):
            raise TypeError(f"skip must be True or False, got {skip!r}")
        check_choice("up", up, UPSAMPLING)
        widths = [base * 2**i for i in range(depth + 1)]
        self.skip = skip
        self.down = nn.ModuleList()
        C = in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(C, w))
            C = w
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.ups = nn.ModuleList(
            _Up(widths[i + 1], widths[i], skip, up) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
        features = []
        for block in self.down:
            x = block(x)
            features.append(x)  # kept for the skips; also gives the sizes to restore
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, feature in zip(self.ups, reversed(features), strict=True):
            x = up(x, feature)
        return self.head(x)


class FCNHead(nn.Module):
    """FCN-style head: classify each position of a coarse feature map, then upsample.

    features: (N, C_in, h, w) -> logits (N, num_classes, h, w), or (N, num_classes, *size)
    when ``size`` is given to ``forward`` (bilinear upsampling, as in FCN-32s).
    """

    def __init__(self, C_in: int, num_classes: int, *, hidden: int | None = None) -> None:
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        hidden = max(C_in // 4, 1) if hidden is None else check_int("hidden", hidden, minimum=1)
        self.body = nn.Sequential(
            nn.Conv2d(C_in, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 1),  # a 1x1 conv is a per-pixel linear classifier
        )

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        logits = self.body(features)
        if size is not None:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3): parallel dilated 3x3 convolutions.

    x: (N, C_in, H, W) -> (N, C_out, H, W). Branches: a 1x1 conv, one 3x3 conv per rate in
    ``rates`` (dilation = padding = rate, so the size is kept), and optionally the global
    average of the map broadcast back to every position; they are concatenated and mixed
    by a 1x1 conv.
    """

    def __init__(
        self, C_in: int, C_out: int, rates: tuple[int, ...] = (2, 4, 6), *, image_pool: bool = True
    ) -> None:
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        if not isinstance(rates, (tuple, list)) or not rates:
            raise TypeError(f"rates must be a non-empty tuple of ints, got {rates!r}")
        rates = tuple(check_int(f"rates[{i}]", r, minimum=1) for i, r in enumerate(rates))
        self.rates = rates

        def branch(k: int, dilation: int) -> nn.Sequential:
            pad = dilation * (k - 1) // 2
            return nn.Sequential(
                nn.Conv2d(C_in, C_out, k, padding=pad, dilation=dilation, bias=False),
                nn.BatchNorm2d(C_out),
                nn.ReLU(inplace=True),
            )

        self.branches = nn.ModuleList([branch(1, 1)] + [branch(3, r) for r in rates])
        # no BatchNorm on the pooled branch: it has one value per channel and image
        self.pool = (
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(C_in, C_out, 1), nn.ReLU())
            if image_pool
            else None
        )
        n_branches = len(self.branches) + (1 if image_pool else 0)
        self.project = nn.Sequential(
            nn.Conv2d(n_branches * C_out, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        if self.pool is not None:
            outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


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


def _labels(name: str, value: object, num_classes: int | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.is_floating_point():
        raise TypeError(f"{name} must be an integer torch.Tensor of labels")
    if (
        num_classes is not None
        and value.numel()
        and (value.min() < 0 or value.max() >= num_classes)
    ):
        raise ValueError(f"{name} must hold labels in 0..{num_classes - 1}")
    return value.long()


def confusion(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, *, ignore_index: int | None = None
) -> torch.Tensor:
    """(K, K) int64 pixel counts: entry [i, j] = pixels of true class i predicted as j.

    pred, target: label maps of the same shape (any shape, e.g. (N, H, W)).
    Pixels whose target equals ``ignore_index`` are left out.
    """
    num_classes = check_int("num_classes", num_classes, minimum=1)
    t = _labels("target", target)
    p = _labels("pred", pred, num_classes)
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
    labels = _labels("labels", labels)
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
    p_edge = boundary_map(_labels("pred", pred))
    t_edge = boundary_map(_labels("target", target))
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

"""Boxes, IoU, anchors, box encoding, non-maximum suppression and COCO-style mean AP.

Everything works on torch tensors (NumPy arrays are accepted and converted). Boxes are
rows of four numbers in pixels; the default format is ``xyxy`` = (x1, y1, x2, y2) with
x2 >= x1 and y2 >= y1, the format torchvision uses. A box with x2 == x1 or y2 == y1 is
allowed and has area 0.

Conventions chosen to agree with the references the tests compare against:

- ``box_iou`` and ``nms`` / ``batched_nms`` give the same results as ``torchvision.ops``,
  except that the IoU of two boxes whose union is empty is 0 here (torchvision gives NaN).
  NMS removes a box when its IoU with a kept box is *strictly* greater than the threshold
  (the IoU computed in the boxes' dtype, compared in float64, exactly as torchvision);
  equal scores keep their input order (a stable sort), so touching boxes (IoU 0) always
  survive and ties are resolved the same way every time.
- ``mean_average_precision`` follows the COCO evaluation: greedy matching by score, at
  most 100 detections per image and class, 101-point interpolated precision, classes
  without ground truth skipped. Its ``map`` averages IoU thresholds 0.50:0.05:0.95.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from cnnbook._checks import check_choice, check_int, check_pair

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")

# COCO's thresholds, made with NumPy in float64 exactly as pycocotools does.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)

# decode_boxes clamps log-size offsets here (as torchvision does) so exp() cannot overflow.
DEFAULT_LOG_SCALE_CLAMP = math.log(1000.0 / 16)


# --------------------------------------------------------------------------- validation
def _as_float_tensor(name: str, value: object) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}"
        )
    if value.dtype == torch.bool or value.dtype.is_complex:
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    return value if value.dtype.is_floating_point else value.float()


def _check_boxes(name: str, boxes: object, fmt: str = "xyxy") -> torch.Tensor:
    """Boxes (N, 4) as a float tensor; errors name ``name`` for bad shape, NaN or x2 < x1."""
    b = _as_float_tensor(name, boxes)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(b.shape)}")
    if not torch.isfinite(b).all():
        raise ValueError(f"{name} must hold finite numbers (found NaN or infinity)")
    if fmt == "xyxy":
        if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
            row = int(((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).nonzero()[0])
            raise ValueError(
                f"{name} must be xyxy boxes with x2 >= x1 and y2 >= y1; row {row} is "
                f"{b[row].tolist()}"
            )
    elif (b[:, 2:] < 0).any():
        raise ValueError(f"{name} in format {fmt!r} must have width and height >= 0")
    return b


def _check_scores(name: str, scores: object, n: int) -> torch.Tensor:
    s = _as_float_tensor(name, scores)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"{name} must have shape (N,) with N={n} boxes, got {tuple(s.shape)}")
    if torch.isnan(s).any():
        raise ValueError(f"{name} must not contain NaN")
    return s


def _check_labels(name: str, labels: object, n: int) -> torch.Tensor:
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy.ndarray, got {type(labels).__name__}"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape (N,) with N={n} boxes, got {tuple(labels.shape)}")
    return labels.long()


def _check_threshold(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


# --------------------------------------------------------------------------- formats
def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert boxes between formats.

    boxes: (N, 4) in ``in_fmt``; returns (N, 4) in ``out_fmt``. The formats are
    ``xyxy`` (corners), ``xywh`` (top-left corner, width, height) and ``cxcywh``
    (centre, width, height).
    """
    check_choice("in_fmt", in_fmt, BOX_FORMATS)
    check_choice("out_fmt", out_fmt, BOX_FORMATS)
    b = _check_boxes("boxes", boxes, in_fmt)
    if in_fmt == out_fmt:
        return b.clone()
    # Go through xyxy: two small formulas per format instead of six.
    if in_fmt == "xywh":
        b = torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)
    elif in_fmt == "cxcywh":
        b = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], dim=1)
    if out_fmt == "xywh":
        return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], dim=1)
    if out_fmt == "cxcywh":
        return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1)
    return b


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of xyxy boxes. boxes: (N, 4) -> (N,)."""
    b = _check_boxes("boxes", boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _pairwise_iou(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """IoU of already validated xyxy boxes: (N, 4), (M, 4) -> (N, M)."""
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    top_left = torch.maximum(b1[:, None, :2], b2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(b1[:, None, 2:], b2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)  # no overlap -> zero width or height
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    # Two empty boxes have an empty union; call their IoU 0 rather than 0 / 0.
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair. boxes1: (N, 4), boxes2: (M, 4) xyxy -> (N, M).

    IoU = area(A ∩ B) / area(A ∪ B), in [0, 1]. Boxes that only touch have IoU 0; two
    boxes of area 0 have IoU 0 (torchvision returns NaN there). Empty inputs give an
    empty (N, M) matrix.
    """
    b1 = _check_boxes("boxes1", boxes1)
    b2 = _check_boxes("boxes2", boxes2)
    dtype = torch.promote_types(b1.dtype, b2.dtype)
    return _pairwise_iou(b1.to(dtype), b2.to(dtype))


# --------------------------------------------------------------------------- anchors
def make_anchors(
    grid_size: int | tuple[int, int],
    stride: int,
    sizes: Sequence[float],
    aspect_ratios: Sequence[float] = (1.0,),
) -> torch.Tensor:
    """Anchor boxes centred on every cell of a feature grid.

    grid_size: (H_f, W_f) of the feature map (or one int for a square map); stride: pixels
    per feature cell; sizes: anchor side lengths in pixels (the square root of the area);
    aspect_ratios: height / width. Cell (i, j) has centre ((j + 0.5) stride, (i + 0.5) stride).
    Returns (H_f * W_f * A, 4) xyxy with A = len(sizes) * len(aspect_ratios), ordered row
    by row, then column, then size, then ratio, so ``.view(H_f, W_f, A, 4)`` recovers the grid.
    """
    H_f, W_f = check_pair("grid_size", grid_size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    sizes_t = _positive_vector("sizes", sizes)
    ratios_t = _positive_vector("aspect_ratios", aspect_ratios)
    # Width and height of each anchor shape: area size^2, height / width = ratio.
    w = (sizes_t[:, None] / ratios_t[None, :].sqrt()).reshape(-1)  # (A,)
    h = (sizes_t[:, None] * ratios_t[None, :].sqrt()).reshape(-1)
    half = torch.stack([-w, -h, w, h], dim=1) / 2  # (A, 4) around the origin
    cy = (torch.arange(H_f, dtype=torch.float32) + 0.5) * stride
    cx = (torch.arange(W_f, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(cy, cx, indexing="ij")  # (H_f, W_f)
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # (H_f * W_f, 1, 4)
    return (centres + half[None]).reshape(-1, 4)


def _positive_vector(name: str, values: object) -> torch.Tensor:
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise TypeError(f"{name} must be a non-empty sequence of positive numbers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must hold numbers, got {v!r}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must hold positive finite numbers, got {v}")
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


# --------------------------------------------------------------------------- encoding
def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    if not isinstance(weights, (list, tuple)) or len(weights) != 4:
        raise ValueError(f"weights must be four numbers (wx, wy, ww, wh), got {weights!r}")
    w = _positive_vector("weights", list(weights))
    return tuple(float(v) for v in w)  # type: ignore[return-value]


def encode_boxes(
    boxes: torch.Tensor,
    anchors: torch.Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> torch.Tensor:
    """Regression targets of ``boxes`` relative to their ``anchors`` (the R-CNN encoding).

    boxes, anchors: (N, 4) xyxy, row i of boxes belongs to row i of anchors; anchors must
    have positive width and height. Returns offsets (N, 4) = (tx, ty, tw, th) with
    tx = wx (cx - cx_a) / w_a, ty = wy (cy - cy_a) / h_a, tw = ww log(w / w_a),
    th = wh log(h / h_a). Boxes must have positive width and height too (log of 0).
    """
    b = box_convert(_check_boxes("boxes", boxes), "xyxy", "cxcywh")
    a = box_convert(_check_boxes("anchors", anchors), "xyxy", "cxcywh")
    if b.shape != a.shape:
        raise ValueError(
            f"boxes and anchors must have the same shape, got {tuple(b.shape)} and {tuple(a.shape)}"
        )
    if (a[:, 2:] <= 0).any():
        raise ValueError("anchors must have positive width and height")
    if (b[:, 2:] <= 0).any():
        raise ValueError("boxes must have positive width and height to be encoded")
    wx, wy, ww, wh = _check_weights(weights)
    tx = wx * (b[:, 0] - a[:, 0]) / a[:, 2]
    ty = wy * (b[:, 1] - a[:, 1]) / a[:, 3]
    tw = ww * torch.log(b[:, 2] / a[:, 2])
    th = wh * torch.log(b[:, 3] / a[:, 3])
    return torch.stack([tx, ty, tw, th], dim=1)


def decode_boxes(
    offsets: torch.Tensor,
    anchors: torch.Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    log_scale_clamp: float = DEFAULT_LOG_SCALE_CLAMP,
) -> torch.Tensor:
    """Boxes from offsets; the inverse of ``encode_boxes``. Differentiable in ``offsets``.

    offsets: (N, 4) (tx, ty, tw, th); anchors: (N, 4) xyxy. Returns (N, 4) xyxy.
    tw / ww and th / wh are clamped at ``log_scale_clamp`` (log(1000/16), as torchvision)
    so a wild prediction cannot overflow exp(); the round trip is exact below that.
    """
    o = _as_float_tensor("offsets", offsets)
    if o.ndim != 2 or o.shape[1] != 4:
        raise ValueError(f"offsets must have shape (N, 4), got {tuple(o.shape)}")
    a = box_convert(_check_boxes("anchors", anchors), "xyxy", "cxcywh").to(o.dtype)
    if o.shape != a.shape:
        raise ValueError(
            f"offsets and anchors must have the same shape, got {tuple(o.shape)} and "
            f"{tuple(a.shape)}"
        )
    wx, wy, ww, wh = _check_weights(weights)
    cx = o[:, 0] / wx * a[:, 2] + a[:, 0]
    cy = o[:, 1] / wy * a[:, 3] + a[:, 1]
    w = torch.exp((o[:, 2] / ww).clamp(max=log_scale_clamp)) * a[:, 2]
    h = torch.exp((o[:, 3] / wh).clamp(max=log_scale_clamp)) * a[:, 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def match_anchors(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    fg_iou: float = 0.5,
    bg_iou: float = 0.4,
    allow_low_quality: bool = True,
) -> torch.Tensor:
    """Assign every anchor to a ground-truth box, to background, or to "ignore".

    anchors: (A, 4), gt_boxes: (G, 4) xyxy. Returns (A,) int64: the index of the matched
    box (IoU >= fg_iou with its best box), -1 for background (best IoU < bg_iou) and -2
    for anchors in between, which the loss ignores. With ``allow_low_quality`` each box
    also claims the anchor(s) it overlaps most, so no object is left without an anchor.
    No boxes (G = 0): every anchor is background.
    """
    a = _check_boxes("anchors", anchors)
    g = _check_boxes("gt_boxes", gt_boxes)
    fg_iou = _check_threshold("fg_iou", fg_iou)
    bg_iou = _check_threshold("bg_iou", bg_iou)
    if bg_iou > fg_iou:
        raise ValueError(f"bg_iou must be <= fg_iou, got bg_iou={bg_iou}, fg_iou={fg_iou}")
    matches = torch.full((a.shape[0],), -1, dtype=torch.int64)
    if g.shape[0] == 0 or a.shape[0] == 0:
        return matches
    iou = _pairwise_iou(g.to(a.dtype), a)  # (G, A)
    best_iou, best_gt = iou.max(dim=0)  # per anchor
    matches = torch.where(best_iou >= fg_iou, best_gt, matches)
    matches[(best_iou >= bg_iou) & (best_iou < fg_iou)] = -2
    if allow_low_quality:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # (G, 1)
        gt_idx, anchor_idx = ((iou == best_per_gt) & (best_per_gt > 0)).nonzero(as_tuple=True)
        matches[anchor_idx] = best_gt[anchor_idx]
    return matches


# --------------------------------------------------------------------------- NMS
def _nms_sorted(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = _pairwise_iou(boxes[order], boxes[order])  # (N, N) in score order
    suppressed = torch.zeros(order.shape[0], dtype=torch.bool)
    keep = []
    for i in range(order.shape[0]):
        if suppressed[i]:
            continue
        keep.append(i)
        # Strictly greater, with the IoU (in the boxes' dtype) compared in float64 as
        # torchvision does: an IoU of exactly 0.3 in float32 counts as above 0.3.
        suppressed |= iou[i].double() > iou_threshold
    return order[torch.tensor(keep, dtype=torch.int64)]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression.

    boxes: (N, 4) xyxy, scores: (N,). Repeatedly keep the highest-scoring remaining box
    and drop every box whose IoU with it is greater than ``iou_threshold``. Returns the
    indices of the kept boxes (K,) int64, by decreasing score (equal scores: input order).
    No boxes give an empty result; NaN scores raise ValueError. The whole (N, N) IoU
    matrix is built at once: fine for the few hundred boxes a detector keeps before NMS.
    """
    b = _check_boxes("boxes", boxes)
    s = _check_scores("scores", scores, b.shape[0])
    t = _check_threshold("iou_threshold", iou_threshold)
    if b.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    return _nms_sorted(b, s, t)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS within each class: boxes of different labels never suppress each other.

    boxes: (N, 4) xyxy, scores: (N,), labels: (N,) integers. Returns kept indices (K,)
    int64 by decreasing score over all classes (equal scores: input order).
    """
    b = _check_boxes("boxes", boxes)
    s = _check_scores("scores", scores, b.shape[0])
    lab = _check_labels("labels", labels, b.shape[0])
    t = _check_threshold("iou_threshold", iou_threshold)
    keep = [torch.zeros(0, dtype=torch.int64)]
    for c in torch.unique(lab):
        idx = (lab == c).nonzero(as_tuple=True)[0]
        keep.append(idx[_nms_sorted(b[idx], s[idx], t)])
    kept = torch.cat(keep).sort().values  # input order first, so ties stay in input order
    return kept[torch.sort(s[kept], descending=True, stable=True).indices]


# --------------------------------------------------------------------------- mean AP
def average_precision(
    scores: np.ndarray, is_tp: np.ndarray, n_gt: int, recall_thresholds: np.ndarray | None = None
) -> float:
    """Interpolated average precision of one class at one IoU threshold, as COCO computes it.

    scores: (D,) detection scores, is_tp: (D,) bool (matched to a ground-truth box), n_gt:
    number of ground-truth boxes (> 0). Detections are ranked by score (stable); precision
    is made non-increasing in recall, read at each recall threshold (101 points 0, 0.01,
    ..., 1 by default; 0 where the recall is never reached) and averaged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_tp = np.asarray(is_tp, dtype=bool)
    if scores.ndim != 1 or is_tp.shape != scores.shape:
        raise ValueError(
            f"scores and is_tp must both have shape (D,), got {scores.shape} and {is_tp.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError("scores must not contain NaN")
    n_gt = check_int("n_gt", n_gt, minimum=1)
    if is_tp.sum() > n_gt:
        raise ValueError(f"is_tp has {is_tp.sum()} true positives but n_gt is only {n_gt}")
    thresholds = COCO_RECALL_THRESHOLDS if recall_thresholds is None else recall_thresholds
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(is_tp[order])
    fp = np.cumsum(~is_tp[order])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at >= recall
    idx = np.searchsorted(recall, thresholds, side="left")
    read = np.zeros(len(thresholds))
    ok = idx < len(precision)
    read[ok] = precision[idx[ok]]
    return float(read.mean())


def _match_image(
    det_boxes: np.ndarray, gt_boxes: np.ndarray, iou_thresholds: np.ndarray
) -> np.ndarray:
    """COCO's greedy matching; det_boxes (D, 4) already by decreasing score.

    Returns is_tp (T, D): each detection takes the unmatched ground-truth box with the
    highest IoU >= the threshold (on ties the later box, as pycocotools).
    """
    D, G = len(det_boxes), len(gt_boxes)
    is_tp = np.zeros((len(iou_thresholds), D), dtype=bool)
    if D == 0 or G == 0:
        return is_tp
    iou = _pairwise_iou(torch.from_numpy(det_boxes), torch.from_numpy(gt_boxes)).numpy()
    for t, thr in enumerate(iou_thresholds):
        taken = np.zeros(G, dtype=bool)
        for d in range(D):
            free = np.where(taken, -1.0, iou[d])
            if free.max() >= min(thr, 1 - 1e-10):
                m = G - 1 - int(np.argmax(free[::-1]))  # the last box with the top IoU
                taken[m] = True
                is_tp[t, d] = True
    return is_tp


def _check_detections(name: str, items: object, need_scores: bool) -> list[dict]:
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of dicts (one per image), got {type(items).__name__}"
        )
    checked = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TypeError(f"{name}[{i}] must be a dict, got {type(item).__name__}")
        keys = ("boxes", "scores", "labels") if need_scores else ("boxes", "labels")
        missing = [k for k in keys if k not in item]
        if missing:
            raise ValueError(f"{name}[{i}] is missing the key(s) {missing}")
        boxes = _check_boxes(f"{name}[{i}]['boxes']", item["boxes"]).double()
        out = {
            "boxes": boxes.numpy(),
            "labels": _check_labels(f"{name}[{i}]['labels']", item["labels"], len(boxes)).numpy(),
        }
        if need_scores:
            s = _check_scores(f"{name}[{i}]['scores']", item["scores"], len(boxes))
            out["scores"] = s.double().numpy()
        checked.append(out)
    return checked


def mean_average_precision(
    preds: list[dict],
    targets: list[dict],
    iou_thresholds: Sequence[float] | None = None,
    max_detections: int = 100,
) -> dict:
    """COCO-style mean average precision for xyxy boxes.

    preds: one dict per image with "boxes" (D_i, 4), "scores" (D_i,), "labels" (D_i,);
    targets: one dict per image with "boxes" (G_i, 4) and "labels" (G_i,). Per image and
    class, the ``max_detections`` best detections are matched greedily to ground truth.
    Returns a dict of floats: "map" (mean over classes and ``iou_thresholds``, by default
    0.50:0.05:0.95), "map_50", "map_75" (when those thresholds are used), "per_class"
    {label: AP averaged over thresholds} and "per_class_50". Classes without ground truth
    are skipped (their false positives cost nothing, as in COCO); with no ground truth at
    all every value is NaN. Empty prediction lists are fine (AP 0).
    """
    thresholds = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds)
    if thresholds.ndim != 1 or len(thresholds) == 0:
        raise ValueError("iou_thresholds must be a non-empty sequence of numbers")
    for t in thresholds:
        _check_threshold("iou_thresholds", float(t))
    max_detections = check_int("max_detections", max_detections, minimum=1)
    P = _check_detections("preds", preds, need_scores=True)
    T = _check_detections("targets", targets, need_scores=False)
    if len(P) != len(T):
        raise ValueError(
            f"preds and targets must have one entry per image, got {len(P)} and {len(T)}"
        )
    classes = sorted({int(c) for t in T for c in t["labels"]})
    ap = np.full((len(thresholds), len(classes)), np.nan)  # (T, C)
    for k, c in enumerate(classes):
        scores, hits, n_gt = [], [], 0
        for p, t in zip(P, T, strict=True):
            gt = t["boxes"][t["labels"] == c]
            n_gt += len(gt)
            sel = np.flatnonzero(p["labels"] == c)
            sel = sel[np.argsort(-p["scores"][sel], kind="mergesort")][:max_detections]
            scores.append(p["scores"][sel])
            hits.append(_match_image(p["boxes"][sel], gt, thresholds))
        s, h = np.concatenate(scores), np.concatenate(hits, axis=1)
        for i in range(len(thresholds)):
            ap[i, k] = average_precision(s, h[i], n_gt)
    result = {"map": float(np.mean(ap)) if classes else math.nan}
    for name, value in (("map_50", 0.5), ("map_75", 0.75)):
        hit = np.flatnonzero(np.isclose(thresholds, value))
        if len(hit):
            result[name] = float(np.mean(ap[hit[0]])) if classes else math.nan
    result["per_class"] = {c: float(ap[:, k].mean()) for k, c in enumerate(classes)}
    hit50 = np.flatnonzero(np.isclose(thresholds, 0.5))
    if len(hit50):
        result["per_class_50"] = {c: float(ap[hit50[0], k]) for k, c in enumerate(classes)}
    return result

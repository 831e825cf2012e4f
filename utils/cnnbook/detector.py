"""Training and decoding for the single-stage grid detector of chapter 15.

The network, ``GridDetector``, is in ``cnnbook.models.grid_detector``: for every anchor of
its grid it predicts one logit per object class (sigmoid, background = "no class fires")
and four box offsets relative to the anchor (``cnnbook.detection.encode_boxes``).

Training targets come from ``assign_targets`` (IoU matching of anchors to ground truth);
``detection_loss`` combines a classification loss (``cnnbook.losses.sigmoid_focal_loss``:
focal or plain binary cross-entropy, summed over anchors and divided by the number of
foreground anchors) with a smooth-L1 box loss on foreground anchors; ``decode_detections``
turns raw outputs into scored boxes with per-class NMS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnbook._checks import check_choice, check_int
from cnnbook.detection import (
    _check_boxes,
    _pairwise_iou,
    batched_nms,
    decode_boxes,
    encode_boxes,
)
from cnnbook.losses import sigmoid_focal_loss

IGNORE = -1  # label of anchors the classification loss skips (between the IoU thresholds)


def assign_targets(
    anchors: torch.Tensor,
    targets: list[dict],
    fg_iou: float = 0.5,
    bg_iou: float = 0.4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets for every anchor of every image.

    anchors: (G, 4) xyxy; targets: one dict per image with "boxes" (K_i, 4) xyxy and
    "labels" (K_i,) in 1..num_classes. Returns labels (N, G) int64 (0 background,
    c for class c, IGNORE for anchors between the thresholds) and box offsets (N, G, 4)
    (zeros where the anchor is not foreground). The matching rule is
    ``cnnbook.detection.match_anchors``, done for all images at once: the boxes are padded
    to the largest K_i and the padding never matches.
    """
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list of dicts, got {type(targets).__name__}")
    N, G = len(targets), anchors.shape[0]
    K = max([1] + [len(t["boxes"]) for t in targets])
    gt = torch.zeros(N, K, 4)
    gt[..., 2:] = 1.0  # padding: a harmless unit box, masked out below
    gt_labels = torch.zeros(N, K, dtype=torch.int64)
    valid = torch.zeros(N, K, dtype=torch.bool)
    for i, t in enumerate(targets):
        k = len(t["boxes"])
        gt[i, :k] = _check_boxes(f"targets[{i}]['boxes']", t["boxes"]).float()
        gt_labels[i, :k] = t["labels"]
        valid[i, :k] = True
    iou = _pairwise_iou(gt.view(-1, 4), anchors).view(N, K, G)
    iou = torch.where(valid[..., None], iou, -1.0)
    best_iou, best_gt = iou.max(dim=1)  # (N, G): each anchor's best box
    labels = torch.where(best_iou >= fg_iou, gt_labels.gather(1, best_gt), 0)
    labels[(best_iou >= bg_iou) & (best_iou < fg_iou)] = IGNORE
    # each box also claims the anchor(s) it overlaps most (as match_anchors does)
    best_per_gt = iou.max(dim=2, keepdim=True).values  # (N, K, 1)
    claimed = ((iou == best_per_gt) & (best_per_gt > 0) & valid[..., None]).any(dim=1)
    labels[claimed] = gt_labels.gather(1, best_gt)[claimed]
    fg = labels > 0
    matched = gt.gather(1, best_gt[..., None].expand(N, G, 4))  # (N, G, 4)
    offsets = torch.zeros(N, G, 4)
    if fg.any():
        offsets[fg] = encode_boxes(matched[fg], anchors.expand(N, G, 4)[fg])
    return labels, offsets


def detection_loss(
    cls_logits: torch.Tensor,
    box_offsets: torch.Tensor,
    labels: torch.Tensor,
    box_targets: torch.Tensor,
    classification: str = "focal",
    gamma: float = 2.0,
    alpha: float = 0.25,
) -> dict[str, torch.Tensor]:
    """Loss of a batch. cls_logits: (N, G, K), box_offsets: (N, G, 4), labels: (N, G) from
    ``assign_targets``, box_targets: (N, G, 4).

    classification: "focal" (focal loss with gamma and alpha) or "ce" (plain binary
    cross-entropy). Both are summed over the non-ignored anchors and classes and divided by
    the number of foreground anchors (at least 1); the box loss is smooth L1 (beta 1/9) on
    foreground anchors, divided the same way. Returns {"classification", "box", "total"}.
    """
    check_choice("classification", classification, ("focal", "ce"))
    if cls_logits.shape[:2] != labels.shape or box_offsets.shape != box_targets.shape:
        raise ValueError(
            "cls_logits (N, G, K), box_offsets (N, G, 4), labels (N, G) and box_targets "
            f"(N, G, 4) disagree: {tuple(cls_logits.shape)}, {tuple(box_offsets.shape)}, "
            f"{tuple(labels.shape)}, {tuple(box_targets.shape)}"
        )
    K = cls_logits.shape[-1]
    valid = labels != IGNORE
    fg = labels > 0
    n_fg = fg.sum().clamp(min=1)
    # one-hot over object classes; background is the all-zero row
    onehot = F.one_hot(labels.clamp(min=0), K + 1)[..., 1:].to(cls_logits.dtype)
    if classification == "focal":
        per_element = sigmoid_focal_loss(
            cls_logits[valid], onehot[valid], alpha=alpha, gamma=gamma, reduction="none"
        )
    else:
        per_element = sigmoid_focal_loss(
            cls_logits[valid], onehot[valid], alpha=None, gamma=0.0, reduction="none"
        )
    cls_loss = per_element.sum() / n_fg
    box_loss = F.smooth_l1_loss(box_offsets[fg], box_targets[fg], beta=1 / 9, reduction="sum")
    box_loss = box_loss / n_fg
    return {"classification": cls_loss, "box": box_loss, "total": cls_loss + box_loss}


@torch.no_grad()
def decode_detections(
    cls_logits: torch.Tensor,
    box_offsets: torch.Tensor,
    anchors: torch.Tensor,
    image_size: int,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 20,
    pre_nms_top_k: int = 200,
) -> list[dict[str, torch.Tensor]]:
    """Raw outputs to detections, one dict {"boxes", "scores", "labels"} per image.

    cls_logits: (N, G, K), box_offsets: (N, G, 4), anchors: (G, 4). For each image: keep
    (anchor, class) pairs with sigmoid score above ``score_threshold`` (at most
    ``pre_nms_top_k`` best), decode their boxes, clip them to the image, run per-class NMS
    and keep the ``max_detections`` best. Labels are 1..K.
    """
    check_int("image_size", image_size, minimum=1)
    check_int("max_detections", max_detections, minimum=1)
    check_int("pre_nms_top_k", pre_nms_top_k, minimum=1)
    N, G, K = cls_logits.shape
    results = []
    for i in range(N):
        scores = torch.sigmoid(cls_logits[i]).flatten()  # (G * K,), anchor-major
        keep = (scores > score_threshold).nonzero(as_tuple=True)[0]
        keep = keep[torch.sort(scores[keep], descending=True, stable=True).indices[:pre_nms_top_k]]
        anchor_idx, labels = keep // K, keep % K + 1
        boxes = decode_boxes(box_offsets[i, anchor_idx], anchors[anchor_idx])
        boxes = boxes.clamp(0, image_size)
        kept = batched_nms(boxes, scores[keep], labels, iou_threshold)[:max_detections]
        results.append({"boxes": boxes[kept], "scores": scores[keep][kept], "labels": labels[kept]})
    return results

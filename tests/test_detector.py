"""cnnbook.detector: shapes, targets, losses against torchvision, decoding, a tiny fit."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from cnnbook.detection import box_iou, encode_boxes, match_anchors
from cnnbook.detector import IGNORE, assign_targets, decode_detections, detection_loss
from cnnbook.models.grid_detector import GridDetector


def one_target(boxes: list[list[float]], labels: list[int]) -> dict:
    return {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels).long()}


def test_output_shapes_and_anchor_order():
    model = GridDetector(num_classes=3, image_size=64, anchor_sizes=(12, 24), width=8)
    cls, box = model(torch.rand(2, 3, 64, 64))
    G = 8 * 8 * 2
    assert cls.shape == (2, G, 3) and box.shape == (2, G, 4)
    assert model.anchors.shape == (G, 4)
    # anchor 2 * (8 * row + col) + a sits over cell (row, col)
    centre = (model.anchors[:, :2] + model.anchors[:, 2:]) / 2
    assert centre[2 * (8 * 3 + 5)].tolist() == [5.5 * 8, 3.5 * 8]


def test_prior_initialisation_gives_small_scores():
    torch.manual_seed(0)
    model = GridDetector(width=8, prior=0.01).eval()
    with torch.no_grad():
        cls, _ = model(torch.rand(1, 3, 64, 64))
    # the last layer's weights are small at initialisation, so the bias dominates
    assert torch.sigmoid(cls).mean().item() == pytest.approx(0.01, abs=0.01)


def test_assign_targets_labels_and_offsets():
    model = GridDetector(image_size=64, anchor_sizes=(16,), width=8)
    anchors = model.anchors
    target = one_target([[4.0, 4.0, 20.0, 20.0], [40.0, 40.0, 60.0, 52.0]], [2, 3])
    labels, offsets = assign_targets(anchors, [target, one_target([], [])])
    assert labels.shape == (2, 64) and offsets.shape == (2, 64, 4)
    # the first box is exactly the anchor of cell (1, 1): class 2 with zero offsets
    i = 8 * 1 + 1
    assert labels[0, i] == 2 and offsets[0, i].abs().max() == 0
    fg = labels[0] > 0
    assert set(labels[0, fg].tolist()) == {2, 3}
    iou = box_iou(anchors[fg], target["boxes"]).max(dim=1).values
    assert (iou > 0).all()
    matched = target["boxes"][box_iou(anchors[fg], target["boxes"]).argmax(dim=1)]
    torch.testing.assert_close(offsets[0, fg], encode_boxes(matched, anchors[fg]))
    assert (labels[1] == 0).all() and (offsets[1] == 0).all()  # no objects: all background
    assert IGNORE < 0


def test_assign_targets_equals_match_anchors_image_by_image():
    g = torch.Generator().manual_seed(4)
    model = GridDetector(
        image_size=64, anchor_sizes=(12, 20, 32), aspect_ratios=(0.5, 1.0), width=8
    )
    targets = []
    for i in range(40):
        k = i % 5  # 0 to 4 objects
        xy = torch.rand(k, 2, generator=g) * 48
        wh = 4 + torch.rand(k, 2, generator=g) * 30
        boxes = torch.cat([xy, (xy + wh).clamp(max=64)], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, 4, (k,), generator=g)})
    labels, offsets = assign_targets(model.anchors, targets)
    for i, t in enumerate(targets):
        m = match_anchors(model.anchors, t["boxes"])
        expected = torch.where(m >= 0, t["labels"][m.clamp(min=0)] if len(t["labels"]) else 0, 0)
        expected[m == -2] = IGNORE
        assert torch.equal(labels[i], expected), i
        fg = m >= 0
        if fg.any():
            torch.testing.assert_close(
                offsets[i, fg], encode_boxes(t["boxes"][m[fg]], model.anchors[fg])
            )


def test_classification_loss_is_torchvisions_focal_loss():
    """The classification term: torchvision's sigmoid focal loss summed over the anchors
    that are not ignored, divided by the number of foreground anchors ("ce": gamma 0, no
    alpha)."""
    torch.manual_seed(1)
    N, G, K = 2, 40, 3
    cls_logits, box_offsets = torch.randn(N, G, K) * 3, torch.randn(N, G, 4)
    labels, box_targets = torch.randint(IGNORE, K + 1, (N, G)), torch.randn(N, G, 4)
    valid, n_fg = labels != IGNORE, (labels > 0).sum()
    onehot = torch.nn.functional.one_hot(labels.clamp(min=0), K + 1)[..., 1:].float()
    for classification, gamma, alpha in [
        ("focal", 2.0, 0.25),
        ("focal", 0.5, 0.75),
        ("ce", 0.0, -1),
    ]:
        ours = detection_loss(
            cls_logits, box_offsets, labels, box_targets, classification, gamma=gamma, alpha=alpha
        )["classification"]
        ref = torchvision.ops.sigmoid_focal_loss(
            cls_logits[valid], onehot[valid], alpha, gamma, reduction="sum"
        )
        torch.testing.assert_close(ours, ref / n_fg)


def test_detection_loss_normalisation_and_ignore():
    torch.manual_seed(2)
    cls, box = torch.randn(1, 4, 3), torch.randn(1, 4, 4)
    labels = torch.tensor([[0, 2, IGNORE, 1]])
    box_targets = torch.randn(1, 4, 4)
    ce = detection_loss(cls, box, labels, box_targets, classification="ce")
    onehot = torch.tensor([[0.0, 0, 0], [0, 1, 0], [1, 0, 0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        cls[0, [0, 1, 3]], onehot, reduction="sum"
    )
    torch.testing.assert_close(ce["classification"], expected / 2)  # 2 foreground anchors
    fg = torch.tensor([1, 3])
    expected_box = torch.nn.functional.smooth_l1_loss(
        box[0, fg], box_targets[0, fg], beta=1 / 9, reduction="sum"
    )
    torch.testing.assert_close(ce["box"], expected_box / 2)
    focal = detection_loss(cls, box, labels, box_targets)
    assert focal["classification"] < ce["classification"]
    torch.testing.assert_close(focal["total"], focal["classification"] + focal["box"])


def test_decode_detections_recovers_encoded_boxes():
    model = GridDetector(image_size=64, anchor_sizes=(16,), width=8)
    target = one_target([[10.0, 12.0, 30.0, 28.0], [35.0, 30.0, 61.0, 60.0]], [1, 3])
    labels, offsets = assign_targets(model.anchors, [target])
    # logits: +10 for the assigned class on foreground anchors, -10 everywhere else
    logits = torch.full((1, 64, 3), -10.0)
    fg = labels[0] > 0
    logits[0, fg.nonzero()[:, 0], labels[0, fg] - 1] = 10.0
    dets = decode_detections(logits, offsets, model.anchors, image_size=64)[0]
    assert sorted(dets["labels"].tolist()) == [1, 3]  # NMS merges duplicates of one object
    order = dets["labels"].argsort()
    torch.testing.assert_close(dets["boxes"][order], target["boxes"], atol=1e-4, rtol=0)
    assert (dets["scores"] > 0.99).all()


def test_decode_with_nothing_above_threshold_is_empty():
    model = GridDetector(width=8)
    cls = torch.full((2, model.anchors.shape[0], 3), -20.0)
    box = torch.zeros(2, model.anchors.shape[0], 4)
    for det in decode_detections(cls, box, model.anchors, 64):
        assert det["boxes"].shape == (0, 4) and det["labels"].shape == (0,)


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(3)
    model = GridDetector(width=8)
    images = torch.rand(4, 3, 64, 64)
    targets = [one_target([[8.0 * i, 8.0, 8.0 * i + 20, 30.0]], [1 + i % 3]) for i in range(4)]
    labels, offsets = assign_targets(model.anchors, targets)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = detection_loss(*model(images), labels, offsets)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(math.isfinite(v) for v in losses)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: GridDetector(image_size=60), ValueError, "image_size"),
        (lambda: GridDetector(num_classes=0), ValueError, "num_classes"),
        (lambda: GridDetector(prior=1.0), ValueError, "prior"),
        (lambda: assign_targets(torch.zeros(1, 4), "boxes"), TypeError, "targets"),
        (
            lambda: detection_loss(
                torch.zeros(1, 4, 3),
                torch.zeros(1, 4, 4),
                torch.zeros(1, 5).long(),
                torch.zeros(1, 4, 4),
            ),
            ValueError,
            "disagree",
        ),
        (
            lambda: detection_loss(
                torch.zeros(1, 4, 3),
                torch.zeros(1, 4, 4),
                torch.zeros(1, 4).long(),
                torch.zeros(1, 4, 4),
                "mse",
            ),
            ValueError,
            "classification",
        ),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()

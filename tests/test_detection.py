"""cnnbook.detection against torchvision.ops, torchvision's box coder and matcher, and
torchmetrics' COCO mean average precision, over seeded random cases; plus bad inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from cnnbook.detection import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    average_precision,
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    decode_boxes,
    encode_boxes,
    make_anchors,
    match_anchors,
    mean_average_precision,
    nms,
)

N_CASES = 250


def random_boxes(rng: np.random.Generator, n: int, grid: bool) -> torch.Tensor:
    """(n, 4) xyxy boxes of positive size in [0, 40]. ``grid``: integer corners, so many
    boxes touch along an edge or coincide exactly."""
    if grid:
        x1 = rng.integers(0, 30, size=n)
        y1 = rng.integers(0, 30, size=n)
        w, h = rng.integers(1, 11, size=n), rng.integers(1, 11, size=n)
    else:
        x1, y1 = rng.uniform(0, 30, size=n), rng.uniform(0, 30, size=n)
        w, h = rng.uniform(0.5, 12, size=n), rng.uniform(0.5, 12, size=n)
    return torch.tensor(np.stack([x1, y1, x1 + w, y1 + h], axis=1), dtype=torch.float32)


def random_scores(rng: np.random.Generator, n: int, ties: bool) -> torch.Tensor:
    if ties:  # a handful of distinct values: many equal scores
        return torch.tensor(rng.integers(0, 4, size=n) / 4, dtype=torch.float32)
    return torch.tensor(rng.random(n), dtype=torch.float32)


# --------------------------------------------------------------------------- formats, IoU
def test_box_convert_matches_torchvision_and_round_trips():
    rng = np.random.default_rng(0)
    for case in range(50):
        b = random_boxes(rng, int(rng.integers(0, 20)), grid=bool(case % 2))
        for fmt in ("xywh", "cxcywh"):
            ours = box_convert(b, "xyxy", fmt)
            torch.testing.assert_close(ours, torchvision.ops.box_convert(b, "xyxy", fmt))
            torch.testing.assert_close(box_convert(ours, fmt, "xyxy"), b)
        torch.testing.assert_close(
            box_convert(box_convert(b, "xyxy", "xywh"), "xywh", "cxcywh"),
            torchvision.ops.box_convert(b, "xyxy", "cxcywh"),
        )
        torch.testing.assert_close(box_area(b), torchvision.ops.box_area(b))


def test_box_convert_hand_example():
    b = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert box_convert(b, "xyxy", "xywh").tolist() == [[10.0, 20.0, 20.0, 40.0]]
    assert box_convert(b, "xyxy", "cxcywh").tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert box_area(b).tolist() == [800.0]


def test_box_iou_matches_torchvision_on_random_cases():
    rng = np.random.default_rng(1)
    for case in range(N_CASES):
        grid = case % 2 == 0
        b1 = random_boxes(rng, int(rng.integers(0, 12)), grid)
        b2 = random_boxes(rng, int(rng.integers(0, 12)), grid)
        ours = box_iou(b1, b2)
        assert ours.shape == (len(b1), len(b2))
        torch.testing.assert_close(ours, torchvision.ops.box_iou(b1, b2), atol=1e-6, rtol=0)


def test_box_iou_touching_identical_and_empty_boxes():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    touching = torch.tensor([[2.0, 0.0, 4.0, 2.0], [0.0, 2.0, 2.0, 4.0], [2.0, 2.0, 3.0, 3.0]])
    assert box_iou(a, touching).tolist() == [[0.0, 0.0, 0.0]]
    assert box_iou(a, a).item() == 1.0
    half = torch.tensor([[1.0, 0.0, 3.0, 2.0]])  # overlap 2, union 6
    assert box_iou(a, half).item() == pytest.approx(1 / 3)
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert box_iou(point, point).item() == 0.0  # documented: 0, where torchvision gives NaN
    assert box_iou(a, point).item() == 0.0
    assert box_iou(torch.zeros(0, 4), a).shape == (0, 1)
    assert box_iou(a, np.zeros((0, 4))).shape == (1, 0)


# --------------------------------------------------------------------------- NMS
def test_nms_matches_torchvision_on_random_cases_with_ties_and_touching_boxes():
    rng = np.random.default_rng(2)
    for case in range(N_CASES):
        grid, ties = case % 2 == 0, case % 3 == 0
        n = int(rng.integers(0, 30))
        boxes, scores = random_boxes(rng, n, grid), random_scores(rng, n, ties)
        threshold = float(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0, rng.random()]))
        expected = torchvision.ops.nms(boxes, scores, threshold)
        assert torch.equal(nms(boxes, scores, threshold), expected), (case, threshold)


def test_batched_nms_matches_torchvision_on_random_cases():
    rng = np.random.default_rng(3)
    for case in range(N_CASES):
        grid, ties = case % 2 == 0, case % 3 == 0
        n = int(rng.integers(0, 30))
        boxes, scores = random_boxes(rng, n, grid), random_scores(rng, n, ties)
        labels = torch.tensor(rng.integers(0, 4, size=n), dtype=torch.int64)
        threshold = float(rng.choice([0.0, 0.5, 1.0, rng.random()]))
        expected = torchvision.ops.batched_nms(boxes, scores, labels, threshold)
        assert torch.equal(batched_nms(boxes, scores, labels, threshold), expected), case


def test_nms_documented_small_cases():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [10.0, 0.0, 20.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # box 1 overlaps box 0 (IoU 0.68)
    assert nms(boxes, scores, 0.0).tolist() == [0, 2]  # touching boxes (IoU 0) both survive
    assert nms(boxes, scores, 1.0).tolist() == [0, 1, 2]
    same = torch.tensor([0.5, 0.5, 0.5])
    assert nms(boxes, same, 0.5).tolist() == [0, 2]  # ties: input order
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    assert batched_nms(
        torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5
    ).shape == (0,)


# --------------------------------------------------------------------------- anchors
def test_anchor_layout_sizes_and_ratios():
    anchors = make_anchors((3, 4), stride=8, sizes=(8, 16), aspect_ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (3 * 4 * 6, 4)
    grid = anchors.view(3, 4, 6, 4)
    centres = box_convert(anchors, "xyxy", "cxcywh").view(3, 4, 6, 4)
    assert torch.allclose(centres[1, 2, :, 0], torch.tensor(2.5 * 8))  # column 2
    assert torch.allclose(centres[1, 2, :, 1], torch.tensor(1.5 * 8))  # row 1
    w, h = centres[0, 0, :, 2], centres[0, 0, :, 3]
    torch.testing.assert_close(w * h, torch.tensor([64.0] * 3 + [256.0] * 3))
    torch.testing.assert_close(h / w, torch.tensor([0.5, 1.0, 2.0] * 2))
    shift = torch.tensor([24.0, 16.0, 24.0, 16.0]).expand(6, 4)  # 3 columns, 2 rows on
    torch.testing.assert_close(grid[2, 3] - grid[0, 0], shift)


def test_anchors_match_torchvision_up_to_the_half_cell_shift():
    # torchvision puts anchor centres at (j * stride, i * stride); we use cell centres.
    for sizes, (H_f, W_f), stride in [
        ((16, 32), (4, 5), 8),
        ((8,), (8, 8), 8),
        ((64,), (2, 3), 32),
    ]:
        gen = AnchorGenerator(sizes=(sizes,), aspect_ratios=((1.0,),))
        images = ImageList(torch.zeros(1, 3, H_f * stride, W_f * stride), [(H_f * stride,) * 2])
        tv = gen(images, [torch.zeros(1, 1, H_f, W_f)])[0]
        ours = make_anchors((H_f, W_f), stride=stride, sizes=sizes)
        torch.testing.assert_close(ours - stride / 2, tv)


# --------------------------------------------------------------------------- encoding
def test_encode_decode_round_trip_and_torchvision_box_coder():
    rng = np.random.default_rng(4)
    for case in range(100):
        n = int(rng.integers(1, 30))
        anchors, boxes = random_boxes(rng, n, grid=False), random_boxes(rng, n, grid=case % 2 == 0)
        weights = (1.0, 1.0, 1.0, 1.0) if case % 2 else (10.0, 10.0, 5.0, 5.0)
        offsets = encode_boxes(boxes, anchors, weights)
        torch.testing.assert_close(
            decode_boxes(offsets, anchors, weights), boxes, atol=1e-4, rtol=0
        )
        coder = BoxCoder(weights)
        torch.testing.assert_close(
            offsets, coder.encode_single(boxes, anchors), atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            decode_boxes(offsets, anchors, weights),
            coder.decode_single(offsets, anchors),
            atol=1e-4,
            rtol=0,
        )


def test_encode_decode_round_trip_in_float64_is_exact_to_rounding():
    rng = np.random.default_rng(5)
    anchors = random_boxes(rng, 200, grid=False).double()
    boxes = random_boxes(rng, 200, grid=False).double()
    back = decode_boxes(encode_boxes(boxes, anchors), anchors)
    assert (back - boxes).abs().max().item() < 1e-12
    assert encode_boxes(anchors, anchors).abs().max().item() == 0.0  # a box on its own anchor


def test_decode_clamps_huge_log_sizes():
    anchor = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = decode_boxes(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), anchor)
    assert torch.isfinite(out).all()
    assert out[0, 2] - out[0, 0] == pytest.approx(1000.0, rel=1e-5)


def test_match_anchors_agrees_with_torchvision_matcher():
    rng = np.random.default_rng(6)
    anchors = make_anchors((8, 8), stride=8, sizes=(12, 24), aspect_ratios=(0.5, 1.0, 2.0))
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    for _ in range(30):
        gt = random_boxes(rng, int(rng.integers(1, 6)), grid=False) * 1.5 + 2
        expected = matcher(torchvision.ops.box_iou(gt, anchors))
        assert torch.equal(match_anchors(anchors, gt, 0.5, 0.4), expected)
    plain = Matcher(0.5, 0.4, allow_low_quality_matches=False)
    assert torch.equal(
        match_anchors(anchors, gt, 0.5, 0.4, allow_low_quality=False),
        plain(torchvision.ops.box_iou(gt, anchors)),
    )
    assert (match_anchors(anchors, torch.zeros(0, 4)) == -1).all()


# --------------------------------------------------------------------------- mean AP
def random_detection_problem(seed: int) -> tuple[list[dict], list[dict]]:
    """Images with 0-5 objects of 3 classes; predictions are jittered copies of the truth
    (sometimes with the wrong label), missed objects and random false positives; some
    images have no predictions and some no ground truth."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(int(rng.integers(4, 12))):
        gt = random_boxes(rng, int(rng.integers(0, 6)), grid=False) * 2
        gt_labels = torch.tensor(rng.integers(1, 4, size=len(gt)), dtype=torch.int64)
        targets.append({"boxes": gt, "labels": gt_labels})
        if rng.random() < 0.2:
            preds.append(
                {
                    "boxes": torch.zeros(0, 4),
                    "scores": torch.zeros(0),
                    "labels": torch.zeros(0, dtype=torch.int64),
                }
            )
            continue
        keep = rng.random(len(gt)) < 0.8
        jitter = torch.tensor(rng.normal(0, 2.0, size=(int(keep.sum()), 4)), dtype=torch.float32)
        hits = gt[torch.from_numpy(keep)] + jitter
        hits = torch.cat([hits[:, :2], torch.maximum(hits[:, 2:], hits[:, :2] + 0.5)], dim=1)
        hit_labels = gt_labels[torch.from_numpy(keep)].clone()
        wrong = torch.from_numpy(rng.random(len(hit_labels)) < 0.1)
        hit_labels[wrong] = torch.tensor(rng.integers(1, 4, size=int(wrong.sum())))
        fp = random_boxes(rng, int(rng.integers(0, 4)), grid=False) * 2
        boxes = torch.cat([hits, fp])
        labels = torch.cat([hit_labels, torch.tensor(rng.integers(1, 4, size=len(fp)))])
        scores = torch.tensor(rng.random(len(boxes)), dtype=torch.float32)
        scores[: len(hits)] = scores[: len(hits)] * 0.5 + 0.5  # hits tend to score higher
        preds.append({"boxes": boxes, "scores": scores, "labels": labels.long()})
    return preds, targets


def torchmetrics_map(preds, targets, **kwargs) -> dict:
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", class_metrics=True, **kwargs)
    metric.update(preds, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric.compute()


@pytest.mark.parametrize("seed", range(8))
def test_map_agrees_with_torchmetrics(seed):
    preds, targets = random_detection_problem(seed)
    ours = mean_average_precision(preds, targets)
    # COCO's own float64 thresholds (torchmetrics' defaults are float32 copies of them).
    ref = torchmetrics_map(
        preds,
        targets,
        iou_thresholds=COCO_IOU_THRESHOLDS.tolist(),
        rec_thresholds=COCO_RECALL_THRESHOLDS.tolist(),
    )
    # Same numbers up to torchmetrics' float32 results (a float32 in [0, 1] is within 6e-8
    # of the float64 value; the largest difference measured over 40 seeds was 1.4e-8).
    for key in ("map", "map_50", "map_75"):
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-6), key
    ref_classes = ref["classes"].tolist()
    ref_classes = [ref_classes] if isinstance(ref_classes, int) else ref_classes
    for c, value in zip(ref_classes, ref["map_per_class"].tolist(), strict=True):
        if value >= 0:  # torchmetrics reports -1 for classes without ground truth
            assert ours["per_class"][c] == pytest.approx(value, abs=1e-6), c
    # with torchmetrics' defaults the only differences are the float32 threshold copies
    default = torchmetrics_map(preds, targets)
    assert ours["map"] == pytest.approx(float(default["map"]), abs=0.02)


def test_map_perfect_and_hand_examples():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    targets = [{"boxes": gt, "labels": torch.tensor([1, 2])}]
    perfect = [{"boxes": gt, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 2])}]
    result = mean_average_precision(perfect, targets)
    assert result["map"] == result["map_50"] == 1.0
    assert result["per_class"] == {1: 1.0, 2: 1.0}
    # a false positive above the hit halves precision at every recall level: AP 0.5
    boxes = torch.tensor([[50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 10.0, 10.0]])
    fp_first = [
        {"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 1])}
    ]
    one = [{"boxes": gt[:1], "labels": torch.tensor([1])}]
    assert mean_average_precision(fp_first, one)["map"] == pytest.approx(0.5)
    nothing = [
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0).long()}
    ]
    assert mean_average_precision(nothing, targets)["map"] == 0.0
    empty_truth = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()}]
    assert math.isnan(mean_average_precision(perfect, empty_truth)["map"])


def test_average_precision_by_hand():
    # ranks: TP, FP, TP with 2 objects -> precision 1 up to recall 0.5, then 2/3 to recall 1
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2)
    assert ap == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
    assert average_precision(np.zeros(0), np.zeros(0, dtype=bool), 3) == 0.0


# --------------------------------------------------------------------------- bad inputs
BOX = torch.tensor([[0.0, 0.0, 1.0, 1.0]])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: box_iou([[0, 0, 1, 1]], BOX), TypeError, "boxes1"),
        (lambda: box_iou(BOX, torch.zeros(2, 3)), ValueError, r"boxes2 must have shape \(N, 4\)"),
        (lambda: box_iou(BOX, torch.tensor([[2.0, 0.0, 1.0, 1.0]])), ValueError, "x2 >= x1"),
        (lambda: box_iou(torch.tensor([[0.0, math.nan, 1.0, 1.0]]), BOX), ValueError, "boxes1"),
        (lambda: box_area(torch.zeros(4)), ValueError, "boxes"),
        (lambda: box_convert(BOX, "xyxy", "yxyx"), ValueError, "out_fmt"),
        (
            lambda: box_convert(torch.tensor([[0.0, 0.0, -1.0, 1.0]]), "xywh", "xyxy"),
            ValueError,
            "width and height",
        ),
        (
            lambda: nms(BOX, torch.tensor([math.nan]), 0.5),
            ValueError,
            "scores must not contain NaN",
        ),
        (lambda: nms(BOX, torch.zeros(2), 0.5), ValueError, "scores must have shape"),
        (lambda: nms(BOX, torch.zeros(1), 1.5), ValueError, "iou_threshold"),
        (lambda: nms(BOX, torch.zeros(1), "0.5"), TypeError, "iou_threshold"),
        (lambda: batched_nms(BOX, torch.zeros(1), torch.zeros(1), 0.5), TypeError, "labels"),
        (lambda: make_anchors((4, 4), 0, (8,)), ValueError, "stride"),
        (lambda: make_anchors((4, 4), 8, ()), TypeError, "sizes"),
        (lambda: make_anchors((4, 4), 8, (8,), (0.0,)), ValueError, "aspect_ratios"),
        (lambda: encode_boxes(BOX, torch.zeros(2, 4)), ValueError, "same shape"),
        (lambda: encode_boxes(torch.zeros(1, 4), BOX), ValueError, "positive width"),
        (lambda: decode_boxes(torch.zeros(1, 3), BOX), ValueError, "offsets"),
        (lambda: match_anchors(BOX, BOX, 0.3, 0.5), ValueError, "bg_iou"),
        (lambda: mean_average_precision("x", []), TypeError, "preds"),
        (lambda: mean_average_precision([{}], [{}]), ValueError, "missing"),
        (
            lambda: mean_average_precision([], [{"boxes": BOX, "labels": torch.tensor([1])}]),
            ValueError,
            "one entry per image",
        ),
        (
            lambda: mean_average_precision(
                [{"boxes": BOX, "scores": torch.tensor([math.nan]), "labels": torch.tensor([1])}],
                [{"boxes": BOX, "labels": torch.tensor([1])}],
            ),
            ValueError,
            "scores",
        ),
        (lambda: average_precision(np.ones(2), np.ones(3, dtype=bool), 1), ValueError, "is_tp"),
        (lambda: average_precision(np.ones(1), np.ones(1, dtype=bool), 0), ValueError, "n_gt"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

"""Unit and bad-input tests of the detection explorer (no browser; see test_browser_*).

What the figure shows at a slider position comes from precomputed integer levels; these
tests check, at many positions, that ``matching`` equals ``cnnbook.detection.match_anchors``
and that ``nms_trace`` keeps exactly the boxes of ``cnnbook.detection.nms`` and of
``torchvision.ops.nms``, including zero-area boxes and the sliders' limits.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
import torch
import torchvision
from browser_utils import assert_self_contained

from cnnbook.detection import box_iou, make_anchors, match_anchors, nms
from cnnbook.scenes import make_scenes
from cnnbook.widgets._html import MAX_STATIC_PNG_BYTES
from cnnbook.widgets.detection_explorer import (
    STAND_IN_NOTE,
    DetectionExplorer,
    stand_in_detections,
)

ANCHORS = make_anchors((8, 8), 8, (12.0, 20.0, 32.0))
SCENES = make_scenes(8, seed=3)
SLIDER = [k / 100 for k in range(0, 101, 5)] + [0.01, 0.33, 0.99]
COARSE = [k / 100 for k in range(0, 101, 10)] + [0.01, 0.45, 0.99]  # NMS runs are slower


def unpack(packed: dict) -> np.ndarray:
    dtype = {"uint8": "u1", "uint16": "<u2"}[packed["dtype"]]
    return np.frombuffer(base64.b64decode(packed["b64"]), dtype=dtype).astype(np.int64)


def library_kept(fig: DetectionExplorer, score: float, iou: float) -> list[int]:
    """The boxes NMS keeps, by torchvision and by cnnbook.detection (asserted equal)."""
    cand = (fig.scores > score).nonzero(as_tuple=True)[0]
    theirs = cand[torchvision.ops.nms(fig.boxes[cand], fig.scores[cand], iou)].tolist()
    ours = cand[nms(fig.boxes[cand], fig.scores[cand], iou)].tolist()
    assert ours == theirs, f"cnnbook and torchvision disagree at score {score}, IoU {iou}"
    return ours


@pytest.fixture(scope="module")
def fig() -> DetectionExplorer:
    return DetectionExplorer(SCENES.images[4], SCENES.boxes[4], ANCHORS)


def test_payload_is_self_contained_and_small(fig):
    html = fig.to_html()
    data = assert_self_contained(html, "detection-explorer", "mountDetectionExplorer")
    assert len(html) < 600_000, f"widget HTML is {len(html)} bytes"
    assert data["height"] == data["width"] == 64
    image = unpack(data["image"]).reshape(64, 64, 3)
    expected = np.round(SCENES.images[4].permute(1, 2, 0).numpy() * 255)
    assert np.array_equal(image, expected)
    assert data["anchors"] == ANCHORS.tolist()  # anchors on a half-pixel grid: exact
    assert data["gt"] == SCENES.boxes[4].tolist()
    assert len(unpack(data["pair_level"])) == 192 * 192
    assert data["order"] == torch.sort(fig.scores, descending=True, stable=True).indices.tolist()
    assert data["source"] == STAND_IN_NOTE
    assert data["start"] == {"fg": 50, "bg": 40, "score": 50, "nms": 50}


def test_matching_equals_match_anchors(fig):
    gt = SCENES.boxes[4]
    for fg in SLIDER:
        for bg in [b for b in SLIDER if b <= fg]:
            got = fig.matching(fg, bg)
            want = match_anchors(ANCHORS, gt, fg, bg).numpy()
            assert np.array_equal(got["status"], want), (fg, bg)
            assert got["positive"] == (want >= 0).sum() and got["negative"] == (want == -1).sum()
            assert got["ignored"] == (want == -2).sum()
            strict = match_anchors(ANCHORS, gt, fg, bg, allow_low_quality=False).numpy()
            assert got["claimed"] == ((want >= 0) & (strict < 0)).sum()
    # the limits: fg = bg = 0 makes every anchor positive; at fg = 1 only the claimed ones
    assert fig.matching(0.0, 0.0)["positive"] == 192
    top = fig.matching(1.0, 1.0)
    assert top["positive"] == top["claimed"] >= len(gt) and top["ignored"] == 0


def test_nms_trace_equals_nms_and_torchvision(fig):
    for score in COARSE:
        for iou in COARSE:
            trace = fig.nms_trace(score, iou)
            assert [k for k, _ in trace] == library_kept(fig, score, iou), (score, iou)
            # every candidate is decided exactly once: kept or suppressed by one kept box
            decided = [k for k, _ in trace] + [v for _, vs in trace for v in vs]
            assert sorted(decided) == (fig.scores > score).nonzero()[:, 0].tolist()
            for kept, victims in trace:  # each victim overlaps its keeper above the threshold
                if victims:
                    assert (box_iou(fig.boxes[[kept]], fig.boxes[victims]) > iou).all()
    assert fig.nms_trace(1.0, 0.5) == [], "no score is above 1"
    assert len(fig.nms_trace(0.5, 1.0)) == int((fig.scores > 0.5).sum()), "IoU > 1: none"


def test_zero_area_boxes_have_iou_zero_and_no_nan():
    gt = torch.tensor([[10.0, 10.0, 30.0, 40.0], [20.0, 20.0, 20.0, 35.0]])  # second: area 0
    boxes = torch.tensor(
        [[11.0, 10.0, 30.0, 41.0], [12.0, 12.0, 28.0, 38.0], [20.0, 20.0, 20.0, 35.0]]
        + [[20.0, 20.0, 20.0, 35.0], [5.0, 5.0, 5.0, 5.0]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    fig = DetectionExplorer(SCENES.images[0], gt, ANCHORS, boxes, scores)
    json.dumps(fig.data, allow_nan=False)  # no NaN anywhere in the payload
    pairs = unpack(fig.data["pair_level"]).reshape(5, 5)
    assert (pairs[2:, :] == 0).all() and (pairs[:, 2:] == 0).all(), "zero area: IoU 0"
    for fg, bg in ((0.5, 0.4), (0.0, 0.0), (1.0, 0.0), (1.0, 1.0)):
        want = match_anchors(ANCHORS, gt, fg, bg).numpy()
        assert np.array_equal(fig.matching(fg, bg)["status"], want)
        assert not (want == 1).any() or fg == 0.0, "the empty box claims no anchor"
    for iou in (0.0, 0.5, 1.0):
        assert [k for k, _ in fig.nms_trace(0.0, iou)] == library_kept(fig, 0.0, iou)
    assert [k for k, _ in fig.nms_trace(0.0, 0.0)] == [0, 2, 3, 4], "empty boxes survive"


def test_no_true_boxes_makes_every_anchor_negative():
    fig = DetectionExplorer(SCENES.images[0], torch.zeros(0, 4), ANCHORS)
    assert fig.matching(0.5, 0.4)["negative"] == 192
    assert fig.matching(0.0, 0.0)["negative"] == 192  # match_anchors: G = 0, all background
    assert np.array_equal(
        fig.matching(0.3, 0.1)["status"], match_anchors(ANCHORS, torch.zeros(0, 4)).numpy()
    )
    assert len(fig.nms_trace(0.5, 0.5)) == 0, "every stand-in score is low without boxes"


def test_stand_in_detections_are_seeded_and_scored_by_iou():
    gt = SCENES.boxes[4]
    b1, s1 = stand_in_detections(ANCHORS, gt, (64, 64), seed=3)
    b2, s2 = stand_in_detections(ANCHORS, gt, (64, 64), seed=3)
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    assert not torch.equal(b1, stand_in_detections(ANCHORS, gt, (64, 64), seed=4)[0])
    assert (b1 >= 0).all() and (b1 <= 64).all() and (b1[:, 2:] >= b1[:, :2]).all()
    assert ((s1 > 0) & (s1 < 1)).all()
    best = box_iou(b1, gt).max(dim=1).values
    assert s1[best > 0.7].min() > s1[best < 0.1].max(), "good boxes outscore bad ones"


def test_static_picture_and_bundle(fig):
    png = fig.static_png()
    assert png.startswith(b"\x89PNG") and len(png) <= MAX_STATIC_PNG_BYTES
    bundle = fig._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]) == png
    assert "interactive figure" in bundle["text/plain"]
    assert "DetectionExplorer(image 64x64, 4 true boxes, 192 anchors" in repr(fig)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fg_iou": 0.505}, ValueError, "fg_iou must be a multiple"),
        ({"fg_iou": 1.5}, ValueError, "fg_iou must be in"),
        ({"bg_iou": True}, TypeError, "bg_iou"),
        ({"fg_iou": 0.3, "bg_iou": 0.4}, ValueError, "bg_iou must be <= fg_iou"),
        ({"nms_iou": -0.1}, ValueError, "nms_iou"),
        ({"score_threshold": "0.5"}, TypeError, "score_threshold"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 1000}, ValueError, "steps"),
        ({"boxes": torch.zeros(3, 4)}, ValueError, "boxes and scores"),
        ({"boxes": torch.zeros(2, 4), "scores": torch.ones(3)}, ValueError, "scores"),
        ({"boxes": torch.zeros(1, 4), "scores": torch.tensor([1.5])}, ValueError, "scores"),
        ({"boxes": torch.zeros(1, 4), "scores": torch.tensor([1])}, TypeError, "scores"),
        ({"boxes": torch.tensor([[5.0, 0, 1, 1]]), "scores": torch.ones(1)}, ValueError, "boxes"),
        ({"gt_labels": torch.tensor([1, 2])}, ValueError, "gt_labels"),
        ({"gt_labels": torch.ones(4)}, TypeError, "gt_labels"),
        ({"class_names": ["a"]}, TypeError, "class_names"),
        ({"title": 3}, TypeError, "title"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DetectionExplorer(SCENES.images[4], SCENES.boxes[4], ANCHORS, **kwargs)


def test_bad_inputs():
    image, gt = SCENES.images[4], SCENES.boxes[4]
    with pytest.raises(ValueError, match="anchors"):
        DetectionExplorer(image, gt, torch.zeros(0, 4))
    with pytest.raises(ValueError, match="anchors"):
        DetectionExplorer(image, gt, make_anchors((12, 12), 8, (12.0, 20.0, 32.0)))  # 432
    with pytest.raises(ValueError, match="gt_boxes"):
        DetectionExplorer(image, torch.tensor([[1.0, 2.0, math.nan, 4.0]]), ANCHORS)
    with pytest.raises(ValueError, match="image"):
        DetectionExplorer(torch.rand(3, 4, 4), gt, ANCHORS)
    with pytest.raises(ValueError, match="image"):
        DetectionExplorer(image * 2, gt, ANCHORS)
    fig = DetectionExplorer(image, gt, ANCHORS)
    with pytest.raises(ValueError, match="bg_iou must be <= fg_iou"):
        fig.matching(0.2, 0.3)
    with pytest.raises(ValueError, match="nms_iou must be a multiple"):
        fig.nms_trace(0.5, 0.123)

"""The detection diagrams draw what torchvision and cnnbook.detection compute."""

from __future__ import annotations

import inspect

import matplotlib.pyplot as plt
import pytest
import torch
import torchvision
from matplotlib.patches import Circle, Rectangle
from torchvision.models.detection import FasterRCNN

from cnnbook.detection import make_anchors
from cnnbook.diagrams.detection import (
    anchors_on_image,
    rcnn_family,
    roi_align_points,
    roi_pool_bins,
    roi_pool_vs_align,
)
from cnnbook.diagrams.style import diagram_texts

BOXES = [(10.0, 6.0, 26.0, 22.0), (3.3, 7.1, 29.2, 25.9), (20.5, 12.2, 22.1, 13.7)]


def bilinear_read(feature: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """torchvision's roi_align read of feature (C, H, W) at (y, x), written independently."""
    H, W = feature.shape[-2:]
    if y < -1 or y > H or x < -1 or x > W:
        return torch.zeros(feature.shape[0], dtype=feature.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
    if y0 >= H - 1:
        y0 = y1 = H - 1
        y = float(y0)
    if x0 >= W - 1:
        x0 = x1 = W - 1
        x = float(x0)
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * feature[:, y0, x0]
        + (1 - ly) * lx * feature[:, y0, x1]
        + ly * (1 - lx) * feature[:, y1, x0]
        + ly * lx * feature[:, y1, x1]
    )


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("out", [2, (2, 3), 7])
def test_averaging_the_drawn_points_gives_torchvision_roi_align(box, out):
    feature = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    points = roi_align_points(box, 0.25, out, sampling_ratio=2)  # (oh, ow, 2, 2, 2)
    oh, ow = points.shape[:2]
    ours = torch.zeros(3, oh, ow, dtype=torch.float64)
    for i in range(oh):
        for j in range(ow):
            reads = [bilinear_read(feature, y, x) for y, x in points[i, j].reshape(-1, 2).tolist()]
            ours[:, i, j] = torch.stack(reads).mean(dim=0)
    tv = torchvision.ops.roi_align(
        feature[None], [torch.tensor([box], dtype=torch.float64)], out, 0.25, 2, aligned=True
    )[0]
    assert torch.allclose(ours, tv, atol=1e-10)


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("out", [1, 2, (2, 3)])
def test_max_over_the_drawn_bins_gives_torchvision_roi_pool(box, out):
    feature = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(1))
    bins = roi_pool_bins(box, 0.25, out, 8)
    tv = torchvision.ops.roi_pool(feature[None], [torch.tensor([box])], out, 0.25)[0]
    for i, row in enumerate(bins):
        for j, (rs, re, cs, ce) in enumerate(row):
            ours = feature[:, rs:re, cs:ce].amax(dim=(1, 2))
            assert torch.equal(ours, tv[:, i, j]), (i, j)


def test_roi_pool_rounds_the_chapter_box_to_cells_3_to_7():
    bins = roi_pool_bins(BOXES[0], 0.25, 2, 8)
    # corners (2.5, 1.5, 6.5, 5.5) round half away from zero to columns 3..7, rows 2..6
    assert [b[2:] for b in bins[0]] == [(3, 6), (5, 8)]
    assert [row[0][:2] for row in bins] == [(2, 5), (4, 7)]


def test_roi_diagram_draws_every_sampling_point_and_the_roi_in_cells():
    fig = roi_pool_vs_align(BOXES[0], spatial_scale=0.25, feature_size=8, output_size=2)
    H, W, gap = 8, 8, 2.0
    dots = sorted(tuple(round(v, 6) for v in c.center) for c in fig.findobj(Circle))
    points = roi_align_points(BOXES[0], 0.25, 2, 2).reshape(-1, 2).tolist()
    expected = sorted((round(W + gap + x + 0.5, 6), round(H - y - 0.5, 6)) for y, x in points)
    assert dots == expected and len(dots) == 16
    texts = diagram_texts(fig)
    assert "RoI in cells: (2.5, 1.5, 6.5, 5.5)" in texts
    assert "4 bilinear samples per bin" in texts
    plt.close(fig)


def test_anchor_diagram_draws_make_anchors_own_boxes():
    image = torch.rand(3, 64, 64)
    sizes, ratios, cells = (12.0, 20.0, 32.0), (0.5, 1.0, 2.0), ((2, 2), (5, 5))
    fig = anchors_on_image(image, stride=8, sizes=sizes, aspect_ratios=ratios, cells=cells)
    grid = make_anchors((8, 8), 8, sizes, ratios).view(8, 8, 9, 4)
    expected = torch.cat([grid[r, c] for r, c in cells])  # (18, 4) xyxy in pixels
    drawn = [
        p for p in fig.axes[0].patches if isinstance(p, Rectangle) and p.get_linewidth() == 1.8
    ]
    assert len(drawn) == len(expected) == 18
    widths = sorted(round(p.get_width(), 4) for p in drawn)
    assert widths == sorted(round(v, 4) for v in (expected[:, 2] - expected[:, 0]).tolist())
    heights = sorted(round(p.get_height(), 4) for p in drawn)
    assert heights == sorted(round(v, 4) for v in (expected[:, 3] - expected[:, 1]).tolist())
    texts = diagram_texts(fig)
    assert [t for t in texts if t.startswith("size")] == ["size 12", "size 20", "size 32"]
    assert [t for t in texts if t.startswith("h/w")] == ["h/w 0.5", "h/w 1", "h/w 2"]
    assert "9 anchors per cell" in texts and "stride 8" in texts
    plt.close(fig)


def test_rcnn_family_labels_follow_the_arguments_and_torchvision_defaults():
    default_rpn = inspect.signature(FasterRCNN).parameters["rpn_post_nms_top_n_test"].default
    fig = rcnn_family()
    texts = diagram_texts(fig)
    assert texts.count("RoI pool 7×7\nper proposal") == 2
    assert f"feature map → RPN\n→ {default_rpn} proposals" in texts
    assert {"R-CNN", "Fast R-CNN", "Faster R-CNN"} <= set(texts)
    plt.close(fig)
    fig = rcnn_family(proposals=300, rpn_proposals=50, roi_size=14)
    texts = diagram_texts(fig)
    assert "CNN on every crop\n(× 300)" in texts and "RoI pool 14×14\nper proposal" in texts
    assert "feature map → RPN\n→ 50 proposals" in texts
    plt.close(fig)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: roi_pool_vs_align((26.0, 6.0, 10.0, 22.0)), ValueError, "box"),
        (lambda: roi_pool_vs_align((1.0, 2.0, 3.0)), ValueError, "box"),
        (lambda: roi_pool_vs_align("box"), ValueError, "box"),
        (lambda: roi_pool_vs_align(spatial_scale=0), ValueError, "spatial_scale"),
        (lambda: roi_pool_vs_align(spatial_scale="1"), TypeError, "spatial_scale"),
        (lambda: roi_pool_vs_align((10.0, 6.0, 60.0, 22.0)), ValueError, "leaves"),
        (lambda: roi_pool_vs_align(output_size=0), ValueError, "output_size"),
        (lambda: roi_align_points(BOXES[0], 0.25, 2, sampling_ratio=0), ValueError, "sampling"),
        (lambda: rcnn_family(proposals=0), ValueError, "proposals"),
        (lambda: rcnn_family(roi_size=2.5), TypeError, "roi_size"),
        (lambda: anchors_on_image([[0.0]], stride=8, sizes=(8.0,)), TypeError, "image"),
        (lambda: anchors_on_image(torch.rand(64, 64), stride=8, sizes=(8.0,)), ValueError, "image"),
        (
            lambda: anchors_on_image(torch.rand(3, 60, 64), stride=8, sizes=(8.0,)),
            ValueError,
            "stride",
        ),
        (
            lambda: anchors_on_image(torch.rand(3, 64, 64), stride=8, sizes=(-1.0,)),
            ValueError,
            "sizes",
        ),
        (
            lambda: anchors_on_image(
                torch.rand(3, 64, 64), stride=8, sizes=(8.0,), cells=((8, 0),)
            ),
            ValueError,
            "cells",
        ),
        (
            lambda: anchors_on_image(torch.rand(3, 64, 64), stride=8, sizes=(8.0,), cells=()),
            ValueError,
            "cells",
        ),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
    plt.close("all")

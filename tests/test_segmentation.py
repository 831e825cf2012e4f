"""cnnbook.segmentation: model shapes, Dice losses, mIoU against references, boundary F-score."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.classification import MulticlassJaccardIndex

from cnnbook.models.segmentation_heads import ASPP, FCNHead
from cnnbook.models.unet import UNet
from cnnbook.segmentation import (
    CEDiceLoss,
    boundary_f_score,
    boundary_map,
    confusion,
    dice_loss,
    iou_per_class,
    mean_iou,
)

# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("up", ["transpose", "bilinear"])
@pytest.mark.parametrize(("H", "W"), [(32, 32), (33, 47), (17, 20), (9, 9)])
def test_unet_output_matches_input_size(skip: bool, up: str, H: int, W: int) -> None:
    model = UNet(3, 5, base=4, depth=3, skip=skip, up=up).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, H, W))
    assert out.shape == (2, 5, H, W)


def test_unet_without_skips_has_fewer_parameters() -> None:
    def n_params(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert n_params(UNet(base=8, skip=False)) < n_params(UNet(base=8, skip=True))


def test_unet_skips_matter_for_fine_detail() -> None:
    """With skips, changing one input pixel changes the output at full resolution there."""
    torch.manual_seed(0)
    model = UNet(1, 2, base=4, depth=2).eval()
    x = torch.zeros(1, 1, 16, 16)
    x2 = x.clone()
    x2[0, 0, 8, 8] = 1.0
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs().sum(dim=1)[0]
    assert diff[8, 8] > 0


def test_aspp_keeps_size_and_receptive_field() -> None:
    aspp = ASPP(8, 6, rates=(2, 4)).eval()
    x = torch.rand(2, 8, 13, 11)
    with torch.no_grad():
        assert aspp(x).shape == (2, 6, 13, 11)
    # the rate-4 branch alone sees 9x9: a change 4 pixels away reaches the centre
    branch = aspp.branches[2][0]
    assert branch.dilation == (4, 4) and branch.padding == (4, 4)
    y = torch.zeros(1, 8, 13, 11, requires_grad=True)
    branch(y)[0, :, 6, 5].sum().backward()
    rows, cols = torch.nonzero(y.grad[0].abs().sum(0), as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 10, 1, 9)
    assert ASPP(8, 6, image_pool=False)(x).shape == (2, 6, 13, 11)


def test_fcn_head_upsamples() -> None:
    head = FCNHead(16, 3).eval()
    with torch.no_grad():
        assert head(torch.rand(2, 16, 4, 5)).shape == (2, 3, 4, 5)
        assert head(torch.rand(2, 16, 4, 5), size=(32, 40)).shape == (2, 3, 32, 40)


# ----------------------------------------------------------------------------- losses


def _one_hot_logits(target: torch.Tensor, K: int, scale: float = 50.0) -> torch.Tensor:
    return scale * torch.nn.functional.one_hot(target, K).permute(0, 3, 1, 2).float()


def test_dice_loss_is_zero_for_a_perfect_prediction() -> None:
    target = torch.randint(0, 4, (3, 10, 12))
    assert dice_loss(_one_hot_logits(target, 4), target).item() < 1e-6
    # classes absent from both sides count as perfectly predicted (Dice 1)
    target = torch.zeros(2, 5, 5, dtype=torch.long)
    assert dice_loss(_one_hot_logits(target, 3), target).item() < 1e-6


def test_dice_loss_is_large_for_a_wrong_prediction_and_bounded() -> None:
    target = torch.randint(0, 3, (2, 8, 8))
    wrong = _one_hot_logits((target + 1) % 3, 3)
    loss = dice_loss(wrong, target)
    assert 0.9 < loss.item() <= 1.0


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 3),
    K=st.integers(2, 5),
    H=st.integers(1, 9),
    W=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
def test_dice_loss_range_and_finite_gradients(N: int, K: int, H: int, W: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(N, K, H, W, generator=g)).requires_grad_()
    target = torch.randint(0, K, (N, H, W), generator=g)
    loss = dice_loss(logits, target)
    assert 0.0 <= loss.item() <= 1.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    combined = CEDiceLoss(0.5)(logits, target)
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(combined, ce + 0.5 * dice_loss(logits, target))


def test_dice_gradients_finite_for_extreme_logits() -> None:
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    logits = torch.full((1, 3, 4, 4), -1e4)
    logits[:, 2] = 1e4  # confidently wrong
    logits.requires_grad_()
    CEDiceLoss()(logits, target).backward()
    assert torch.isfinite(logits.grad).all()


# ----------------------------------------------------------------------------- mIoU


def _direct_iou(pred: torch.Tensor, target: torch.Tensor, K: int) -> list[float]:
    """IoU of each class present in pred or target, by set operations on the pixels."""
    out = []
    for k in range(K):
        inter = ((pred == k) & (target == k)).sum().item()
        union = ((pred == k) | (target == k)).sum().item()
        if union:
            out.append(inter / union)
    return out


@settings(max_examples=40, deadline=None)
@given(K=st.integers(1, 6), H=st.integers(1, 12), W=st.integers(1, 12), seed=st.integers(0, 999))
def test_mean_iou_matches_direct_computation(K: int, H: int, W: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, (2, H, W), generator=g)
    pred = torch.where(torch.rand(2, H, W, generator=g) < 0.7, target, torch.randint(0, K, (1,)))
    ious = _direct_iou(pred, target, K)
    assert mean_iou(pred, target, K) == pytest.approx(sum(ious) / len(ious))


def test_mean_iou_matches_torchmetrics_when_all_classes_present() -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        target = torch.randint(0, 4, (4, 16, 16), generator=g)
        noise = torch.randint(0, 4, (4, 16, 16), generator=g)
        pred = torch.where(torch.rand(4, 16, 16, generator=g) < 0.6, target, noise)
        reference = MulticlassJaccardIndex(num_classes=4, average="macro")(pred, target)
        assert mean_iou(pred, target, 4) == pytest.approx(reference.item(), abs=1e-6)
        per_class = MulticlassJaccardIndex(num_classes=4, average="none")(pred, target)
        ours = iou_per_class(confusion(pred, target, 4)).float()
        assert torch.allclose(ours, per_class, atol=1e-6)


def test_confusion_and_ignore_index() -> None:
    target = torch.tensor([[0, 1, 1, 255]])
    pred = torch.tensor([[0, 1, 0, 1]])
    conf = confusion(pred, target, 2, ignore_index=255)
    assert conf.tolist() == [[1, 0], [1, 1]]
    assert mean_iou(pred, target, 2, ignore_index=255) == pytest.approx((1 / 2 + 1 / 2) / 2)
    reference = MulticlassJaccardIndex(num_classes=2, ignore_index=255)(pred, target)
    assert mean_iou(pred, target, 2, ignore_index=255) == pytest.approx(reference.item())


def test_iou_absent_class_is_nan() -> None:
    ious = iou_per_class(confusion(torch.tensor([0, 0]), torch.tensor([0, 0]), 3))
    assert ious[0] == 1.0 and ious[1:].isnan().all()


# ----------------------------------------------------------------------------- boundaries


def _square(size: int, lo: int, hi: int) -> torch.Tensor:
    x = torch.zeros(size, size, dtype=torch.long)
    x[lo:hi, lo:hi] = 1
    return x


def test_boundary_map_of_a_square() -> None:
    edge = boundary_map(_square(8, 2, 6))[0]
    # a 4x4 square: its 12 rim pixels plus the 16 background pixels touching it
    assert int(edge.sum()) == 12 + 16
    assert not edge[3:5, 3:5].any()


def test_boundary_f_score_simple_cases() -> None:
    a = _square(16, 4, 12)
    assert boundary_f_score(a, a) == 1.0
    # shifted by one pixel: within tolerance 1 it still matches, with tolerance 0 it does not
    b = torch.roll(a, 1, dims=1)
    assert boundary_f_score(b, a, tolerance=1) == 1.0
    assert boundary_f_score(b, a, tolerance=0) < 0.8
    # a prediction shifted by 4 pixels scores lower than one shifted by 2
    assert boundary_f_score(torch.roll(a, 4, dims=1), a, tolerance=1) < boundary_f_score(
        torch.roll(a, 2, dims=1), a, tolerance=1
    )
    empty = torch.zeros_like(a)
    assert boundary_f_score(empty, empty) == 1.0
    assert boundary_f_score(empty, a) == 0.0
    assert boundary_f_score(a, empty) == 0.0


def test_boundary_f_score_blurred_prediction_is_worse() -> None:
    """A blocky prediction (downsample then upsample) loses boundary quality."""
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    disc = (((yy - 15.5) ** 2 + (xx - 15.5) ** 2) <= 100).long()[None]
    blocky = disc[:, ::8, ::8].repeat_interleave(8, 1).repeat_interleave(8, 2)
    assert boundary_f_score(blocky, disc) < 0.8 < boundary_f_score(disc, disc)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: UNet(base=0), ValueError, "base"),
        (lambda: UNet(depth=1.5), TypeError, "depth"),
        (lambda: UNet(skip=1), TypeError, "skip"),
        (lambda: UNet(up="nearest"), ValueError, "up"),
        (lambda: ASPP(4, 4, rates=()), TypeError, "rates"),
        (lambda: ASPP(4, 4, rates=(0,)), ValueError, "rates"),
        (lambda: FCNHead(0, 2), ValueError, "C_in"),
        (lambda: dice_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 3, 3)), TypeError, "target"),
        (
            lambda: dice_loss(torch.rand(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long)),
            ValueError,
            "target",
        ),
        (
            lambda: dice_loss(torch.rand(1, 2, 3, 3), torch.full((1, 3, 3), 2)),
            ValueError,
            "target",
        ),
        (lambda: dice_loss(torch.zeros(2, 3, dtype=torch.long), None), TypeError, "logits"),
        (
            lambda: dice_loss(
                torch.rand(1, 2, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long), smooth=-1
            ),
            ValueError,
            "smooth",
        ),
        (lambda: CEDiceLoss(-1.0), ValueError, "dice_weight"),
        (lambda: CEDiceLoss("1"), TypeError, "dice_weight"),
        (lambda: confusion(torch.tensor([0, 3]), torch.tensor([0, 1]), 3), ValueError, "pred"),
        (lambda: confusion(torch.tensor([0, 1]), torch.tensor([0, 5]), 3), ValueError, "target"),
        (lambda: confusion(torch.tensor([0.5]), torch.tensor([0]), 3), TypeError, "pred"),
        (lambda: confusion(torch.tensor([0]), torch.tensor([0, 1]), 3), ValueError, "same shape"),
        (lambda: confusion(torch.tensor([0]), torch.tensor([0]), 0), ValueError, "num_classes"),
        (lambda: iou_per_class(torch.zeros(2, 3)), ValueError, "conf"),
        (lambda: boundary_f_score(torch.zeros(3, 3), torch.zeros(3, 3)), TypeError, "pred"),
        (
            lambda: boundary_f_score(
                torch.zeros(3, 3).long(), torch.zeros(3, 3).long(), tolerance=-1
            ),
            ValueError,
            "tolerance",
        ),
        (
            lambda: boundary_f_score(torch.zeros(3, 3).long(), torch.zeros(4, 3).long()),
            ValueError,
            "same shape",
        ),
        (lambda: boundary_map(torch.zeros(1, 1, 3, 3).long()), ValueError, "labels"),
        (lambda: UNet()(torch.rand(3, 8, 8)), ValueError, "x"),
    ],
)
def test_bad_arguments(call, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        call()

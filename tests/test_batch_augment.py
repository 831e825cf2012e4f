"""cnnbook.batch_augment: flips and translations of a whole batch against a per-image
reference, label alignment, the random draws, and bad arguments."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnbook.batch_augment import apply_augment, augment_batch, random_flips, random_shifts

SOME = settings(max_examples=25, deadline=None, database=None)
pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: one thread is faster


def reference_crop(x: torch.Tensor, flip: bool, dy: int, dx: int, pad: int) -> torch.Tensor:
    """One image x: (C, H, W), flipped and shifted the slow, obvious way."""
    if flip:
        x = x.flip(2)
    H, W = x.shape[1:]
    padded = nn.functional.pad(x[None], (pad,) * 4, mode="reflect")[0]
    return padded[:, pad + dy : pad + dy + H, pad + dx : pad + dx + W]


@SOME
@given(
    N=st.integers(1, 5),
    C=st.integers(1, 3),
    H=st.integers(4, 9),
    W=st.integers(4, 9),
    pad=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_apply_augment_matches_per_image_reference(N, C, H, W, pad, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N, C, H, W, generator=g)
    flips, shifts = random_flips(N, g), random_shifts(N, pad, g)
    out = apply_augment(x, flips, shifts, pad)
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(N):
        dy, dx = (int(s) for s in shifts[i])
        expected = reference_crop(x[i], bool(flips[i]), dy, dx, pad) if pad else x[i]
        if not pad and flips[i]:
            expected = x[i].flip(2)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=0)


def test_augment_batch_keeps_shape_dtype_and_label_alignment():
    # Image i is the constant i: any flip or reflect-padded shift of it is still all i,
    # so out[i] == i proves that no image moved to another position (labels stay aligned).
    N = 64
    x = torch.arange(N, dtype=torch.float32).view(N, 1, 1, 1).expand(N, 3, 32, 32).clone()
    out = augment_batch(x, pad=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (N, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out, x)
    x8 = (torch.arange(N) * 3).to(torch.uint8).view(N, 1, 1, 1).expand(N, 3, 8, 8).contiguous()
    out8 = augment_batch(x8, pad=2, generator=torch.Generator().manual_seed(1))
    assert out8.dtype == torch.uint8 and torch.equal(out8, x8)


def test_augment_batch_really_changes_images_and_zero_shift_is_identity():
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = augment_batch(x, pad=2, generator=torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert changed > 0.8, f"most images should be flipped or shifted, got {changed:.2f}"
    no_shift = torch.zeros(32, 2, dtype=torch.long)
    assert torch.equal(apply_augment(x, None, no_shift, 2), x)
    flips = torch.ones(32, dtype=torch.bool)
    assert torch.equal(apply_augment(x, flips, None, 0), x.flip(3))


def test_random_draws_have_the_right_range_and_balance():
    g = torch.Generator().manual_seed(0)
    shifts = random_shifts(4000, 2, g)
    assert shifts.shape == (4000, 2) and shifts.min() == -2 and shifts.max() == 2
    flips = random_flips(4000, g)
    assert flips.dtype == torch.bool and abs(flips.float().mean().item() - 0.5) < 0.05


def test_bad_augment_arguments():
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(ValueError, match="pad"):
        augment_batch(x, pad=8)
    with pytest.raises(ValueError, match="pad"):
        augment_batch(x, pad=-1)
    with pytest.raises(TypeError, match="flip"):
        augment_batch(x, flip=1)
    with pytest.raises(ValueError, match="x must be"):
        augment_batch(x[0])
    with pytest.raises(ValueError, match="flips"):
        apply_augment(x, torch.zeros(3, dtype=torch.bool), None, 0)
    with pytest.raises(ValueError, match="shifts"):
        apply_augment(x, None, torch.zeros(4, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="shifts"):
        apply_augment(x, None, torch.full((4, 2), 3), 2)
    with pytest.raises(ValueError, match="n"):
        random_flips(-1)
    with pytest.raises(ValueError, match="pad"):
        random_shifts(3, -1)

"""cnnbook.augment: Mixup and CutMix over random batches, the mixing loader with fit,
and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnbook.augment import MixCollate, cutmix, cutmix_box, mix_loader, mixup, one_hot
from cnnbook.train import fit

# One case: (seed, batch size N, classes C, image height H, image width W).
cases = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(1, 9),
    st.integers(2, 7),
    st.integers(1, 12),
    st.integers(1, 12),
)
settings_60 = settings(max_examples=60, deadline=None)


def _batch(seed: int, n: int, c: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed % 2**31)
    return torch.randn(n, 3, h, w, generator=g), torch.randint(0, c, (n,), generator=g)


@settings_60
@given(cases, st.floats(0.0, 1.0))
def test_mixup_is_the_convex_mix_of_a_permutation(case, lam):
    seed, n, c, h, w = case
    x, y = _batch(*case)
    x_mixed, y_mixed, lam_out = mixup(x, y, num_classes=c, rng=np.random.default_rng(seed), lam=lam)
    # The same generator state gives the same partner permutation.
    j = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    assert lam_out == lam
    assert torch.allclose(x_mixed, lam * x + (1 - lam) * x[j], atol=1e-6)
    expected = lam * one_hot(y, c) + (1 - lam) * one_hot(y[j], c)
    assert torch.allclose(y_mixed, expected, atol=1e-6)
    assert torch.allclose(y_mixed.sum(dim=1), torch.ones(n), atol=1e-6)


@settings_60
@given(cases, st.floats(0.0, 1.0))
def test_cutmix_pastes_one_box_and_mixes_labels_by_area(case, lam):
    seed, n, c, h, w = case
    x, y = _batch(*case)
    x_mixed, y_mixed, lam_kept = cutmix(
        x, y, num_classes=c, rng=np.random.default_rng(seed), lam=lam
    )
    # Replay the generator: box first, then the permutation.
    rng = np.random.default_rng(seed)
    top, left, bottom, right = cutmix_box(h, w, lam, rng)
    j = torch.from_numpy(rng.permutation(n))
    inside = torch.zeros(h, w, dtype=torch.bool)
    inside[top:bottom, left:right] = True
    assert torch.equal(x_mixed[:, :, inside], x[j][:, :, inside])
    assert torch.equal(x_mixed[:, :, ~inside], x[:, :, ~inside])
    assert lam_kept == pytest.approx(1 - inside.sum().item() / (h * w))
    expected = lam_kept * one_hot(y, c) + (1 - lam_kept) * one_hot(y[j], c)
    assert torch.allclose(y_mixed, expected, atol=1e-6)
    assert torch.allclose(y_mixed.sum(dim=1), torch.ones(n), atol=1e-6)


@settings_60
@given(st.integers(1, 40), st.integers(1, 40), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_cutmix_box_lies_inside_and_is_at_most_the_requested_area(H, W, lam, seed):
    top, left, bottom, right = cutmix_box(H, W, lam, np.random.default_rng(seed))
    assert 0 <= top <= bottom <= H and 0 <= left <= right <= W
    ratio = np.sqrt(1 - lam)
    assert bottom - top <= int(H * ratio) and right - left <= int(W * ratio)


def test_lambda_is_drawn_from_beta():
    x, y = _batch(0, 4, 3, 5, 5)
    rng = np.random.default_rng(1)
    lams = [mixup(x, y, num_classes=3, rng=rng, alpha=0.4)[2] for _ in range(2000)]
    # Beta(0.4, 0.4): mean 1/2, variance 1 / (4 (2 alpha + 1)) = 1/7.2
    assert np.mean(lams) == pytest.approx(0.5, abs=0.03)
    assert np.var(lams) == pytest.approx(1 / 7.2, abs=0.02)


def test_soft_labels_can_be_mixed_again_and_are_returned_as_float32():
    x, y = _batch(3, 6, 4, 4, 4)
    _, soft, _ = mixup(x, y, num_classes=4, rng=np.random.default_rng(0), lam=0.7)
    _, twice, _ = mixup(x, soft.double(), num_classes=4, rng=np.random.default_rng(1), lam=0.5)
    assert twice.dtype == torch.float32
    assert torch.allclose(twice.sum(dim=1), torch.ones(6))


def test_mix_collate_accepts_samples_or_batch_tensors():
    x, y = _batch(5, 8, 3, 6, 6)
    from_samples = MixCollate("cutmix", 3, seed=2)(list(zip(x, y, strict=True)))
    from_batch = MixCollate("cutmix", 3, seed=2)((x, y))
    assert torch.equal(from_samples[0], from_batch[0])
    assert torch.equal(from_samples[1], from_batch[1])
    assert from_batch[1].shape == (8, 3)


def test_mix_loader_is_seeded_and_covers_every_sample_once_per_pass():
    X = torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1)
    y = torch.arange(10) % 3
    first = list(mix_loader(X, y, num_classes=3, batch_size=4, seed=7))
    again = list(mix_loader(X, y, num_classes=3, batch_size=4, seed=7))
    assert [b[0].shape[0] for b in first] == [4, 4, 2]
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_fit_trains_on_mixed_batches_with_its_default_loss():
    torch.manual_seed(0)
    X, y = torch.randn(64, 1, 6, 6), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    for method in ("mixup", "cutmix"):
        loader = mix_loader(X, y, num_classes=3, method=method, batch_size=16, seed=0)
        history = fit(model, loader, (X, y), epochs=2, device="cpu", progress=False)
        assert len(history) == 2 and np.isfinite(history.train_loss).all()
        assert 0 <= history.val_acc[-1] <= 1


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda x, y, r: mixup(x.numpy(), y, num_classes=3, rng=r), TypeError, "x"),
        (lambda x, y, r: mixup(x.long(), y, num_classes=3, rng=r), TypeError, "x"),
        (lambda x, y, r: mixup(x, y, num_classes=0, rng=r), ValueError, "num_classes"),
        (lambda x, y, r: mixup(x, y + 3, num_classes=3, rng=r), ValueError, "y"),
        (lambda x, y, r: mixup(x, y[:2], num_classes=3, rng=r), ValueError, "x and y"),
        (lambda x, y, r: mixup(x, y, num_classes=3, rng=0), TypeError, "rng"),
        (lambda x, y, r: mixup(x, y, num_classes=3, rng=r, alpha=0), ValueError, "alpha"),
        (lambda x, y, r: mixup(x, y, num_classes=3, rng=r, alpha="1"), TypeError, "alpha"),
        (lambda x, y, r: mixup(x, y, num_classes=3, rng=r, lam=1.5), ValueError, "lam"),
        (lambda x, y, r: cutmix(x[:, 0], y, num_classes=3, rng=r), ValueError, "x"),
        (lambda x, y, r: cutmix_box(0, 4, 0.5, r), ValueError, "H"),
        (lambda x, y, r: cutmix_box(4, 4, None, r), TypeError, "lam"),
        (lambda x, y, r: one_hot(y.float(), 3), ValueError, "y"),
        (lambda x, y, r: MixCollate("blend", 3), ValueError, "method"),
        (lambda x, y, r: MixCollate("mixup", 3)(42), TypeError, "batch"),
        (lambda x, y, r: mix_loader(x, y[:3], num_classes=3), ValueError, "X and y"),
        (lambda x, y, r: mix_loader(x, y, num_classes=3, batch_size=0), ValueError, "batch_size"),
        (lambda x, y, r: mix_loader(x, y, num_classes=3, seed=-1), ValueError, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(call, error, name):
    x, y = _batch(0, 5, 3, 4, 4)
    with pytest.raises(error, match=name):
        call(x, y, np.random.default_rng(0))

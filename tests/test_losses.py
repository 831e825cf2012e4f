"""cnnbook.losses against PyTorch, torchvision and scikit-learn over random cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_class_weight
from torch.nn import functional as F
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from cnnbook.losses import (
    SoftmaxFocalLoss,
    balanced_sampler,
    class_counts,
    class_weights,
    sigmoid_focal_loss,
    softmax_focal_loss,
)

# One case: (seed, number of samples, number of classes, logit scale).
cases = st.tuples(
    st.integers(0, 2**31 - 1), st.integers(1, 40), st.integers(2, 8), st.floats(0.1, 8.0)
)
settings_80 = settings(max_examples=80, deadline=None)


def _case(seed, n, c, scale):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (n,), generator=g)
    weight = torch.rand(c, generator=g, dtype=torch.float64) + 0.1
    return logits, target, weight


@settings_80
@given(cases, st.sampled_from(["mean", "sum", "none"]))
def test_gamma_zero_is_cross_entropy_with_or_without_weights(case, reduction):
    logits, target, weight = _case(*case)
    for w in (None, weight):
        ours = softmax_focal_loss(logits, target, gamma=0.0, weight=w, reduction=reduction)
        theirs = F.cross_entropy(logits, target, weight=w, reduction=reduction)
        assert torch.allclose(ours, theirs, atol=1e-10)


@settings_80
@given(cases, st.floats(0.0, 5.0))
def test_focal_loss_is_the_modulated_cross_entropy(case, gamma):
    logits, target, _ = _case(*case)
    ce = F.cross_entropy(logits, target, reduction="none")
    p_true = torch.exp(-ce)
    expected = (1 - p_true) ** gamma * ce
    assert torch.allclose(
        softmax_focal_loss(logits, target, gamma=gamma, reduction="none"), expected
    )
    assert (softmax_focal_loss(logits, target, gamma=gamma, reduction="none") <= ce + 1e-12).all()


@settings_80
@given(cases, st.floats(0.0, 1.0), st.floats(0.0, 4.0), st.sampled_from(["mean", "sum", "none"]))
def test_sigmoid_focal_loss_matches_torchvision(case, alpha, gamma, reduction):
    seed, n, c, scale = case
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 2, (n, c), generator=g).double()
    ours = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    theirs = tv_sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    assert torch.allclose(ours, theirs, atol=1e-10)
    unweighted = sigmoid_focal_loss(logits, targets, alpha=None, gamma=gamma, reduction=reduction)
    theirs = tv_sigmoid_focal_loss(logits, targets, alpha=-1, gamma=gamma, reduction=reduction)
    assert torch.allclose(unweighted, theirs, atol=1e-10)


def test_focal_gradients_match_autograd_of_the_formula_and_module_moves_weight():
    logits, target, weight = _case(0, 16, 5, 3.0)
    logits.requires_grad_(True)
    softmax_focal_loss(logits, target, gamma=2.0, weight=weight).backward()
    ours = logits.grad.clone()
    logits.grad = None
    log_p = logits.log_softmax(1).gather(1, target[:, None]).squeeze(1)
    w = weight[target]
    ((-(w * (1 - log_p.exp()) ** 2 * log_p)).sum() / w.sum()).backward()
    assert torch.allclose(ours, logits.grad)
    module = SoftmaxFocalLoss(gamma=2.0, weight=weight)
    assert "weight" in dict(module.named_buffers())
    assert torch.allclose(
        module(logits.detach(), target),
        softmax_focal_loss(logits.detach(), target, gamma=2.0, weight=weight),
    )


@settings_80
@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.floats(0.0, 0.9999))
def test_class_weights_match_sklearn_and_effective_number_limits(seed, c, beta):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(c), rng.integers(0, c, size=rng.integers(0, 60))])
    sk = compute_class_weight("balanced", classes=np.arange(c), y=labels)
    assert np.allclose(class_weights(labels, c).numpy(), sk, rtol=1e-6)
    assert np.array_equal(class_counts(labels, c).numpy(), np.bincount(labels, minlength=c))
    effective = class_weights(torch.from_numpy(labels), c, scheme="effective", beta=beta)
    assert effective.sum().item() == pytest.approx(c, rel=1e-5)
    counts = np.bincount(labels, minlength=c)
    # Rarer classes never get smaller weights.
    order = np.argsort(counts, kind="stable")
    assert np.all(np.diff(effective.numpy()[order]) <= 1e-6)


def test_effective_weights_at_beta_zero_are_uniform():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    assert torch.allclose(class_weights(labels, 3, scheme="effective", beta=0.0), torch.ones(3))


def test_balanced_sampler_draws_classes_evenly_and_is_seeded():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    draws = list(balanced_sampler(labels, 3, num_samples=6000, seed=3))
    shares = np.bincount(labels[draws].numpy(), minlength=3) / 6000
    assert np.allclose(shares, 1 / 3, atol=0.03)
    assert draws == list(balanced_sampler(labels, 3, num_samples=6000, seed=3))
    assert len(list(balanced_sampler(labels, 3))) == 100


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: softmax_focal_loss([[1.0]], torch.tensor([0])), TypeError, "logits"),
        (lambda: softmax_focal_loss(torch.randn(3), torch.tensor([0])), ValueError, "logits"),
        (
            lambda: softmax_focal_loss(torch.randn(2, 3), torch.tensor([0.0, 1.0])),
            TypeError,
            "target",
        ),
        (lambda: softmax_focal_loss(torch.randn(2, 3), torch.tensor([0, 3])), ValueError, "target"),
        (lambda: softmax_focal_loss(torch.randn(2, 3), torch.tensor([0])), ValueError, "target"),
        (
            lambda: softmax_focal_loss(torch.randn(2, 3), torch.tensor([0, 1]), gamma=-1),
            ValueError,
            "gamma",
        ),
        (
            lambda: softmax_focal_loss(torch.randn(2, 3), torch.tensor([0, 1]), gamma="2"),
            TypeError,
            "gamma",
        ),
        (
            lambda: softmax_focal_loss(
                torch.randn(2, 3), torch.tensor([0, 1]), weight=torch.ones(2)
            ),
            ValueError,
            "weight",
        ),
        (
            lambda: softmax_focal_loss(torch.randn(2, 3), torch.tensor([0, 1]), reduction="avg"),
            ValueError,
            "reduction",
        ),
        (lambda: SoftmaxFocalLoss(weight=torch.ones(2, 2)), ValueError, "weight"),
        (
            lambda: sigmoid_focal_loss(torch.randn(2), torch.ones(3)),
            ValueError,
            "logits and targets",
        ),
        (lambda: sigmoid_focal_loss(torch.randn(2), torch.ones(2), alpha=2), ValueError, "alpha"),
        (
            lambda: sigmoid_focal_loss(torch.ones(2, dtype=torch.long), torch.ones(2)),
            TypeError,
            "logits",
        ),
        (lambda: class_weights(torch.tensor([0, 0, 1]), 3), ValueError, "labels"),
        (lambda: class_weights(torch.tensor([0, 1]), 2, scheme="sqrt"), ValueError, "scheme"),
        (
            lambda: class_weights(torch.tensor([0, 1]), 2, scheme="effective", beta=1.0),
            ValueError,
            "beta",
        ),
        (lambda: class_weights(torch.tensor([0, 1]), 0), ValueError, "num_classes"),
        (lambda: class_weights([0, 1], 2), TypeError, "labels"),
        (
            lambda: balanced_sampler(torch.tensor([0, 1]), 2, num_samples=0),
            ValueError,
            "num_samples",
        ),
        (lambda: balanced_sampler(torch.tensor([0, 1]), 2, seed=-2), ValueError, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()

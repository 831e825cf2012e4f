"""cnnbook.metric_learning against PyTorch and scikit-learn over random cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from torch import nn
from torch.nn import functional as F

from cnnbook.metric_learning import (
    batch_hard_triplet_loss,
    best_threshold,
    contrastive_loss,
    embed,
    knn_predict,
    make_pairs,
    make_triplets,
    pairwise_distances,
    recall_at_k,
    roc_auc,
    triplet_loss,
    verification_accuracy,
)
from cnnbook.models.embedding import EmbeddingNet, SiameseNet

# One case: (seed, number of rows, embedding width, scale of the points).
cases = st.tuples(
    st.integers(0, 2**31 - 1), st.integers(1, 30), st.integers(1, 16), st.floats(0.05, 5.0)
)
margins = st.floats(0.01, 3.0)  # nn.TripletMarginLoss insists on margin > 0
settings_60 = settings(max_examples=60, deadline=None)


def _points(seed: int, n: int, d: int, scale: float, k: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(k)]


def _labels(seed: int, n: int, c: int) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed + 1))


# ----------------------------------------------------------------------------- distances


@settings_60
@given(cases, st.integers(1, 30))
def test_pairwise_distances_match_cdist(case, m):
    a, _, _ = _points(*case)
    b = _points(case[0] + 7, m, case[2], case[3], k=1)[0]
    expected = torch.cdist(a, b)
    assert torch.allclose(pairwise_distances(a, b), expected, atol=1e-6)
    assert torch.allclose(pairwise_distances(a, b, squared=True), expected**2, atol=1e-6)
    self_d = pairwise_distances(a)
    assert self_d.shape == (len(a), len(a)) and (self_d >= 0).all()
    assert torch.allclose(self_d, torch.cdist(a, a), atol=1e-6)


@settings_60
@given(cases, margins, st.sampled_from(["mean", "sum", "none"]))
def test_contrastive_loss_matches_the_formula(case, margin, reduction):
    z1, z2, _ = _points(*case)
    same = _labels(case[0], case[1], 2).double()
    d = F.pairwise_distance(z1, z2, eps=0.0)
    per_pair = same * d**2 + (1 - same) * torch.clamp(margin - d, min=0) ** 2
    expected = {"mean": per_pair.mean(), "sum": per_pair.sum(), "none": per_pair}[reduction]
    ours = contrastive_loss(z1, z2, same.bool(), margin=margin, reduction=reduction)
    assert torch.allclose(ours, expected, atol=1e-10)
    # The distance is the diagonal of cdist between the two sets.
    assert torch.allclose(torch.cdist(z1, z2).diagonal(), d, atol=1e-6)


@settings_60
@given(cases, margins, st.sampled_from(["mean", "sum", "none"]))
def test_triplet_loss_matches_torch(case, margin, reduction):
    a, p, n = _points(*case)
    ours = triplet_loss(a, p, n, margin=margin, reduction=reduction)
    exact = nn.TripletMarginLoss(margin=margin, p=2, eps=0.0, reduction=reduction)(a, p, n)
    assert torch.allclose(ours, exact, atol=1e-10)
    # PyTorch's default measures ||a - p + eps||: each distance moves by <= eps * sqrt(D),
    # so each hinge by <= 2 eps sqrt(D).
    default = nn.TripletMarginLoss(margin=margin, p=2, reduction=reduction)(a, p, n)
    scale = len(a) if reduction == "sum" else 1
    assert torch.allclose(ours, default, atol=2e-6 * case[2] ** 0.5 * scale + 1e-12)


@settings_60
@given(cases, st.integers(2, 4), margins)
def test_batch_hard_is_the_worst_triplet_per_anchor(case, c, margin):
    z, _, _ = _points(*case)
    y = _labels(case[0], case[1], c)
    D = torch.cdist(z, z)
    expected = []
    for i in range(len(y)):
        pos = [D[i, j] for j in range(len(y)) if j != i and y[j] == y[i]]
        neg = [D[i, j] for j in range(len(y)) if y[j] != y[i]]
        if pos and neg:
            expected.append(max(0.0, float(max(pos) - min(neg)) + margin))
    if not expected:
        with pytest.raises(ValueError, match="anchor"):
            batch_hard_triplet_loss(z, y, margin)
        return
    ours = batch_hard_triplet_loss(z, y, margin, reduction="none")
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6)


def test_batch_hard_gradient_is_finite_with_duplicates():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    batch_hard_triplet_loss(z, torch.tensor([0, 0, 1]), margin=0.5).backward()
    assert torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------------- evaluation


@settings(max_examples=40, deadline=None)
@given(cases, st.integers(1, 30), st.integers(2, 5), st.integers(1, 7))
def test_knn_matches_sklearn(case, n_queries, c, k):
    gallery, _, _ = _points(*case)
    queries = _points(case[0] + 3, n_queries, case[2], case[3], k=1)[0]
    labels = _labels(case[0], case[1], c)
    k = min(k, len(gallery))
    sk = KNeighborsClassifier(n_neighbors=k).fit(gallery.numpy(), labels.numpy())
    ours = knn_predict(gallery, labels, queries, k=k)
    np.testing.assert_array_equal(ours.numpy(), sk.predict(queries.numpy()))


@settings_60
@given(st.integers(0, 2**31 - 1), st.integers(2, 60), st.booleans())
def test_roc_auc_matches_sklearn(seed, n, with_ties):
    rng = np.random.default_rng(seed)
    same = rng.integers(0, 2, n)
    same[:2] = [0, 1]  # both kinds present
    scores = rng.normal(size=n) + same
    if with_ties:
        scores = np.round(scores)  # many equal scores: ties count one half
    ours = roc_auc(torch.from_numpy(scores), torch.from_numpy(same))
    assert ours == pytest.approx(roc_auc_score(same, scores), abs=1e-12)


@settings_60
@given(st.integers(0, 2**31 - 1), st.integers(1, 50), st.booleans())
def test_best_threshold_beats_every_threshold(seed, n, with_ties):
    rng = np.random.default_rng(seed)
    same = torch.from_numpy(rng.integers(0, 2, n))
    d = torch.from_numpy(rng.random(n) + 0.5 * (1 - same.numpy()))
    if with_ties:
        d = torch.round(d * 4) / 4
    threshold, acc = best_threshold(d, same)
    assert verification_accuracy(d, same, threshold) == pytest.approx(acc)
    candidates = [float(t) for t in d] + [float(d.min()) - 1]
    best = max(verification_accuracy(d, same, t) for t in candidates)
    assert acc == pytest.approx(best)


@settings(max_examples=40, deadline=None)
@given(cases, st.integers(2, 4), st.integers(1, 5))
def test_recall_at_k_against_a_loop(case, c, k):
    z, _, _ = _points(*case)
    if len(z) < 2:
        return
    y = _labels(case[0], case[1], c)
    k = min(k, len(z) - 1)
    D = torch.cdist(z, z)
    hits = 0
    for i in range(len(z)):
        order = [j for j in D[i].argsort().tolist() if j != i][:k]
        hits += any(int(y[j]) == int(y[i]) for j in order)
    assert recall_at_k(z, y, k) == pytest.approx(hits / len(z))


# ----------------------------------------------------------------------------- samplers


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.integers(1, 200), st.integers(2, 6))
def test_pairs_and_triplets_are_valid_and_seeded(seed, n, c):
    y = torch.arange(60) % c
    i, j, same = make_pairs(y, n, seed=seed)
    assert len(i) == len(j) == len(same) == n and int(same.sum()) == round(n / 2)
    assert torch.equal(y[i] == y[j], same.bool()) and not (i[same.bool()] == j[same.bool()]).any()
    again = make_pairs(y, n, seed=seed)
    assert all(torch.equal(u, v) for u, v in zip((i, j, same), again, strict=True))
    a, p, neg = make_triplets(y, n, seed=seed)
    assert (y[a] == y[p]).all() and (a != p).all() and (y[a] != y[neg]).all()
    assert torch.equal(a, make_triplets(y, n, seed=seed)[0])


# ----------------------------------------------------------------------------- networks


def test_embeddings_have_unit_length_and_embed_restores_mode():
    torch.manual_seed(0)
    net = EmbeddingNet(dim=8, width=4).train()
    z = embed(net, torch.randn(5, 1, 28, 28), batch_size=2)
    assert z.shape == (5, 8) and torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-6)
    assert net.training, "embed must put the model back in training mode"


def test_siamese_weights_are_shared_and_gradients_add_up():
    torch.manual_seed(0)
    encoder = EmbeddingNet(dim=4, width=4)
    siamese = SiameseNet(encoder)
    own = sum(p.numel() for p in encoder.parameters())
    assert sum(p.numel() for p in siamese.parameters()) == own, "one set of weights, not two"
    x1, x2 = torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28)
    grads = []
    for branch in (0, 1):  # each branch's gradient on its own
        siamese.zero_grad()
        siamese(x1, x2)[branch].sum().backward()
        grads.append([p.grad.clone() for p in siamese.parameters()])
    siamese.zero_grad()
    z1, z2 = siamese(x1, x2)
    (z1.sum() + z2.sum()).backward()
    for p, g1, g2 in zip(siamese.parameters(), *grads, strict=True):
        assert torch.allclose(p.grad, g1 + g2, atol=1e-6)
    z1_again, z2_swapped = siamese(x2, x1)
    assert torch.allclose(z1_again, z2, atol=1e-6) and torch.allclose(z2_swapped, z1, atol=1e-6)


# ----------------------------------------------------------------------------- bad arguments


def test_bad_arguments_raise_errors_naming_them():
    z = torch.randn(4, 3)
    y = torch.tensor([0, 0, 1, 1])
    with pytest.raises(TypeError, match="a must"):
        pairwise_distances(z.numpy())
    with pytest.raises(ValueError, match="width D"):
        pairwise_distances(z, torch.randn(2, 5))
    with pytest.raises(ValueError, match="margin"):
        contrastive_loss(z, z, y, margin=-1.0)
    with pytest.raises(ValueError, match="same must hold only"):
        contrastive_loss(z, z, torch.tensor([0, 2, 1, 0]))
    with pytest.raises(ValueError, match="same shape"):
        triplet_loss(z, z, torch.randn(4, 2))
    with pytest.raises(ValueError, match="reduction"):
        triplet_loss(z, z, z, reduction="max")
    with pytest.raises(TypeError, match="labels"):
        batch_hard_triplet_loss(z, y.float())
    with pytest.raises(ValueError, match="k must"):
        knn_predict(z, y, z, k=5)
    with pytest.raises(TypeError, match="k must"):
        recall_at_k(z, y, k=1.5)
    with pytest.raises(ValueError, match="both positive"):
        roc_auc(torch.randn(4), torch.ones(4))
    with pytest.raises(ValueError, match="at least 2 classes"):
        make_pairs(torch.zeros(5, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="positive_fraction"):
        make_pairs(y, 3, positive_fraction=1.5)
    with pytest.raises(TypeError, match="threshold"):
        verification_accuracy(torch.rand(4), y.clamp(max=1), "0.5")
    with pytest.raises(ValueError, match="dim"):
        EmbeddingNet(dim=0)
    with pytest.raises(TypeError, match="encoder"):
        SiameseNet("not a module")
    with pytest.raises(TypeError, match="model"):
        embed(lambda x: x, torch.randn(2, 1, 28, 28))

"""cnnbook.metrics against scikit-learn over random cases, plus hand-checked ECE examples."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnbook.metrics import (
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    most_confused_pairs,
    precision_recall_f1,
    top_k_accuracy,
)

# One case: (seed, number of samples, number of classes); the data comes from the seed.
cases = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(2, 8))
settings_100 = settings(max_examples=100, deadline=None)


def _random_case(seed: int, n: int, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y_true (n,), y_pred (n,) that agree about half the time, scores (n, c) float64."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, c, size=n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, c, size=n))
    scores = rng.normal(size=(n, c))  # continuous: ties have probability zero
    return y_true, y_pred, scores


@settings_100
@given(cases)
def test_accuracy_matches_sklearn(case):
    y_true, y_pred, scores = _random_case(*case)
    assert accuracy(y_pred, y_true) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    expected = skm.accuracy_score(y_true, scores.argmax(axis=1))
    assert accuracy(torch.from_numpy(scores), torch.from_numpy(y_true)) == pytest.approx(expected)


@pytest.mark.filterwarnings("ignore:'k' .* greater than or equal to:UserWarning")
@settings_100
@given(cases, st.integers(1, 8))
def test_top_k_accuracy_matches_sklearn(case, k):
    y_true, _, scores = _random_case(*case)
    c = scores.shape[1]
    k = min(k, c)
    if c == 2:  # scikit-learn wants P(class 1) for two classes, thresholded at 0.5
        p1 = 1 / (1 + np.exp(scores[:, 0] - scores[:, 1]))
        expected = skm.top_k_accuracy_score(y_true, p1, k=k, labels=[0, 1])
    else:
        expected = skm.top_k_accuracy_score(y_true, scores, k=k, labels=np.arange(c))
    assert top_k_accuracy(scores, y_true, k) == pytest.approx(expected)


@settings_100
@given(cases)
def test_confusion_matrix_matches_sklearn(case):
    y_true, y_pred, scores = _random_case(*case)
    c = scores.shape[1]
    ours = confusion_matrix(y_true, y_pred, c)
    assert ours.dtype == torch.int64 and ours.shape == (c, c)
    np.testing.assert_array_equal(
        ours.numpy(), skm.confusion_matrix(y_true, y_pred, labels=np.arange(c))
    )


@settings_100
@given(cases)
def test_precision_recall_f1_match_sklearn(case):
    y_true, y_pred, scores = _random_case(*case)
    c = scores.shape[1]
    ours = precision_recall_f1(y_true, y_pred, c)
    kwargs = {"labels": np.arange(c), "zero_division": 0}
    p, r, f, support = skm.precision_recall_fscore_support(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(ours["precision"].numpy(), p, atol=1e-12)
    np.testing.assert_allclose(ours["recall"].numpy(), r, atol=1e-12)
    np.testing.assert_allclose(ours["f1"].numpy(), f, atol=1e-12)
    np.testing.assert_array_equal(ours["support"].numpy(), support)
    mp, mr, mf, _ = skm.precision_recall_fscore_support(y_true, y_pred, average="macro", **kwargs)
    assert (ours["macro_precision"], ours["macro_recall"]) == pytest.approx((mp, mr))
    # scikit-learn's macro F1 is the mean of per-class F1 (not F1 of the macro means).
    assert ours["macro_f1"] == pytest.approx(mf)


def test_ece_hand_computed():
    # 4 samples, 3 classes, 2 bins of width 0.5: (0, 0.5] and (0.5, 1].
    probs = torch.tensor(
        [
            [0.6, 0.3, 0.1],  # conf 0.6, pred 0, true 0: correct   -> bin 2
            [0.9, 0.05, 0.05],  # conf 0.9, pred 0, true 1: wrong   -> bin 2
            [0.2, 0.42, 0.38],  # conf 0.42, pred 1, true 1: correct -> bin 1
            [0.45, 0.35, 0.2],  # conf 0.45, pred 0, true 2: wrong  -> bin 1
        ]
    )
    y = torch.tensor([0, 1, 1, 2])
    # bin 1: acc 1/2, conf (0.42 + 0.45) / 2 = 0.435 -> |0.5 - 0.435| * 2/4 = 0.0325
    # bin 2: acc 1/2, conf (0.6 + 0.9) / 2 = 0.75    -> |0.5 - 0.75| * 2/4 = 0.125
    ece = expected_calibration_error(probs, y, n_bins=2)
    assert ece == pytest.approx(0.0325 + 0.125), "ECE should be 0.1575 for the hand example"


def test_ece_bins_are_closed_on_the_right():
    # Confidence exactly 0.5 with 2 bins belongs to the lower bin (0, 0.5].
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    y = torch.tensor([1, 0])  # first: pred 0, wrong; second: correct
    # bin 1: acc 0, conf 0.5 -> 0.5 * 1/2; bin 2: acc 1, conf 1 -> 0
    assert expected_calibration_error(probs, y, n_bins=2) == pytest.approx(0.25)


def test_ece_is_near_zero_when_perfectly_calibrated():
    # Draw confidences, then make each prediction correct with exactly that probability.
    rng = np.random.default_rng(0)
    n, c = 200_000, 4
    conf = rng.uniform(1 / c + 0.01, 1.0, size=n)
    probs = np.empty((n, c))
    probs[:, 0] = conf
    probs[:, 1:] = ((1 - conf) / (c - 1))[:, None]
    correct = rng.random(n) < conf
    y = np.where(correct, 0, rng.integers(1, c, size=n))
    ece = expected_calibration_error(probs, y, n_bins=15)
    assert ece < 0.01, f"a calibrated predictor should have ECE near 0, got {ece:.4f}"
    # The same probabilities with all labels wrong are badly calibrated.
    assert expected_calibration_error(probs, np.ones(n, dtype=np.int64), n_bins=15) > 0.5


def test_most_confused_pairs():
    cm = torch.tensor([[9, 3, 0], [5, 7, 3], [0, 1, 8]])
    assert most_confused_pairs(cm, 3) == [(1, 0, 5), (0, 1, 3), (1, 2, 3)]
    assert most_confused_pairs(cm, 10) == [(1, 0, 5), (0, 1, 3), (1, 2, 3), (2, 1, 1)]
    assert most_confused_pairs(torch.eye(3, dtype=torch.long), 2) == []


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: accuracy(np.array([0, 1]), np.array([0, 1, 1])), ValueError, "same length"),
        (lambda: accuracy([0, 1], np.array([0, 1])), TypeError, "scores_or_pred"),
        (lambda: accuracy(np.array([0]), np.array([0.5])), TypeError, "integer"),
        (lambda: top_k_accuracy(np.zeros((2, 3)), np.array([0, 1]), 4), ValueError, "k must"),
        (lambda: top_k_accuracy(np.zeros((2, 3)), np.array([0, 3]), 1), ValueError, r"max 3\)"),
        (lambda: confusion_matrix(np.array([0, 5]), np.array([0, 1]), 3), ValueError, "y_true"),
        (lambda: confusion_matrix(np.array([0]), np.array([0]), 0), ValueError, "num_classes"),
        (lambda: confusion_matrix(np.array([], int), np.array([], int), 2), ValueError, "empty"),
        (lambda: precision_recall_f1(np.array([0]), np.array([-1]), 2), ValueError, "y_pred"),
        (
            lambda: expected_calibration_error(np.full((1, 2), 2.0), np.array([0])),
            ValueError,
            "softmax",
        ),
        (lambda: expected_calibration_error(np.ones((1, 2)) / 2, [0]), TypeError, "y must"),
        (lambda: most_confused_pairs(np.zeros((2, 3)), 1), ValueError, "square"),
        (lambda: most_confused_pairs(np.zeros((2, 2)), 0), ValueError, "k must"),
    ],
)
def test_bad_input_names_the_problem(call, error, words):
    with pytest.raises(error, match=words):
        call()

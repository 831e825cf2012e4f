"""cnnbook.check: exercise checkers catch subtly wrong answers and say why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from cnnbook.check import CheckFailed, check_function, check_value


def reference_output_size(W, k, p, s):
    return (W - k + 2 * p) // s + 1


def test_correct_function_passes(capsys):
    def by_counting(W, k, p, s):  # the student's own way: count the kernel's placements
        return len(range(0, W + 2 * p - k + 1, s))

    cases = [(28, 3, 1, 1), (28, 3, 1, 2), (224, 7, 3, 2)]
    assert check_function(by_counting, reference_output_size, cases) is None
    assert "all 3 cases" in capsys.readouterr().out


def test_off_by_one_output_size_is_reported():
    def off_by_one(W, k, p, s):
        return (W - k + 2 * p) // s  # forgot the + 1

    with pytest.raises(CheckFailed, match=r"off_by_one\(28, 3, 1, 1\)") as info:
        check_function(off_by_one, reference_output_size, [(28, 3, 1, 1)])
    assert "expected: 28" in str(info.value) and "got:      27" in str(info.value)


def test_convolution_without_flip_is_reported():
    rng = np.random.default_rng(0)
    image, kernel = rng.normal(size=(6, 6)), rng.normal(size=(3, 3))

    def no_flip(img, ker):  # cross-correlation where a true convolution is asked for
        out = np.zeros((img.shape[0] - 2, img.shape[1] - 2))
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = np.sum(img[i : i + 3, j : j + 3] * ker)
        return out

    with pytest.raises(CheckFailed, match="largest difference"):
        check_function(no_flip, lambda a, b: convolve2d(a, b, mode="valid"), [(image, kernel)])


def test_wrong_shape_is_reported():
    with pytest.raises(CheckFailed, match=r"shape \(2, 2\) where \(3, 3\)"):
        check_value("output", np.zeros((2, 2)), np.zeros((3, 3)))


def test_not_implemented_passes_through():
    def unfinished(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_function(unfinished, reference_output_size, [(5, 3, 0, 1)])


def test_crash_is_reported_with_the_input():
    def crashes(W, k, p, s):
        return W // 0

    with pytest.raises(CheckFailed, match="ZeroDivisionError"):
        check_function(crashes, reference_output_size, [(5, 3, 0, 1)])


def test_nan_is_reported():
    with pytest.raises(CheckFailed, match="NaN"):
        check_value("map", np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_bad_arguments():
    with pytest.raises(TypeError, match="func"):
        check_function(3, reference_output_size, [(1, 1, 0, 1)])
    with pytest.raises(TypeError, match="reference"):
        check_function(reference_output_size, None, [(1, 1, 0, 1)])
    with pytest.raises(ValueError, match="cases"):
        check_function(reference_output_size, reference_output_size, [])


def test_ragged_expected_values_compare_as_python(capsys):
    shapes = [(6, 28, 28), (400,), (10,)]
    check_value("shapes", [(6, 28, 28), (400,), (10,)], shapes)
    with pytest.raises(CheckFailed, match="values differ"):
        check_value("shapes", [(6, 28, 28), (401,), (10,)], shapes)


def test_torch_tensors_are_compared_as_arrays(capsys):
    def relu(x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0)

    cases = [(torch.randn(3, 4, generator=torch.Generator().manual_seed(s)),) for s in range(3)]
    check_function(relu, torch.relu, cases)
    assert "all 3 cases" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="largest difference"):
        check_function(lambda x: x.abs(), torch.relu, cases, name="relu")
    check_value("loss", torch.tensor(0.25), 0.25)
    with pytest.raises(CheckFailed, match="shape"):
        check_value("logits", torch.zeros(2, 3), np.zeros((3, 2)))

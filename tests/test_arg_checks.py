"""The shared argument checks and the eval-mode guard."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbook._checks import check_bool
from cnnbook._torch_checks import check_labels, eval_mode


def test_eval_mode_restores_every_submodule_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a model that trains
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False, True]


def test_eval_mode_restores_the_modes_after_an_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("inside")
    assert all(m.training for m in model.modules())


def test_check_bool_names_the_argument():
    assert check_bool("flag", True) is True
    with pytest.raises(TypeError, match="flag must be a bool"):
        check_bool("flag", 1)


def test_check_labels_accepts_labels_and_names_the_argument():
    assert check_labels("y", torch.tensor([0, 2], dtype=torch.int32), 3).dtype == torch.int64
    assert check_labels("mask", torch.zeros(2, 4, 4, dtype=torch.long), 2, ndim=None).shape == (
        2,
        4,
        4,
    )
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        check_labels("y", torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"y must have shape \(N,\)"):
        check_labels("y", torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="y must have 3 entries"):
        check_labels("y", torch.tensor([0, 1]), n=3)
    with pytest.raises(ValueError, match=r"y holds labels outside 0..1 \(min 0, max 5\)"):
        check_labels("y", torch.tensor([0, 5]), 2)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        check_labels("y", [0, 1])

"""cnnbook.runtime: profile, device, seeding, offline switch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnbook import runtime


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("CNNBOOK_PROFILE", raising=False)
    expected = "full" if torch.cuda.is_available() else "quick"
    assert runtime.profile() == expected


@pytest.mark.parametrize("value", ["quick", "full", " FULL "])
def test_profile_from_environment(monkeypatch, value):
    monkeypatch.setenv("CNNBOOK_PROFILE", value)
    assert runtime.profile() == value.strip().lower()
    assert runtime.by_profile(quick=1, full=2) == (1 if value.strip().lower() == "quick" else 2)


def test_bad_profile_is_named(monkeypatch):
    monkeypatch.setenv("CNNBOOK_PROFILE", "fast")
    with pytest.raises(ValueError, match="CNNBOOK_PROFILE"):
        runtime.profile()


def test_seed_everything_repeats_numbers():
    g1 = runtime.seed_everything(7)
    a = (g1.random(3), np.random.rand(2), torch.rand(2))  # noqa: NPY002
    g2 = runtime.seed_everything(7)
    b = (g2.random(3), np.random.rand(2), torch.rand(2))  # noqa: NPY002
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, TypeError), ("3", TypeError)])
def test_seed_everything_rejects_bad_seeds(seed, error):
    with pytest.raises(error, match="seed"):
        runtime.seed_everything(seed)


def test_device(monkeypatch):
    monkeypatch.delenv("CNNBOOK_DEVICE", raising=False)
    assert runtime.device("cpu") == torch.device("cpu")
    assert runtime.device().type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            runtime.device("cuda")
    with pytest.raises(TypeError, match="name"):
        runtime.device(3)


def test_offline_switch(monkeypatch):
    monkeypatch.setenv("CNNBOOK_OFFLINE", "1")
    assert runtime.is_offline()
    monkeypatch.setenv("CNNBOOK_OFFLINE", "0")
    assert not runtime.is_offline()
    monkeypatch.setenv("CNNBOOK_OFFLINE", "yes")
    with pytest.raises(ValueError, match="CNNBOOK_OFFLINE"):
        runtime.is_offline()


def test_describe_names_profile_and_switch(monkeypatch):
    monkeypatch.setenv("CNNBOOK_PROFILE", "quick")
    line = runtime.describe()
    assert "profile: quick" in line and "CNNBOOK_PROFILE=full" in line

"""Where and how the book runs: device, seeds, the quick/full profile, offline detection.

The profile is the only global setting of the library. ``quick`` (the default on a CPU,
and in CI) keeps every training cell small but real; ``full`` (the default when CUDA is
present) reproduces the headline results. Choose one with ``CNNBOOK_PROFILE``.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import warnings
from typing import TypeVar

import numpy as np
import torch

from cnnbook._checks import check_choice, check_int

PROFILES = ("quick", "full")
T = TypeVar("T")

# A host that torchvision downloads datasets and weights from; if it resolves and accepts
# a TCP connection, downloads can work.
_PROBE_HOST = ("download.pytorch.org", 443)


def profile() -> str:
    """Return the active profile: ``CNNBOOK_PROFILE`` if set, else full with CUDA, else quick."""
    chosen = os.environ.get("CNNBOOK_PROFILE", "").strip().lower()
    if chosen:
        return str(check_choice("CNNBOOK_PROFILE", chosen, PROFILES))
    return "full" if torch.cuda.is_available() else "quick"


def by_profile(quick: T, full: T) -> T:
    """Pick the value for the active profile, e.g. ``epochs = by_profile(quick=2, full=30)``."""
    return quick if profile() == "quick" else full


def max_steps() -> int | None:
    """The optimizer-step cap ``CNNBOOK_MAX_STEPS`` (a positive integer), or None if unset.

    A smoke test of the full profile: the library's training loops (``train.fit``,
    ``fast_train.train_fast``, ``attacks.adversarial_training``) stop after this many
    optimizer steps in all (a warning says so), so CI can run the full-profile configuration of
    a chapter on a CPU in seconds. Accuracies after a capped run mean nothing: asserts on
    them consult ``steps_capped()``.
    """
    raw = os.environ.get("CNNBOOK_MAX_STEPS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"CNNBOOK_MAX_STEPS must be a positive integer, got {raw!r}")
    return value


def warn_steps_capped(what: str, steps: int, epoch: int, epochs: int, stacklevel: int) -> None:
    """Say that ``CNNBOOK_MAX_STEPS`` stopped ``what`` (e.g. "training") after ``steps``
    optimizer steps, in epoch ``epoch`` of ``epochs``. ``stacklevel`` counts from the
    caller of this function, as for ``warnings.warn``."""
    warnings.warn(
        f"CNNBOOK_MAX_STEPS stopped {what} after {steps} optimizer steps "
        f"(epoch {epoch} of {epochs}): a smoke test, its accuracy means nothing",
        stacklevel=stacklevel + 1,
    )


def steps_capped() -> bool:
    """True when ``CNNBOOK_MAX_STEPS`` caps training (so accuracy asserts must not apply)."""
    return max_steps() is not None


def device(name: str | None = None) -> torch.device:
    """The device to compute on: ``name`` or ``CNNBOOK_DEVICE`` if given, else CUDA, MPS, CPU."""
    name = name or os.environ.get("CNNBOOK_DEVICE") or None
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a device string such as 'cpu', got {name!r}")
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"name={name!r} asks for CUDA, but torch sees no CUDA device")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (all devices); return a fresh NumPy Generator.

    Notebooks call this once at the top so that a restart-and-run-all gives the same
    numbers. Pass the returned generator around instead of using NumPy's global state.
    """
    seed = check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global state other code may use
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@functools.lru_cache(maxsize=1)
def _probe_online(timeout: float) -> bool:
    try:
        with socket.create_connection(_PROBE_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def is_offline(timeout: float = 2.0) -> bool:
    """True when downloads cannot work.

    ``CNNBOOK_OFFLINE=1`` forces offline (CI sets it, so no probe leaves the machine),
    ``CNNBOOK_OFFLINE=0`` forces online; otherwise one TCP connection is tried, once per
    process.
    """
    forced = os.environ.get("CNNBOOK_OFFLINE", "").strip()
    if forced:
        check_choice("CNNBOOK_OFFLINE", forced, ("0", "1"))
        return forced == "1"
    return not _probe_online(float(timeout))


def describe() -> str:
    """Two short lines for the top of a notebook: profile, device, versions; how to switch.

    Short enough for the book's text column (about 80 characters of code font).
    """
    active = profile()
    other = "full" if active == "quick" else "quick"
    return (
        f"cnnbook profile: {active} | device: {device()} | torch {torch.__version__} | "
        f"threads: {torch.get_num_threads()}\n(switch with CNNBOOK_PROFILE={other})"
    )

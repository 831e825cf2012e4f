"""Automatic checks for exercises: helpful messages instead of bare assertion errors.

A student's function is run on the same inputs as a reference; the first disagreement
is reported with the input, the expected and the received value. ``NotImplementedError``
from an unfinished exercise passes through untouched, so a student notebook fails
loudly where work is still to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


class CheckFailed(AssertionError):
    """An exercise answer disagrees with the expected result."""


def _plain(value: Any) -> Any:
    """A torch tensor as a NumPy array (so answers may be tensors); anything else unchanged."""
    if all(hasattr(value, attr) for attr in ("detach", "cpu", "numpy")):
        return value.detach().cpu().numpy()
    return value


def _short(value: Any, limit: int = 300) -> str:
    value = _plain(value)
    if isinstance(value, np.ndarray):
        body = np.array2string(value, precision=4, threshold=50)
        text = f"array of shape {value.shape}, dtype {value.dtype}:\n{body}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _agree(got: Any, expected: Any, atol: float) -> str | None:
    """None if ``got`` matches ``expected``, else the reason it does not."""
    got, expected = _plain(got), _plain(expected)
    if isinstance(expected, (np.ndarray, list, tuple)) and not isinstance(expected, str):
        try:
            expected_arr = np.asarray(expected)
        except ValueError:  # ragged, e.g. shapes of different lengths: compare as Python
            return None if got == expected else "values differ"
        try:
            got_arr = np.asarray(got)
        except Exception:  # noqa: BLE001 - any failure to convert is a wrong answer
            return f"could not turn the answer ({type(got).__name__}) into an array"
        if got_arr.shape != expected_arr.shape:
            return f"shape {got_arr.shape} where {expected_arr.shape} was expected"
        if expected_arr.dtype.kind in "fc" or got_arr.dtype.kind in "fc":
            diff = np.abs(got_arr.astype(float) - expected_arr.astype(float))
            if not np.all(np.isfinite(got_arr.astype(float))):
                return "the answer contains NaN or infinity"
            if diff.size and diff.max() > atol:
                where = np.unravel_index(int(diff.argmax()), diff.shape)
                return (
                    f"largest difference {diff.max():.3g} at index {tuple(int(i) for i in where)} "
                    f"(tolerance {atol:g})"
                )
            return None
        return None if np.array_equal(got_arr, expected_arr) else "values differ"
    if isinstance(expected, float) or isinstance(got, float):
        try:
            ok = abs(float(got) - float(expected)) <= atol
        except (TypeError, ValueError):
            return f"expected a number, got {type(got).__name__}"
        return None if ok else "values differ"
    return None if got == expected else "values differ"


def check_value(name: str, got: Any, expected: Any, *, atol: float = 1e-8) -> None:
    """Raise ``CheckFailed`` naming ``name`` when ``got`` differs from ``expected``."""
    reason = _agree(got, expected, atol)
    if reason is not None:
        raise CheckFailed(
            f"{name}: {reason}.\n  expected: {_short(expected)}\n  got:      {_short(got)}"
        )
    print(f"✓ {name} is correct")


def check_function(
    func: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[Sequence[Any] | dict[str, Any]],
    *,
    name: str | None = None,
    atol: float = 1e-8,
) -> None:
    """Compare ``func`` with ``reference`` on every case; print a tick when all agree.

    A case is a tuple of positional arguments or a dict of keyword arguments.
    """
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    label = name or getattr(func, "__name__", "your function")
    count = 0
    for case in cases:
        args, kwargs = ((), case) if isinstance(case, dict) else (tuple(case), {})
        shown = ", ".join(
            [_short(a, 80) for a in args] + [f"{k}={_short(v, 80)}" for k, v in kwargs.items()]
        )
        expected = reference(*args, **kwargs)
        try:
            got = func(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001 - report any crash as a failed case
            raise CheckFailed(f"{label}({shown}) raised {type(exc).__name__}: {exc}") from exc
        reason = _agree(got, expected, atol)
        if reason is not None:
            raise CheckFailed(
                f"{label}({shown}): {reason}.\n"
                f"  expected: {_short(expected)}\n  got:      {_short(got)}"
            )
        count += 1
    if count == 0:
        raise ValueError("cases must contain at least one case")
    print(f"✓ {label} agrees with the reference on all {count} cases")

"""Automatic checks for exercises: helpful messages instead of bare assertion errors.

A student's function is run on the same inputs as a reference; the first disagreement
is reported with the input, the expected and the received value. ``NotImplementedError``
from an unfinished exercise passes through untouched, so a student notebook fails
loudly where work is still to do.

``check_function`` also refuses a student's function that calls the reference it is
compared with (directly, through an alias, or by importing it again): while the
student's function runs, a profile hook (``sys.setprofile``) watches for the
reference's code object being executed. ``forbid=(...)`` names further functions an
exercise rules out. Limits: a Python function is recognised by its code object (a
``functools.wraps`` wrapper is unwrapped, a lambda wrapping the reference is looked
through: the functions it closes over or names as globals); a C builtin such as
``torch.conv2d`` is recognised only when that very function object is called, not a
method of an object such as ``tensor.flip``; and a copy of the reference's source pasted
into the answer is not a call at all.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from types import CodeType, FrameType
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


def _lambda_globals(func: Any) -> dict[str, Any]:
    """The Python functions a lambda names as globals, by name (empty for anything else)."""
    code = getattr(func, "__code__", None)
    if not isinstance(code, CodeType) or code.co_name != "<lambda>":
        return {}
    names = getattr(func, "__globals__", {})
    return {n: names[n] for n in code.co_names if inspect.isfunction(names.get(n))}


def _codes(
    func: Any, *, closure: bool, shared: frozenset[int] = frozenset()
) -> dict[CodeType, str]:
    """The code objects that running ``func`` executes first, mapped to a readable name.

    ``closure``: look through a lambda into the functions it closes over or names as
    globals, except those in ``shared`` (ids of helpers the student's wrapper also uses).
    """
    found: dict[CodeType, str] = {}
    seen: set[int] = set()
    todo = [(func, closure)]
    while todo:
        obj, look_inside = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            todo.append((obj.func, look_inside))
            continue
        if inspect.ismethod(obj):
            todo.append((obj.__func__, look_inside))
            continue
        if inspect.isclass(obj):
            for attr in ("__init__", "__call__", "forward"):
                if isinstance(vars(obj).get(attr), Callable):
                    todo.append((vars(obj)[attr], False))
            continue
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:
            todo.append((wrapped, look_inside))
        code = getattr(obj, "__code__", None)
        if isinstance(code, CodeType):
            name = getattr(obj, "__qualname__", code.co_name)
            found[code] = name
            if look_inside and name.endswith("<lambda>"):  # e.g. lambda *a: ref(*a).numpy()
                inner = []
                for cell in obj.__closure__ or ():
                    with contextlib.suppress(ValueError):  # an empty cell
                        inner.append(cell.cell_contents)
                inner = [f for f in inner if inspect.isfunction(f) or inspect.isbuiltin(f)]
                inner += [f for f in _lambda_globals(obj).values() if id(f) not in shared]
                todo += [(f, True) for f in inner]
        elif not isinstance(obj, type) and callable(obj) and not hasattr(obj, "__code__"):
            call = vars(type(obj)).get("__call__")  # a callable object defined in Python
            if getattr(call, "__code__", None) is not None:
                todo.append((call, False))
    return found


def _builtins(funcs: Iterable[Any]) -> dict[int, str]:
    """C functions (no code object) among ``funcs``, by identity."""
    return {
        id(f): getattr(f, "__qualname__", repr(f))
        for f in funcs
        if inspect.isbuiltin(f) and not hasattr(f, "__code__")
    }


class _Watch:
    """While active, record the first forbidden code object (or C function) executed."""

    def __init__(self, codes: dict[CodeType, Any], builtins: dict[int, Any]):
        self.codes, self.builtins = codes, builtins
        self.hit: Any = None
        self._previous: Any = None

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if self.hit is None:
            if event == "call" and frame.f_code in self.codes:
                self.hit = self.codes[frame.f_code]
            elif event == "c_call" and id(arg) in self.builtins:
                self.hit = self.builtins[id(arg)]

    def __enter__(self) -> _Watch:
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(self._previous)


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
    forbid: Iterable[Callable[..., Any]] = (),
) -> None:
    """Compare ``func`` with ``reference`` on every case; print a tick when all agree.

    A case is a tuple of positional arguments or a dict of keyword arguments. The check
    fails when running ``func`` executes ``reference`` (or one of ``forbid``): the
    student must write the function, not call the answer (see the module docstring for
    what can and cannot be detected).
    """
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    label = name or getattr(func, "__name__", "your function")
    forbid = tuple(forbid)
    for f in forbid:
        if not callable(f):
            raise TypeError(f"forbid must hold callables, got {type(f).__name__}")
    # what the student's function must not execute: name -> "reference" or "forbidden"
    codes = {c: (n, "forbidden") for f in forbid for c, n in _codes(f, closure=False).items()}
    # a harness both wrappers call by the same name, e.g. lambda s: run_steps(answer, s)
    # and lambda s: run_steps(reference, s), is not the reference
    mine = _lambda_globals(func)
    shared = frozenset(id(f) for n, f in _lambda_globals(reference).items() if mine.get(n) is f)
    reference_codes = _codes(reference, closure=True, shared=shared)
    codes.update({c: (n, "reference") for c, n in reference_codes.items()})
    for code in _codes(func, closure=True):  # a wrapper lambda shared with the reference,
        if code.co_name == "<lambda>":  # e.g. as_numpy(student) vs as_numpy(reference)
            codes.pop(code, None)
    builtins = {i: (n, "forbidden") for i, n in _builtins(forbid).items()}
    builtins.update({i: (n, "reference") for i, n in _builtins((reference,)).items()})
    count = 0
    for case in cases:
        args, kwargs = ((), case) if isinstance(case, dict) else (tuple(case), {})
        shown = ", ".join(
            [_short(a, 80) for a in args] + [f"{k}={_short(v, 80)}" for k, v in kwargs.items()]
        )
        expected = reference(*args, **kwargs)
        watch = _Watch(codes, builtins)
        try:
            with watch:
                got = func(*args, **kwargs)
        except NotImplementedError:
            if watch.hit is None:
                raise
            got = None
        except Exception as exc:  # noqa: BLE001 - report any crash as a failed case
            if watch.hit is None:
                raise CheckFailed(f"{label}({shown}) raised {type(exc).__name__}: {exc}") from exc
            got = None
        if watch.hit is not None:
            called, why = watch.hit
            called = called.rsplit(".", 1)[-1]
            what = (
                f"the reference implementation `{called}`"
                if why == "reference"
                else f"`{called}`, which this exercise forbids"
            )
            raise CheckFailed(
                f"{label} calls {what} (directly, through another name or inside another "
                "function): the exercise is to write it yourself."
            )
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

"""Argument checks shared by the library: each raises an error that names the argument."""

from __future__ import annotations

import numbers

import numpy as np


def check_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int; raise TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is True or False; TypeError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_pair(name: str, value: object, *, minimum: int | None = None) -> tuple[int, int]:
    """Accept an int or a pair of ints (height, width); return the pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (
            check_int(f"{name}[0]", value[0], minimum=minimum),
            check_int(f"{name}[1]", value[1], minimum=minimum),
        )
    v = check_int(name, value, minimum=minimum)
    return v, v


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1), e.g. a dropout rate; errors name ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_array(name: str, value: object, *, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a real-valued ndarray; reject other types and wrong ndim."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    return value


def check_choice(name: str, value: object, choices: tuple) -> object:
    """Return ``value`` if it is one of ``choices``; ValueError naming ``name`` otherwise."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_chw(name: str, value: object) -> tuple[int, int, int]:
    """A (C, H, W) shape: a tuple or list of three positive ints."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple (C, H, W), got {type(value).__name__}")
    if len(value) != 3:
        raise ValueError(f"{name} must be a tuple (C, H, W) of 3 ints, got {value!r}")
    c, h, w = (check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(value))
    return c, h, w

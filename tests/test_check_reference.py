"""check_function refuses a student's function that runs the reference it is compared with."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from cnnbook.batch_augment import apply_augment
from cnnbook.check import CheckFailed, check_function
from cnnbook.fast_train import lr_factor

CASES = [(3, 10, 0.2), (9, 10, 0.2)]
alias = lr_factor


def honest(step: int, total: int, warmup: float) -> float:
    peak = warmup * total
    if step < peak:
        return (step + 1) / (peak + 1)
    return max(0.0, (total - step) / max(total - peak, 1.0))


def direct(step, total, warmup):
    return lr_factor(step, total, warmup)


def through_alias(step, total, warmup):
    return alias(step, total, warmup)


def reimported(step, total, warmup):
    from cnnbook.fast_train import lr_factor as g

    return g(step, total, warmup)


def inside_a_helper(step, total, warmup):
    return [alias(s, total, warmup) for s in (step,)][0]


@pytest.mark.parametrize("cheat", [direct, through_alias, reimported, inside_a_helper, lr_factor])
def test_calling_the_reference_fails_with_the_reason(cheat):
    with pytest.raises(
        CheckFailed, match=r"calls the reference implementation `lr_factor`.*yourself"
    ):
        check_function(cheat, lr_factor, CASES)


def test_an_honest_answer_passes_also_against_a_wrapped_reference(capsys):
    @functools.wraps(lr_factor)
    def wrapped(*args):
        return lr_factor(*args)

    check_function(honest, lr_factor, CASES)
    check_function(honest, wrapped, CASES)
    with pytest.raises(CheckFailed, match="lr_factor"):  # unwrapped: the inner one counts
        check_function(direct, wrapped, CASES)
    assert capsys.readouterr().out.count("✓") == 2


def test_forbid_names_other_functions_and_builtins_by_identity():
    with pytest.raises(CheckFailed, match="`max`, which this exercise forbids"):
        check_function(honest, lr_factor, CASES, forbid=(max,))
    with pytest.raises(CheckFailed, match="`sqrt`"):
        check_function(lambda v: math.sqrt(v), math.sqrt, [(2.0,)])
    check_function(lambda v: v**0.5, math.sqrt, [(2.0,)])
    with pytest.raises(TypeError, match="forbid"):
        check_function(honest, lr_factor, CASES, forbid=(3,))


def test_a_lambda_wrapper_shared_by_answer_and_reference_is_not_a_call():
    as_numpy = lambda fn: lambda *args: fn(*args).numpy()  # noqa: E731 - as in chapter 10

    def flip_only(x, flips, shifts, pad):
        return apply_augment(x, flips, shifts, pad)

    def by_hand(x, flips, shifts, pad):
        out = torch.empty_like(x)
        for i in range(len(x)):
            image = x[i].flip(2) if flips[i] else x[i]
            padded = torch.nn.functional.pad(image[None], (pad,) * 4, mode="reflect")[0]
            top, left = pad + int(shifts[i, 0]), pad + int(shifts[i, 1])
            out[i] = padded[:, top : top + x.shape[2], left : left + x.shape[3]]
        return out

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    case = [(x, torch.tensor([True, False]), torch.tensor([[1, -2], [0, 2]]), 2)]
    check_function(as_numpy(by_hand), as_numpy(apply_augment), case)
    with pytest.raises(CheckFailed, match="`apply_augment`"):
        check_function(as_numpy(flip_only), as_numpy(apply_augment), case)


def test_a_lambda_reference_is_looked_through_to_the_function_it_calls():
    def via_global(step, total, warmup):
        return lr_factor(step, total, warmup) * 1.0

    with pytest.raises(CheckFailed, match="`lr_factor`"):
        check_function(via_global, lambda *a: lr_factor(*a), CASES)
    check_function(honest, lambda *a: lr_factor(*a), CASES)


def harness(fn, seed):
    return fn(seed % 7, 10, 0.3)


def test_a_harness_both_wrappers_call_is_not_the_reference():
    def cheat(step, total, warmup):
        return lr_factor(step, total, warmup)

    cases = [(1,), (8,)]
    check_function(lambda s: harness(honest, s), lambda s: harness(lr_factor, s), cases)
    with pytest.raises(CheckFailed, match="`lr_factor`"):
        check_function(lambda s: harness(cheat, s), lambda s: harness(lr_factor, s), cases)


def test_the_profile_hook_is_removed_afterwards():
    import sys

    before = sys.getprofile()
    with pytest.raises(CheckFailed):
        check_function(direct, lr_factor, CASES)
    check_function(honest, lr_factor, CASES)
    assert sys.getprofile() is before

"""Unit and bad-input tests of the conv-arithmetic widget (no browser; see test_browser_*).

The figure's size tables are checked for every configuration the controls can reach,
against cnnbook.arith and against the shapes PyTorch computes.
"""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest
import torch
import torch.nn.functional as F
from browser_utils import assert_self_contained, embedded_data, widget_script

from cnnbook.arith import conv_output_size, conv_transpose_output_size
from cnnbook.widgets import ConvArithmetic as ExportedConvArithmetic
from cnnbook.widgets._html import read_asset
from cnnbook.widgets.conv_arithmetic import (
    CODE_OFFSET,
    ORDER,
    RANGES,
    REASONS,
    ConvArithmetic,
    encode,
    table_index,
)


def configurations(mode: str):
    """Every configuration of ``mode``, in table order, as dicts."""
    names = ORDER[mode]
    values = [range(RANGES[n][0], RANGES[n][1] + 1) for n in names]
    for combo in itertools.product(*values):
        yield dict(zip(names, combo, strict=True))


def decode(table: str, index: int) -> tuple[int | None, int | None]:
    """(size, reason) stored at ``index`` of a size table."""
    code = ord(table[index]) - CODE_OFFSET
    return (code, None) if code >= 1 else (None, -code)


def torch_size(config: dict[str, int], transposed: bool, device: str) -> int | None:
    """Output size PyTorch gives a 1-channel W x W input (None if it refuses)."""
    W, k = config["input"], config["kernel"]
    x = torch.zeros(1, 1, W, W, device=device)
    w = torch.zeros(1, 1, k, k, device=device)
    kwargs = {"stride": config["stride"], "padding": config["padding"]}
    kwargs["dilation"] = config["dilation"]
    try:
        if transposed:
            out = F.conv_transpose2d(x, w, output_padding=config["output_padding"], **kwargs)
        else:
            out = F.conv2d(x, w, **kwargs)
    except RuntimeError:
        return None
    assert out.shape[-1] == out.shape[-2]
    return int(out.shape[-1])


@pytest.fixture(scope="module")
def data() -> dict:
    return embedded_data(ConvArithmetic().to_html())


# ----------------------------------------------------------------------------- the tables


def test_tables_cover_every_configuration(data):
    assert len(data["sizes"]["conv"]) == 12 * 7 * 4 * 5 * 3 == 5040
    assert len(data["sizes"]["transposed"]) == 5040 * 4
    assert data["ranges"] == {name: list(r) for name, r in RANGES.items()}
    for mode in ("conv", "transposed"):
        for i, config in enumerate(configurations(mode)):
            assert table_index(config, mode) == i


def test_tables_equal_cnnbook_arith(data):
    for mode in ("conv", "transposed"):
        for i, c in enumerate(configurations(mode)):
            size, reason = decode(data["sizes"][mode], i)
            W, k, s, p, d = (c[n] for n in ORDER["conv"])
            try:
                if mode == "conv":
                    expected = conv_output_size(W, k, stride=s, padding=p, dilation=d)
                else:
                    op = c["output_padding"]
                    expected = conv_transpose_output_size(W, k, s, p, op, d)
            except ValueError:
                expected = None
            assert size == expected, f"{mode} {c}: table {size}, arith {expected}"
            assert (reason is None) == (size is not None)


def test_conv_table_equals_torch_shapes_everywhere(data):
    # the meta device computes shapes (and refuses a too-large kernel) without any work
    for i, config in enumerate(configurations("conv")):
        size, reason = decode(data["sizes"]["conv"], i)
        assert size == torch_size(config, False, "meta"), config
        if size is None:
            eff = config["dilation"] * (config["kernel"] - 1) + 1
            assert reason == 1 and eff > config["input"] + 2 * config["padding"], config


def test_transposed_table_equals_torch_shapes_everywhere(data, one_thread):
    # The meta device checks every rule but output_padding < max(stride, dilation); that
    # one is checked on real (CPU) tensors for a sample of both sides of the rule.
    refused, allowed = [], []
    for i, config in enumerate(configurations("transposed")):
        size, reason = decode(data["sizes"]["transposed"], i)
        op_ok = config["output_padding"] < max(config["stride"], config["dilation"])
        assert (reason == 2) == (not op_ok), config
        if not op_ok:
            refused.append(config)
            continue
        assert size == torch_size(config, True, "meta"), config
        if size is None:
            assert reason == 3, config
        if config["output_padding"] > 0:
            allowed.append(config)
    rng = random.Random(0)
    for config in rng.sample(refused, 150):
        assert torch_size(config, True, "cpu") is None, config
    for config in rng.sample(allowed, 150):
        size, _ = decode(data["sizes"]["transposed"], table_index(config, "transposed"))
        assert torch_size(config, True, "cpu") == size, config


def test_reasons_fill_in_and_read_as_sentences():
    widget = ConvArithmetic()
    assert widget.invalid_reason() is None
    assert widget.invalid_reason(input=2, kernel=5, padding=1) == REASONS[1]
    assert "{eff}" in REASONS[1] and "{padded}" in REASONS[1]
    assert widget.invalid_reason(transposed=True, output_padding=1) == REASONS[2]
    assert widget.invalid_reason(transposed=True, input=1, kernel=1, padding=1) == REASONS[3]
    assert widget.output_size(transposed=True, output_padding=1, stride=2) == 4 * 2 + 2 + 1 + 1


def test_output_size_lookups_match_the_chapter_examples():
    widget = ConvArithmetic()
    assert widget.output_size() == 3
    assert widget.output_size(input=7, stride=2, padding=1) == 4
    assert widget.output_size(dilation=2) == 1
    assert widget.output_size(dilation=3) is None
    t = ConvArithmetic(3, 3, stride=2, padding=1, transposed=True, output_padding=1)
    assert (t.output_size(), t.output_size(output_padding=0)) == (6, 5)
    assert t.output_size(transposed=False) == 2


def test_encode_round_trips_and_refuses_what_does_not_fit():
    for size in (1, 9, 44, 66, 78):
        assert ord(encode(size=size)) - CODE_OFFSET == size
    for reason in REASONS:
        assert ord(encode(reason=reason)) - CODE_OFFSET == -reason
    assert encode(size=3) == "3"
    with pytest.raises(ValueError, match="exactly one"):
        encode()
    with pytest.raises(ValueError, match="exactly one"):
        encode(size=3, reason=1)
    with pytest.raises(ValueError, match="printable"):
        encode(size=79)
    with pytest.raises(ValueError, match="printable"):
        encode(size=0)


# ----------------------------------------------------------------------------- the HTML


def test_html_is_self_contained_and_carries_the_data():
    html = ConvArithmetic(7, 3, 2, 1, 2, title="A <b>title</b> & more").to_html()
    data = assert_self_contained(html, "conv-arithmetic", "mountConvArithmetic")
    assert "<b>" not in html
    assert data["title"] == "A <b>title</b> & more"
    assert data["initial"] == {
        "input": 7,
        "kernel": 3,
        "stride": 2,
        "padding": 1,
        "dilation": 2,
        "output_padding": 0,
        "transposed": False,
    }
    assert data["code_offset"] == CODE_OFFSET
    assert data["reasons"] == {str(k): v for k, v in REASONS.items()}
    assert len(json.dumps(data)) < 40_000, "the tables should stay compact"


def test_contract_hooks_are_in_the_script():
    # the script the figure runs: base.js (shared helpers) and conv_arithmetic.js
    js = widget_script(ConvArithmetic().to_html())
    assert read_asset("conv_arithmetic.js") in js
    for hook in (
        '"data-control"',
        '"data-action"',
        '"output-size"',
        '"formula"',
        '"error"',
        '"input-grid"',
        '"output-grid"',
        '"data-output-size"',
        '"data-valid"',
        '"aria-live"',
    ):
        assert hook in js, f"conv_arithmetic.js should use {hook}"
    for control in ("input", "kernel", "stride", "padding", "dilation"):
        assert f'["{control}"' in js
    assert '"transposed"' in js and '"output_padding"' in js


def test_exported_from_the_package_and_repr():
    assert ExportedConvArithmetic is ConvArithmetic
    text = repr(ConvArithmetic(3, 3, 2, 1, transposed=True, output_padding=1))
    assert text == (
        "ConvArithmetic(input_size=3, kernel_size=3, stride=2, padding=1, dilation=1, "
        "transposed=True, output_padding=1)"
    )
    a, b = ConvArithmetic(), ConvArithmetic()
    assert (
        re.search(r' id="([^"]+)"', a.to_html())[1] != re.search(r' id="([^"]+)"', b.to_html())[1]
    )


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"input_size": 0}, ValueError, "input_size"),
        ({"input_size": 13}, ValueError, "input_size"),
        ({"input_size": 5.0}, TypeError, "input_size"),
        ({"kernel_size": 0}, ValueError, "kernel_size"),
        ({"kernel_size": 8}, ValueError, "kernel_size"),
        ({"stride": 0}, ValueError, "stride"),
        ({"stride": 5}, ValueError, "stride"),
        ({"stride": True}, TypeError, "stride"),
        ({"padding": -1}, ValueError, "padding"),
        ({"padding": 5}, ValueError, "padding"),
        ({"dilation": 0}, ValueError, "dilation"),
        ({"dilation": 4}, ValueError, "dilation"),
        ({"transposed": 1}, TypeError, "transposed"),
        ({"output_padding": 1}, ValueError, "output_padding"),
        ({"output_padding": 4, "transposed": True}, ValueError, "output_padding"),
        ({"output_padding": "1", "transposed": True}, TypeError, "output_padding"),
        ({"title": 3}, TypeError, "title"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        ConvArithmetic(**kwargs)


def test_an_initial_configuration_without_output_is_allowed():
    widget = ConvArithmetic(input_size=2, kernel_size=5)
    assert widget.output_size() is None
    assert widget.invalid_reason() == REASONS[1]


@pytest.mark.parametrize(
    ("overrides", "error", "name"),
    [
        ({"bogus": 1}, ValueError, "bogus"),
        ({"stride": 9}, ValueError, "stride"),
        ({"input": 0}, ValueError, "input"),
        ({"kernel": 2.0}, TypeError, "kernel"),
        ({"transposed": "yes"}, TypeError, "transposed"),
    ],
)
def test_lookups_reject_bad_overrides(overrides, error, name):
    with pytest.raises(error, match=name):
        ConvArithmetic().output_size(**overrides)

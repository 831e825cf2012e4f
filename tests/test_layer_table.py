"""Tests of cnnbook.layer_table: the markdown table and the stage summary of reports."""

from __future__ import annotations

from functools import partial

import pytest

from cnnbook.arith import Conv, Pool, analyze
from cnnbook.layer_table import LayerReport, format_table, stage_summary


def test_format_table_and_stage_summary_of_specs():
    reports = analyze([Conv(32, 3, padding=1), Pool(2), Conv(64, 3, padding=1)], (3, 32, 32))
    assert all(isinstance(r, LayerReport) for r in reports)
    assert [r.name for r in reports] == ["conv1", "pool1", "conv2"]
    table = format_table(reports)
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "layer" and len(lines) == 2 + 3 + 1
    assert "18,496" in lines[4] and "19,392" in lines[5]  # conv2 params, total
    stages = stage_summary(reports)
    assert [(r.name, r.rf) for r in stages] == [("conv1", 3), ("conv2", 8)]
    assert "total" not in format_table(stages, totals=False)


BAD_CALLS = {
    "table-type": (format_table, ([1],), TypeError, r"reports\[0\]"),
    "table-totals": (partial(format_table, totals="yes"), ([],), TypeError, "totals"),
    "summary-type": (stage_summary, ("x",), TypeError, "reports"),
}


@pytest.mark.parametrize("case", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_rejects_bad_arguments(case):
    func, args, error, message = case
    with pytest.raises(error, match=message):
        func(*args)

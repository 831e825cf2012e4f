"""Per-layer reports of ``arith.analyze`` and ``module_analysis.analyze_module``, and
their tables.

A report row holds a layer's output shape, parameters, per-sample FLOPs and receptive
field (``rf``, ``jump``, ``start``, in input pixels; see ``cnnbook.arith``).
``stage_summary`` keeps the row with the largest field at each resolution, and
``format_table`` prints rows as a markdown table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from cnnbook._checks import check_bool

if TYPE_CHECKING:
    from cnnbook.arith import _Axis

__all__ = ["LayerReport", "ModuleReport", "format_table", "stage_summary"]

# one number when height and width agree, else a (height, width) pair; None where the
# receptive-field recurrence does not describe the layer (see analyze_module)
RFValue = int | float | tuple[int | float, int | float] | None


def _plain(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


def _collapse(h: int | float, w: int | float) -> int | float | tuple[int | float, int | float]:
    return h if h == w else (h, w)


def _public(axes: tuple[_Axis, _Axis] | None) -> tuple[RFValue, RFValue, RFValue]:
    """(rf, jump, start) as reported, from the exact fields of ``arith``: ints where exact,
    start as float, None if unknown."""
    if axes is None:
        return None, None, None
    h, w = axes
    return (
        _collapse(_plain(h.rf), _plain(w.rf)),
        _collapse(_plain(h.jump), _plain(w.jump)),
        _collapse(float(h.start), float(w.start)),
    )


@dataclass(frozen=True)
class _Report:
    """The columns both reports share: name, kind, output shape, parameters, FLOPs, field."""

    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    flops: int
    rf: RFValue
    jump: RFValue
    start: RFValue


@dataclass(frozen=True)
class LayerReport(_Report):
    """What ``analyze`` knows after one layer: ``out_shape = (C, H, W)``, per-sample FLOPs,
    and the receptive field (``rf``, ``jump``, ``start``, in input pixels)."""

    @property
    def spatial(self) -> tuple[int, int]:
        """(H, W) of the output."""
        return self.out_shape[1], self.out_shape[2]


@dataclass(frozen=True)
class ModuleReport(_Report):
    """What ``analyze_module`` knows after one module call or one merge of branches.

    name: module path (``layer1.0.conv1``; ``#2`` for a module's second call) or the traced
    node (``add_3``); kind: module class or function name; out_shape: without the batch
    axis; params: parameters first used here; flops: per sample (conv, linear); rf, jump,
    start: receptive field (None where undefined); spatial: (H, W) of the output, or None.
    """

    spatial: tuple[int, int] | None


def _check_reports(reports: object) -> list:
    if not isinstance(reports, (list, tuple)):
        raise TypeError(f"reports must be a list of reports, got {type(reports).__name__}")
    for i, r in enumerate(reports):
        if not isinstance(r, (LayerReport, ModuleReport)):
            raise TypeError(
                f"reports[{i}] must be a LayerReport or ModuleReport, got {type(r).__name__}"
            )
    return list(reports)


def _rf_size(rf: RFValue) -> float:
    return max(rf) if isinstance(rf, tuple) else rf


def stage_summary(reports: Sequence[LayerReport | ModuleReport]) -> list:
    """The report with the largest receptive field at each spatial resolution.

    One report per distinct (H, W), in order of first appearance; the first of equal
    fields wins (a conv rather than the ReLU after it). Reports without a receptive field
    are skipped. For VGG-16 at 224 x 224 this is conv1_2 (5), conv2_2 (14), conv3_3 (40),
    conv4_3 (92), conv5_3 (196) and pool5 (212).
    """
    best: dict[tuple[int, int], LayerReport | ModuleReport] = {}
    for r in _check_reports(reports):
        if r.rf is None or r.spatial is None:
            continue
        if r.spatial not in best or _rf_size(r.rf) > _rf_size(best[r.spatial].rf):
            best[r.spatial] = r
    return list(best.values())


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "(" + ", ".join(_cell(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_table(reports: Sequence[LayerReport | ModuleReport], *, totals: bool = True) -> str:
    """A markdown table of reports, aligned so it also reads as plain text.

    The last row sums params and FLOPs; pass ``totals=False`` for a selection of rows,
    such as ``stage_summary(reports)``, whose sums would mean nothing.
    """
    reports = _check_reports(reports)
    totals = check_bool("totals", totals)
    header = ("layer", "kind", "output", "params", "FLOPs", "RF", "jump", "start")
    rows = [
        (
            r.name,
            r.kind,
            " x ".join(map(str, r.out_shape)),
            f"{r.params:,}",
            f"{r.flops:,}",
            _cell(r.rf),
            _cell(r.jump),
            _cell(r.start),
        )
        for r in reports
    ]
    if totals:
        sums = (f"{sum(r.params for r in reports):,}", f"{sum(r.flops for r in reports):,}")
        rows.append(("total", "", "", *sums, "", "", ""))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = [False, False, False, True, True, True, True, True]  # numbers align right

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if r else "-" * w for w, r in zip(widths, right, strict=True)]
    return "\n".join([line(header), line(rule), *(line(row) for row in rows)])

"""Live metrics read from a job's log: ``::metric`` lines and HiGHS's MIP progress rows.

A model reports a metric by printing one line (:func:`sandbox_kit.model_api.metric` does it)::

    ::metric gap=0.0036 nodes=12

Solvers already print their progress; the rows HiGHS writes while it solves a MIP (as with
``scipy.optimize.milp(..., options={"disp": True})``) are read as well, with no change to the
model::

            Nodes      |    B&B Tree     |            Objective Bounds              | ...
    Src  Proc. InQueue |  Leaves   Expl. | BestBound       BestSol              Gap | ...

     R       0       0         0   0.00%   1066188.818499  1095290.2          2.66% ...

Each such line becomes points named ``mip_nodes``, ``mip_dual_bound``, ``mip_primal_bound``,
``mip_gap`` (a fraction: 2.66% is 0.0266) and ``mip_time_s``.

This module is stdlib-only, like :mod:`sandbox_kit.logs`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox_kit.records import LogLine

METRIC_PREFIX = "::metric"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# A plain decimal number; "nan", "inf", "1_000" and hex are not metric values.
_VALUE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")

# HiGHS prints counts past 999999 as thousands ("1234k") or millions ("12m").
_COUNT = r"\d+[km]?"
_BOUND = r"[-+]?(?:inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
# One progress row of HiGHS's MIP log (HighsMipSolverData::printDisplayLine): an optional
# one-letter solution source, nodes processed, nodes queued, leaves, % explored, dual and
# primal bound (the primal marked "*" when capped by objective_bound), gap ("2.66%", "Large"
# past 9999%, "inf" with no solution yet), cuts, rows in the LP, conflicts, LP iterations and,
# unless timeless_log is on, the time. Anchored at both ends so that prose, the header, the
# presolve lines ("1784 rows, 855 cols, ... 0s") and the summary never match.
_HIGHS_ROW = re.compile(
    rf"""
    \s* (?:[A-Za-z]\s+)?
    (?P<nodes>{_COUNT}) \s+ {_COUNT} \s+ {_COUNT} \s+ \d+\.\d+% \s+
    (?P<dual>{_BOUND}) \s+ (?P<primal>{_BOUND})\*? \s+
    (?P<gap>{_BOUND}%|Large|inf) \s+
    \d+ \s+ \d+ \s+ \d+ \s+ {_COUNT}
    (?:\s+ (?P<time>\d+(?:\.\d+)?)s)?
    \s*
    """,
    re.VERBOSE,
)
_SCALE = {"k": 1e3, "m": 1e6}


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of one metric, taken from one log line.

    Attributes:
        seq: the log line's ``seq`` (several points may share one line).
        ts: the line's arrival time (UTC).
        name: the metric's name, e.g. ``"mip_gap"``.
        value: a finite number.
    """

    seq: int
    ts: datetime
    name: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        """The point as plain JSON-ready data."""
        return {"seq": self.seq, "ts": self.ts.isoformat(), "name": self.name, "value": self.value}


def parse_metric_line(text: str) -> dict[str, float]:
    """The ``name=value`` pairs of a ``::metric`` line; ``{}`` for any other line.

    Malformed pairs (no ``=``, a bad name, a value that is not a finite number) are skipped;
    the others on the line are kept. A name given twice keeps its last value.

    >>> parse_metric_line("::metric a=1 b=2.5e-3")
    {'a': 1.0, 'b': 0.0025}
    """
    if not text.startswith(METRIC_PREFIX):
        return {}
    rest = text[len(METRIC_PREFIX) :]
    if rest and not rest[0].isspace():
        return {}  # "::metrics ..." is some other line
    values: dict[str, float] = {}
    for pair in rest.split():
        name, sep, raw = pair.partition("=")
        if not sep or _NAME.fullmatch(name) is None or _VALUE.fullmatch(raw) is None:
            continue
        number = float(raw)
        if math.isfinite(number):  # "1e999" overflows to inf
            values[name] = number
    return values


def parse_highs_row(text: str) -> dict[str, float]:
    """The values of a HiGHS MIP progress row; ``{}`` for any other line.

    Returns ``mip_nodes``, ``mip_dual_bound``, ``mip_primal_bound``, ``mip_gap`` (a fraction)
    and ``mip_time_s``; a bound that is still infinite, a gap shown as ``Large`` or ``inf``, and
    the time of a timeless log are left out.

    >>> row = " R  0  0  0   0.00%   1066188.818499  1095290.2   2.66%   0  0  0   419   0.1s"
    >>> parse_highs_row(row)["mip_gap"]
    0.0266
    """
    if "%" not in text:  # cheap reject: every row has the explored percentage
        return {}
    match = _HIGHS_ROW.fullmatch(text)
    if match is None:
        return {}
    nodes = match["nodes"]
    scale = _SCALE.get(nodes[-1])
    values = {"mip_nodes": float(nodes) if scale is None else float(nodes[:-1]) * scale}
    for key, group in (("mip_dual_bound", "dual"), ("mip_primal_bound", "primal")):
        bound = float(match[group])
        if math.isfinite(bound):
            values[key] = bound
    gap = match["gap"]
    if gap.endswith("%"):
        # Shift the exponent in the text: "2.66e-2" reads as 0.0266, 2.66 / 100 does not.
        fraction = float(f"{gap[:-1]}e-2")
        if math.isfinite(fraction):
            values["mip_gap"] = fraction
    if match["time"] is not None:
        values["mip_time_s"] = float(match["time"])
    return values


def metrics_from_lines(lines: Iterable[LogLine]) -> list[MetricPoint]:
    """Every metric point in ``lines``, in order: ``::metric`` lines and HiGHS progress rows."""
    points: list[MetricPoint] = []
    for line in lines:
        values = parse_metric_line(line.text) or parse_highs_row(line.text)
        points.extend(MetricPoint(line.seq, line.ts, k, v) for k, v in values.items())
    return points


def latest(points: Iterable[MetricPoint]) -> dict[str, float]:
    """The last value of each metric among ``points`` (taken in the order given)."""
    return {point.name: point.value for point in points}

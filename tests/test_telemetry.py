"""The results protocol and solver telemetry: model_api, the log parsers, Job.tables/files.

The HiGHS lines below are real: captured from ``models/examples/dmo.py`` and from a small
knapsack MIP stopped by its time limit, both solved by HiGHS 1.12.0 through
``scipy.optimize.milp(..., options={"disp": True})`` (trailing blanks stripped).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox_kit import JobStatus, LogLine, Sandbox, Settings, model_api, results
from sandbox_kit.results import summarize
from sandbox_kit.telemetry import (
    METRIC_PREFIX,
    MetricPoint,
    latest,
    metrics_from_lines,
    parse_highs_row,
    parse_metric_line,
)

# The HiGHS part of `python models/examples/dmo.py`, verbatim.
DMO_LOG = """\
Running HiGHS 1.12.0 (git hash: 4f96ee8): Copyright (c) 2025 HiGHS under MIT licence terms
MIP has 1968 rows; 960 cols; 6805 nonzeros; 720 integer variables (718 binary)
Coefficient ranges:
  Matrix  [1e+00, 4e+02]
  Cost    [2e+01, 9e+03]
  Bound   [1e+00, 4e+02]
  RHS     [1e+00, 2e+03]
Presolving model
1784 rows, 855 cols, 5725 nonzeros  0s
1499 rows, 732 cols, 5255 nonzeros  0s
1466 rows, 731 cols, 5110 nonzeros  0s
Presolve reductions: rows 1466(-502); columns 731(-229); nonzeros 5110(-1695)

Solving MIP model with:
   1466 rows
   731 cols (493 binary, 0 integer, 0 implied int., 238 continuous, 0 domain fixed)
   5110 nonzeros

Src: B => Branching; C => Central rounding; F => Feasibility pump; H => Heuristic;
     I => Shifting; J => Feasibility jump; L => Sub-MIP; P => Empty MIP; R => Randomized rounding;
     S => Solve LP; T => Evaluate node; U => Unbounded; X => User solution; Y => HiGHS solution;
     Z => ZI Round; l => Trivial lower; p => Trivial point; u => Trivial upper; z => Trivial zero

        Nodes      |    B&B Tree     |            Objective Bounds              |  Dynamic Constraints |       Work
Src  Proc. InQueue |  Leaves   Expl. | BestBound       BestSol              Gap |   Cuts   InLp Confl. | LpIters     Time

         0       0         0   0.00%   174074          inf                  inf        0      0      0         0     0.1s
 R       0       0         0   0.00%   1066188.818499  1095290.2          2.66%        0      0      0       419     0.1s
 C       0       0         0   0.00%   1078423.741056  1084354.1          0.55%     1632     56      4       760     0.3s
 L       0       0         0   0.00%   1078867.5       1078867.5          0.00%     2455     88      4       835     1.0s
         1       0         1 100.00%   1078867.5       1078867.5          0.00%     2455     88      4      2070     1.0s

Solving report
  Status            Optimal
  Primal bound      1078867.5
  Dual bound        1078867.5
  Gap               0% (tolerance: 0.0001%)
  P-D integral      0.00686232485391
  Solution status   feasible
                    1078867.5 (objective)
                    0 (bound viol.)
                    9.72555369572e-14 (int. viol.)
                    0 (row viol.)
  Timing            1.03
  Max sub-MIP depth 4
  Nodes             1
  Repair LPs        0
  LP iterations     2070
                    0 (strong br.)
                    416 (separation)
                    1235 (heuristics)
"""  # noqa: E501

# A 60-item, 8-constraint 0/1 knapsack (maximisation, so negative bounds) with a 3 s limit.
KNAPSACK_LOG = """\
Running HiGHS 1.12.0 (git hash: 4f96ee8): Copyright (c) 2025 HiGHS under MIT licence terms
MIP has 8 rows; 60 cols; 480 nonzeros; 60 integer variables (60 binary)
Coefficient ranges:
  Matrix  [1e+01, 1e+02]
  Cost    [3e+02, 6e+02]
  Bound   [1e+00, 1e+00]
  RHS     [1e+03, 1e+03]
Presolving model
8 rows, 60 cols, 480 nonzeros  0s
8 rows, 60 cols, 480 nonzeros  0s
Presolve reductions: rows 8(-0); columns 60(-0); nonzeros 480(-0) - Not reduced
Objective function is integral with scale 1

Solving MIP model with:
   8 rows
   60 cols (60 binary, 0 integer, 0 implied int., 0 continuous, 0 domain fixed)
   480 nonzeros

Src: B => Branching; C => Central rounding; F => Feasibility pump; H => Heuristic;
     I => Shifting; J => Feasibility jump; L => Sub-MIP; P => Empty MIP; R => Randomized rounding;
     S => Solve LP; T => Evaluate node; U => Unbounded; X => User solution; Y => HiGHS solution;
     Z => ZI Round; l => Trivial lower; p => Trivial point; u => Trivial upper; z => Trivial zero

        Nodes      |    B&B Tree     |            Objective Bounds              |  Dynamic Constraints |       Work
Src  Proc. InQueue |  Leaves   Expl. | BestBound       BestSol              Gap |   Cuts   InLp Confl. | LpIters     Time

 z       0       0         0   0.00%   -inf            0                  Large        0      0      0         0     0.0s
 J       0       0         0   0.00%   -inf            -635               Large        0      0      0         0     0.0s
 S       0       0         0   0.00%   -26803          -8425            218.14%        0      0      0         0     0.0s
 R       0       0         0   0.00%   -11014.930645   -8901             23.75%        0      0      0        20     0.0s
 S       0       0         0   0.00%   -11014.930645   -8922             23.46%       32      1      0        20     0.0s
 S       0       0         0   0.00%   -11013.531862   -9013             22.20%       83      3      0        25     0.0s
 S       0       0         0   0.00%   -11012.378461   -9362             17.63%      138      5      0        32     0.0s
 C       0       0         0   0.00%   -11011.9269     -9382             17.37%      138      5      0        39     0.0s
 L       0       0         0   0.00%   -11010.322106   -10825             1.71%      458     14      0        68     0.2s
 L     164      48        50   0.00%   -11009.261938   -10858             1.39%      753     13   1259      5003     1.0s
 L     509     158       160   0.00%   -11009.261938   -10861             1.37%     1327     12   2865     10157     2.2s
       647     210       202   0.00%   -11008.996741   -10861             1.36%     1361     12   3300     12816     3.0s

Solving report
  Status            Time limit reached
  Primal bound      -10861
  Dual bound        -11008
  Gap               1.35% (tolerance: 0.01%)
  P-D integral      0.105811786202
  Solution status   feasible
                    -10861 (objective)
                    0 (bound viol.)
                    0 (int. viol.)
                    0 (row viol.)
  Timing            3.00
  Max sub-MIP depth 5
  Nodes             647
  Repair LPs        0
  LP iterations     12816
                    3314 (strong br.)
                    226 (separation)
                    6238 (heuristics)
"""  # noqa: E501

HIGHS_ROWS: list[tuple[str, dict[str, float]]] = [
    # No solution yet: BestSol and Gap are "inf".
    (
        "         0       0         0   0.00%   174074          inf                  inf        0      0      0         0     0.1s",  # noqa: E501
        {"mip_nodes": 0, "mip_dual_bound": 174074, "mip_time_s": 0.1},
    ),
    (
        " R       0       0         0   0.00%   1066188.818499  1095290.2          2.66%        0      0      0       419     0.1s",  # noqa: E501
        {
            "mip_nodes": 0,
            "mip_dual_bound": 1066188.818499,
            "mip_primal_bound": 1095290.2,
            "mip_gap": 0.0266,
            "mip_time_s": 0.1,
        },
    ),
    (
        "         1       0         1 100.00%   1078867.5       1078867.5          0.00%     2455     88      4      2070     1.0s",  # noqa: E501
        {
            "mip_nodes": 1,
            "mip_dual_bound": 1078867.5,
            "mip_primal_bound": 1078867.5,
            "mip_gap": 0.0,
            "mip_time_s": 1.0,
        },
    ),
    # A solution but no dual bound yet: "-inf" and a "Large" gap.
    (
        " J       0       0         0   0.00%   -inf            -635               Large        0      0      0         0     0.0s",  # noqa: E501
        {"mip_nodes": 0, "mip_primal_bound": -635, "mip_time_s": 0.0},
    ),
    (
        " S       0       0         0   0.00%   -26803          -8425            218.14%        0      0      0         0     0.0s",  # noqa: E501
        {
            "mip_nodes": 0,
            "mip_dual_bound": -26803,
            "mip_primal_bound": -8425,
            "mip_gap": 2.1814,
            "mip_time_s": 0.0,
        },
    ),
    (
        " L     509     158       160   0.00%   -11009.261938   -10861             1.37%     1327     12   2865     10157     2.2s",  # noqa: E501
        {
            "mip_nodes": 509,
            "mip_dual_bound": -11009.261938,
            "mip_primal_bound": -10861,
            "mip_gap": 0.0137,
            "mip_time_s": 2.2,
        },
    ),
    # Not captured, but exactly as HiGHS's printf format writes them: counts past 999999 in
    # thousands, a primal bound capped by objective_bound ("*"), a timeless log (no Time
    # column), and the trailing blanks a terminal copy may keep.
    (
        "      1234k    567k      890k  42.50%   -1.5e+20        3.25*              12.00%     17     40    300    98765k   3600.0s",  # noqa: E501
        {
            "mip_nodes": 1234000,
            "mip_dual_bound": -1.5e20,
            "mip_primal_bound": 3.25,
            "mip_gap": 0.12,
            "mip_time_s": 3600.0,
        },
    ),
    (
        " T      12       3         4  50.00%   10              11                 9.09%        5      6      7       800",  # noqa: E501
        {"mip_nodes": 12, "mip_dual_bound": 10, "mip_primal_bound": 11, "mip_gap": 0.0909},
    ),
    (
        "        2m       0         0 100.00%   7               7                  0.00%        0      0      0        3m   12.5s   ",  # noqa: E501
        {
            "mip_nodes": 2_000_000,
            "mip_dual_bound": 7,
            "mip_primal_bound": 7,
            "mip_gap": 0.0,
            "mip_time_s": 12.5,
        },
    ),
]

NOT_ROWS = [
    "",
    "        Nodes      |    B&B Tree     |            Objective Bounds              |  Dynamic Constraints |       Work",  # noqa: E501
    "Src  Proc. InQueue |  Leaves   Expl. | BestBound       BestSol              Gap |   Cuts   InLp Confl. | LpIters     Time",  # noqa: E501
    "Src: B => Branching; C => Central rounding; F => Feasibility pump; H => Heuristic;",
    "1784 rows, 855 cols, 5725 nonzeros  0s",
    "Presolve reductions: rows 1466(-502); columns 731(-229); nonzeros 5110(-1695)",
    "   731 cols (493 binary, 0 integer, 0 implied int., 238 continuous, 0 domain fixed)",
    "  Gap               1.35% (tolerance: 0.01%)",
    "  Gap               0% (tolerance: 0.0001%)",
    "  Primal bound      -10861",
    "  P-D integral      0.00686232485391",
    "INFO: MILP optimal: cost $1,078,867.50, gap 0.00e+00, 1.04 s",
    "INFO: load + reserve is above 95% of capacity in hours [17, 18]",
    "::metric units=10 periods=24 peak_load=1749 capacity=2095",
    # A row with something after it, or a column missing, is not a row.
    " R       0       0         0   0.00%   1066188.8  1095290.2   2.66%    0    0    0   419   0.1s extra",  # noqa: E501
    " R       0       0         0   0.00%   1066188.8  1095290.2   2.66%    0    0    419   0.1s",
    " RR      0       0         0   0.00%   1066188.8  1095290.2   2.66%    0    0    0   419   0.1s",  # noqa: E501
    "  12 13 14 15",
]


# -- model_api: metric -----------------------------------------------------------------------


@pytest.fixture
def result_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "result"
    monkeypatch.setenv("SANDBOX_RESULT_DIR", str(folder))
    return folder


@pytest.mark.parametrize(
    ("args", "kwargs", "line"),
    [
        (("gap", 0.5), {}, "::metric gap=0.5"),
        (("mip.gap", 0.0036), {}, "::metric mip.gap=0.0036"),
        ((), {"nodes": 12, "bound": -1.5e-7}, "::metric nodes=12 bound=-1.5e-07"),
        (("a", 1), {"_b2": 2.25, "c": 1e300}, "::metric a=1 _b2=2.25 c=1e+300"),
        ((), {"x": 1 / 3}, "::metric x=0.3333333333333333"),
    ],
)
def test_metric_prints_one_flushed_line(
    capsys: pytest.CaptureFixture[str], args: tuple[Any, ...], kwargs: dict[str, Any], line: str
) -> None:
    model_api.metric(*args, **kwargs)
    out = capsys.readouterr().out
    assert out == line + "\n"
    # What the model prints is what the sandbox reads back, to the last bit.
    expected = dict(zip(args[::2], args[1::2], strict=True)) | kwargs
    assert parse_metric_line(out.rstrip("\n")) == {k: float(v) for k, v in expected.items()}


def test_metric_accepts_numpy_scalars(capsys: pytest.CaptureFixture[str]) -> None:
    np = pytest.importorskip("numpy")
    model_api.metric(gap=np.float64(0.25), nodes=np.int64(3), small=np.float32(0.5))
    assert capsys.readouterr().out == "::metric gap=0.25 nodes=3 small=0.5\n"


@pytest.mark.parametrize("name", ["", "1gap", "gap-1", "a b", "a=b", "gäp", ".a", "::metric"])
def test_metric_rejects_bad_names(capsys: pytest.CaptureFixture[str], name: str) -> None:
    with pytest.raises(ValueError, match="bad metric name"):
        model_api.metric(name, 1.0)
    with pytest.raises(ValueError, match="bad metric name"):
        extra: dict[str, Any] = {name: 1.0}
        model_api.metric(ok=1.0, **extra)
    assert capsys.readouterr().out == ""  # nothing half-printed


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "1", True, None])
def test_metric_rejects_values_that_are_not_finite_numbers(
    capsys: pytest.CaptureFixture[str], value: Any
) -> None:
    with pytest.raises(ValueError):
        model_api.metric(gap=value)
    assert capsys.readouterr().out == ""


def test_metric_needs_a_pair() -> None:
    with pytest.raises(ValueError, match="at least one"):
        model_api.metric()
    with pytest.raises(ValueError, match="both a name and a value"):
        model_api.metric("gap")
    with pytest.raises(ValueError, match="both a name and a value"):
        model_api.metric(value=1.0)


# -- model_api: outcome ----------------------------------------------------------------------


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_outcome_writes_result_json(result_dir: Path) -> None:
    model_api.outcome("optimal", objective=1078867.5, message="done", metrics={"nodes": 1})
    data = read_json(result_dir / "result.json")
    assert data == {
        "outcome": "optimal",
        "objective": 1078867.5,
        "message": "done",
        "metrics": {"nodes": 1},
    }
    found = summarize(result_dir)
    assert (found.outcome, found.objective, found.metrics) == ("optimal", 1078867.5, {"nodes": 1.0})
    assert oct((result_dir / "result.json").stat().st_mode & 0o777) == oct(0o644)


def test_outcome_merges_with_what_is_there(result_dir: Path) -> None:
    result_dir.mkdir()
    (result_dir / "result.json").write_text(
        json.dumps({"tables": {"t": "t.csv"}, "extra": [1, 2], "metrics": {"a": 1, "b": 2}})
    )
    model_api.outcome("feasible", objective=5.0, metrics={"b": 3.5, "c": 4})
    model_api.outcome("optimal", message="proved")
    assert read_json(result_dir / "result.json") == {
        "tables": {"t": "t.csv"},
        "extra": [1, 2],
        "metrics": {"a": 1, "b": 3.5, "c": 4},
        "outcome": "optimal",
        "objective": 5.0,
        "message": "proved",
    }


def test_outcome_replaces_an_unreadable_result(result_dir: Path) -> None:
    result_dir.mkdir()
    (result_dir / "result.json").write_text("[1, 2")
    model_api.outcome("error", message="boom")
    assert read_json(result_dir / "result.json") == {"outcome": "error", "message": "boom"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outcome": "solved"},
        {"outcome": "Optimal"},
        {"outcome": "optimal", "objective": float("nan")},
        {"outcome": "optimal", "objective": "12"},
        {"outcome": "optimal", "metrics": {"gap": float("inf")}},
        {"outcome": "optimal", "metrics": {"gap": "small"}},
        {"outcome": "optimal", "metrics": {"": 1.0}},
        {"outcome": "optimal", "message": 3},
    ],
)
def test_outcome_rejects_bad_values_and_leaves_the_file(
    result_dir: Path, kwargs: dict[str, Any]
) -> None:
    model_api.outcome("feasible", objective=1.0)
    before = (result_dir / "result.json").read_bytes()
    with pytest.raises(ValueError):
        model_api.outcome(**kwargs)
    assert (result_dir / "result.json").read_bytes() == before


@pytest.mark.parametrize("outcome", model_api.OUTCOMES)
def test_every_protocol_outcome_is_accepted(result_dir: Path, outcome: str) -> None:
    model_api.outcome(outcome)
    assert read_json(result_dir / "result.json") == {"outcome": outcome}


def test_outcome_writes_atomically(result_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_api.outcome("feasible", objective=1.0)
    before = (result_dir / "result.json").read_bytes()
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renames.append((str(src), str(dst)))
        # The new content is complete before it takes the name.
        assert read_json(Path(src))["outcome"] == "optimal"
        assert (result_dir / "result.json").read_bytes() == before
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    model_api.outcome("optimal")
    [(src, dst)] = renames
    assert Path(src).parent == result_dir and Path(src).name.startswith(".result.json.")
    assert dst == str(result_dir / "result.json")
    assert sorted(p.name for p in result_dir.iterdir()) == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temp(
    result_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_api.outcome("feasible", objective=1.0)
    before = (result_dir / "result.json").read_bytes()

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        model_api.outcome("optimal", objective=2.0)
    assert (result_dir / "result.json").read_bytes() == before
    assert sorted(p.name for p in result_dir.iterdir()) == ["result.json"]


def test_result_dir_defaults_to_result_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBOX_RESULT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    model_api.outcome("infeasible", message="no")
    assert read_json(tmp_path / "result" / "result.json")["outcome"] == "infeasible"


# -- model_api: save_table -------------------------------------------------------------------


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_save_table_from_dicts(result_dir: Path) -> None:
    rows: list[dict[str, object]] = [
        {"hour": 0, "price": 31.5},
        {"hour": 1, "price": 2.0, "note": "peak, high"},
    ]
    assert model_api.save_table("prices", rows) == "prices.csv"
    assert read_csv(result_dir / "prices.csv") == [
        ["hour", "price", "note"],
        ["0", "31.5", ""],
        ["1", "2.0", "peak, high"],
    ]
    assert read_json(result_dir / "result.json") == {"tables": {"prices": "prices.csv"}}


def test_save_table_from_dicts_in_the_given_column_order(result_dir: Path) -> None:
    rows: list[dict[str, object]] = [{"a": 1, "b": None}, {"b": 2}]
    model_api.save_table("t", rows, columns=["b", "a", "c"])
    assert read_csv(result_dir / "t.csv") == [["b", "a", "c"], ["", "1", ""], ["2", "", ""]]
    with pytest.raises(ValueError, match="not in columns"):
        model_api.save_table("t", [{"a": 1, "z": 2}], columns=["a"])


def test_save_table_from_sequences(result_dir: Path) -> None:
    rows = [(0, 31.5), [1, 2.0]]
    name = model_api.save_table("prices", rows, columns=["hour", "price"], filename="p.csv")
    assert name == "p.csv"
    assert read_csv(result_dir / "p.csv") == [["hour", "price"], ["0", "31.5"], ["1", "2.0"]]
    assert read_json(result_dir / "result.json")["tables"] == {"prices": "p.csv"}


@pytest.mark.parametrize(
    ("rows", "columns", "match"),
    [
        ([(1, 2)], None, "need columns"),
        ([(1, 2, 3)], ["a", "b"], "3 values for 2 columns"),
        (["ab"], ["a", "b"], "all dicts or all sequences"),
        ([{"a": 1}, (1,)], ["a"], "all dicts or all sequences"),
    ],
)
def test_save_table_rejects_bad_rows(
    result_dir: Path, rows: list[Any], columns: list[str] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        model_api.save_table("t", rows, columns=columns)
    assert not (result_dir / "t.csv").exists()
    assert not (result_dir / "result.json").exists()


class FakeFrame:
    """Anything with to_csv, shaped like a pandas DataFrame (pandas itself is not needed)."""

    def __init__(self, index_names: list[str | None] | None) -> None:
        self.calls: list[dict[str, Any]] = []
        if index_names is not None:
            self.index = type("Index", (), {"names": index_names})()

    def to_csv(self, path_or_buf: str, index: bool = True) -> None:
        self.calls.append({"index": index})
        lines = ["x,y", "1,2"] if not index else ["i,x,y", "0,1,2"]
        Path(path_or_buf).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("index_names", "index", "header"),
    [(None, True, "i,x,y"), ([None], False, "x,y"), (["hour"], True, "i,x,y")],
)
def test_save_table_from_an_object_with_to_csv(
    result_dir: Path, index_names: list[str | None] | None, index: bool, header: str
) -> None:
    frame = FakeFrame(index_names)
    assert model_api.save_table("frame", frame) == "frame.csv"
    assert frame.calls == [{"index": index}]
    assert (result_dir / "frame.csv").read_text().splitlines()[0] == header
    assert read_json(result_dir / "result.json") == {"tables": {"frame": "frame.csv"}}
    assert sorted(p.name for p in result_dir.iterdir()) == ["frame.csv", "result.json"]


def test_save_table_from_a_pandas_dataframe(result_dir: Path) -> None:
    pd = pytest.importorskip("pandas")
    model_api.save_table("plain", pd.DataFrame({"hour": [0, 1], "price": [31.5, 2.0]}))
    assert read_csv(result_dir / "plain.csv") == [["hour", "price"], ["0", "31.5"], ["1", "2.0"]]
    named = pd.DataFrame({"price": [31.5]}, index=pd.Index([7], name="hour"))
    model_api.save_table("named", named)
    assert read_csv(result_dir / "named.csv") == [["hour", "price"], ["7", "31.5"]]


def test_save_table_into_a_subfolder(result_dir: Path) -> None:
    assert model_api.save_table("t", [{"a": 1}], filename="tables/t.csv") == "tables/t.csv"
    assert read_csv(result_dir / "tables" / "t.csv") == [["a"], ["1"]]


@pytest.mark.parametrize(
    "filename", ["", "../t.csv", "a/../../t.csv", "/tmp/t.csv", ".hidden.csv", "..\\t.csv"]
)
def test_save_table_refuses_paths_leaving_the_folder(result_dir: Path, filename: str) -> None:
    with pytest.raises(ValueError, match="bad table filename"):
        model_api.save_table("t", [{"a": 1}], filename=filename)


def test_save_table_refuses_bad_names(result_dir: Path) -> None:
    with pytest.raises(ValueError, match="bad table name"):
        model_api.save_table("../t", [{"a": 1}])


def test_tables_outcome_and_metrics_merge_in_any_order(result_dir: Path) -> None:
    model_api.outcome("optimal", objective=3.0, metrics={"a": 1})
    model_api.save_table("one", [{"a": 1}])
    model_api.save_table("two", [(1,)], columns=["b"])
    model_api.outcome("optimal", metrics={"b": 2})
    assert read_json(result_dir / "result.json") == {
        "outcome": "optimal",
        "objective": 3.0,
        "metrics": {"a": 1, "b": 2},
        "tables": {"one": "one.csv", "two": "two.csv"},
    }


# -- model_api: standalone ----------------------------------------------------------------------

STANDALONE = """\
import sys
import model_api

model_api.metric(gap=0.5, nodes=3)
model_api.save_table("t", [{"a": 1}])
model_api.outcome("optimal", objective=2.5)
foreign = sorted(
    m for m in sys.modules
    if m.split(".")[0] not in sys.stdlib_module_names and m not in ("__main__", "model_api")
)
print("foreign modules:", foreign)
"""


def _interpreters() -> list[str]:
    found = [sys.executable]
    other = "/usr/bin/python3"
    if os.path.exists(other) and os.path.realpath(other) != os.path.realpath(sys.executable):
        found.append(other)
    return found


@pytest.mark.parametrize("python", _interpreters())
def test_model_api_works_copied_next_to_a_model(tmp_path: Path, python: str) -> None:
    shutil.copy(model_api.__file__, tmp_path / "model_api.py")
    (tmp_path / "model.py").write_text(STANDALONE)
    # -S: no site-packages, so neither sandbox_kit nor any third-party package is importable.
    done = subprocess.run(
        [python, "-S", "-E", "-s", "model.py"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SANDBOX_RESULT_DIR": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["::metric gap=0.5 nodes=3", "foreign modules: []"]
    assert read_json(tmp_path / "out" / "result.json") == {
        "tables": {"t": "t.csv"},
        "outcome": "optimal",
        "objective": 2.5,
    }


def test_telemetry_and_model_api_import_only_the_stdlib() -> None:
    # Only what the imports add counts: site may have loaded helpers (e.g. _distutils_hack).
    code = (
        "import sys, json; before = set(sys.modules); "
        "import sandbox_kit.telemetry, sandbox_kit.model_api; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "sandbox_kit" in loaded
    assert loaded - set(sys.stdlib_module_names) - {"sandbox_kit"} == set()


# -- telemetry: ::metric lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("::metric a=1 b=2.5e-3", {"a": 1.0, "b": 0.0025}),
        ("::metric gap=0.5", {"gap": 0.5}),
        ("::metric mip.gap=-.5 x_1=+3. y=1E2", {"mip.gap": -0.5, "x_1": 3.0, "y": 100.0}),
        ("::metric\ta=1\t b=2  ", {"a": 1.0, "b": 2.0}),
        ("::metric a=1 a=2", {"a": 2.0}),
        # Malformed pairs are skipped; the good ones on the line are kept.
        (
            "::metric a=1 b c= =3 d=x 1e=2 f=1=2 g=nan h=inf i=1e999 j=0x10 k=1_0 l=2",
            {
                "a": 1.0,
                "l": 2.0,
            },
        ),
        ("::metric", {}),
        ("::metric ", {}),
        ("::metrics a=1", {}),
        ("::metric_a=1", {}),
        (" ::metric a=1", {}),
        ("INFO: ::metric a=1", {}),
        ("metric a=1", {}),
        ("a=1 b=2", {}),
        ("", {}),
    ],
)
def test_parse_metric_line(text: str, values: dict[str, float]) -> None:
    assert parse_metric_line(text) == values


def test_model_api_copies_of_the_protocol_constants_agree() -> None:
    # model_api may not import them (it must run standalone), so they are kept in step here.
    assert METRIC_PREFIX == model_api.METRIC_PREFIX == "::metric"
    assert model_api.OUTCOMES == results.OUTCOMES
    assert model_api.RESULT_FILE == results.RESULT_FILE


# -- telemetry: HiGHS rows -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "values"), HIGHS_ROWS, ids=[f"row{i}" for i in range(9)])
def test_parse_highs_row(text: str, values: dict[str, float]) -> None:
    got = parse_highs_row(text)
    assert got == pytest.approx(values, rel=1e-12)
    assert set(got) == set(values)


@pytest.mark.parametrize("text", NOT_ROWS)
def test_parse_highs_row_ignores_other_lines(text: str) -> None:
    assert parse_highs_row(text) == {}


@pytest.mark.parametrize(("log", "rows"), [(DMO_LOG, 5), (KNAPSACK_LOG, 12)])
def test_in_a_whole_highs_log_only_the_progress_rows_match(log: str, rows: int) -> None:
    lines = log.splitlines()
    matched = [line for line in lines if parse_highs_row(line)]
    assert len(matched) == rows
    # They are exactly the lines after the column header, up to the blank line.
    start = next(i for i, line in enumerate(lines) if line.startswith("Src  Proc.")) + 2
    assert matched == lines[start : start + rows]
    assert lines[start + rows] == ""
    assert all(parse_highs_row(line)["mip_gap"] < 0.03 for line in matched[-3:])


# -- telemetry: points -----------------------------------------------------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def log_line(seq: int, text: str, stream: str = "stdout") -> LogLine:
    return LogLine(seq, T0 + timedelta(seconds=seq), stream, "INFO", text)


def test_metrics_from_lines_combines_both_sources_in_order() -> None:
    lines = [
        log_line(1, "INFO: starting"),
        log_line(2, "::metric units=10 peak_load=1749"),
        log_line(3, HIGHS_ROWS[1][0]),
        log_line(4, "::metric gap=0.5 bad=x", stream="stderr"),
        log_line(5, HIGHS_ROWS[2][0]),
    ]
    points = metrics_from_lines(lines)
    assert [(p.seq, p.name) for p in points] == [
        (2, "units"),
        (2, "peak_load"),
        (3, "mip_nodes"),
        (3, "mip_dual_bound"),
        (3, "mip_primal_bound"),
        (3, "mip_gap"),
        (3, "mip_time_s"),
        (4, "gap"),
        (5, "mip_nodes"),
        (5, "mip_dual_bound"),
        (5, "mip_primal_bound"),
        (5, "mip_gap"),
        (5, "mip_time_s"),
    ]
    assert all(p.ts == T0 + timedelta(seconds=p.seq) for p in points)
    assert latest(points) == {
        "units": 10.0,
        "peak_load": 1749.0,
        "mip_nodes": 1.0,
        "mip_dual_bound": 1078867.5,
        "mip_primal_bound": 1078867.5,
        "mip_gap": 0.0,
        "mip_time_s": 1.0,
        "gap": 0.5,
    }
    assert metrics_from_lines([]) == [] and latest([]) == {}


def test_metric_point_is_a_frozen_slotted_value() -> None:
    point = MetricPoint(3, T0, "gap", 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.value = 1.0  # type: ignore[misc]
    assert not hasattr(point, "__dict__")
    assert point == MetricPoint(3, T0, "gap", 0.5)
    assert point.to_dict() == {"seq": 3, "ts": T0.isoformat(), "name": "gap", "value": 0.5}


# -- Job.tables / files / metric_points ----------------------------------------------------

TABLES_MODEL = """\
import json, os
from pathlib import Path

res = Path(os.environ["SANDBOX_RESULT_DIR"])
job = Path(os.environ["SANDBOX_JOB_DIR"])
(res / "ok.csv").write_text("a\\n1\\n")
(res / "sub").mkdir()
(res / "sub" / "t.csv").write_text("b\\n2\\n")
(job / "outside.csv").write_text("not a result\\n")
os.symlink(job / "outside.csv", res / "link_out.csv")
os.symlink("ok.csv", res / "link_in.csv")
(job / "elsewhere").mkdir()
(job / "elsewhere" / "t.csv").write_text("c\\n3\\n")
os.symlink(job / "elsewhere", res / "elsewhere")
os.symlink("loop", res / "loop")
tables = {
    "ok": "ok.csv",
    "sub": "sub/t.csv",
    "link_in": "link_in.csv",
    "up": "../outside.csv",
    "abs": str(job / "outside.csv"),
    "inside_but_dotdot": "sub/../ok.csv",
    "link_out": "link_out.csv",
    "through_dir_link": "elsewhere/t.csv",
    "loop": "loop",
    "missing": "nope.csv",
    "a_folder": "sub",
    "empty": "",
    "not_a_string": 5,
}
(res / "result.json").write_text(json.dumps({"outcome": "optimal", "tables": tables}))
print("::metric gap=0.5")
"""


def test_job_tables_and_files_stay_inside_the_result_folder(lite: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "tables_model.py"
    path.write_text(TABLES_MODEL)
    model = lite.upload(path, "DMO")
    job = lite.run(model.id)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.SUCCESS, [line.text for line in job.logs()]
    root = Path(info.result_dir).resolve()
    assert job.tables() == {
        "ok": root / "ok.csv",
        "sub": root / "sub" / "t.csv",
        "link_in": root / "ok.csv",
    }
    assert job.files() == [
        Path(info.result_dir) / "ok.csv",
        Path(info.result_dir) / "result.json",
        Path(info.result_dir) / "sub" / "t.csv",
    ]
    assert [(p.name, p.value) for p in job.metric_points()] == [("gap", 0.5)]


def test_job_tables_and_files_of_a_job_without_results(lite: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "quiet.py"
    path.write_text("print('nothing to report')\n")
    job = lite.run(lite.upload(path, "DMO").id)
    job.wait(timeout=60)
    assert job.result() is None
    assert job.tables() == {} and job.files() == [] and job.metric_points() == []


MODEL_API_MODEL = """\
from sandbox_kit.model_api import metric, outcome, save_table

for gap in (0.5, 0.25, 0.0):
    metric(gap=gap)
metric("mip.nodes", 7)
save_table("prices", [{"hour": 0, "price": 31.5}])
outcome("optimal", objective=42.5, metrics={"solve_time_s": 0.01})
"""


def test_a_model_using_model_api_is_recorded(lite: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "api_model.py"
    path.write_text(MODEL_API_MODEL)
    job = lite.run(lite.upload(path, "DMO").id)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.SUCCESS, [line.text for line in job.logs()]
    assert (info.outcome, info.objective, info.metrics) == ("optimal", 42.5, {"solve_time_s": 0.01})
    assert job.tables() == {"prices": Path(info.result_dir).resolve() / "prices.csv"}
    points = job.metric_points()
    assert [(p.name, p.value) for p in points] == [
        ("gap", 0.5),
        ("gap", 0.25),
        ("gap", 0.0),
        ("mip.nodes", 7.0),
    ]
    assert job.metric_points(since=points[1].seq) == points[2:]
    assert latest(points) == {"gap": 0.0, "mip.nodes": 7.0}


FOREIGN_MODEL = """\
import json, os, sys, time

for gap, nodes in ((0.5, 1), (0.5, 2), (0.125, 9)):
    print(f"::metric gap={gap} nodes={nodes}", flush=True)
    time.sleep(0.01)
print("::metric version=%d.%d" % sys.version_info[:2], flush=True)
with open(os.path.join(os.environ["SANDBOX_RESULT_DIR"], "result.json"), "w") as fh:
    json.dump({"outcome": "feasible", "objective": 3.5}, fh)
"""


def test_a_foreign_interpreter_model_reports_metrics_with_the_line_format(
    home: Path, settings: Settings, tmp_path: Path
) -> None:
    other = "/usr/bin/python3"
    if not os.path.exists(other):
        pytest.skip(f"{other} does not exist")
    if os.path.realpath(other) == os.path.realpath(sys.executable):
        pytest.skip(f"{other} is the interpreter running the tests, not a foreign one")
    version = subprocess.run(
        [other, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    foreign = dataclasses.replace(settings, interpreters={"DMO": other})
    sb = Sandbox(home=home, settings=foreign)
    try:
        path = tmp_path / "foreign.py"
        path.write_text(FOREIGN_MODEL)
        job = sb.run(sb.upload(path, "DMO").id)
        info = job.wait(timeout=60)
        assert info.status is JobStatus.SUCCESS, [line.text for line in job.logs()]
        assert info.python_version == version
        assert (info.outcome, info.objective) == ("feasible", 3.5)
        points = job.metric_points()
        gaps = [p.value for p in points if p.name == "gap"]
        assert gaps == [0.5, 0.5, 0.125]
        assert latest(points)["nodes"] == 9.0
        assert latest(points)["version"] == float(".".join(version.split(".")[:2]))
    finally:
        sb.close()

"""The sample models in models/examples, run as real subprocesses under the model env contract.

Each model is one file that needs numpy, highspy and (the SO) scipy and matpowercaseframes; here
it runs as ``python model.py`` with a
scrubbed environment (JOB_ID, MODEL_TYPE, CONFIG, SANDBOX_JOB_DIR, SANDBOX_RESULT_DIR, PATH,
HOME and, for the RMO, DATA_SOURCE_DIR). Helper functions and data are imported from the files
with ``importlib`` to check the answers (merit order, finite-difference prices, constraints).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "models" / "examples"
TOL = 1e-5  # MW and $/MWh; the CSVs carry 6 decimals

# Default objectives, pinned after checking them (see the merit-order and KKT tests below).
DMO_OBJECTIVE = 1078867.5
RMO_OBJECTIVE_DEFAULT_COMMITMENT = 57906.85320007639
RMO_OBJECTIVE_DMO_COMMITMENT = 57302.85320007639
SO_OBJECTIVE = 5715.310427880286


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    result_dir: Path

    @property
    def result(self) -> dict[str, Any]:
        data = json.loads((self.result_dir / "result.json").read_text(encoding="utf-8"))
        assert isinstance(data, dict)
        return data

    def table(self, name: str) -> list[dict[str, str]]:
        with (self.result_dir / self.result["tables"][name]).open(newline="") as fh:
            return list(csv.DictReader(fh))

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(prefix)]


def run_model(
    name: str,
    folder: Path,
    config: dict[str, Any] | None = None,
    data_source: Path | None = None,
) -> Run:
    job_dir = folder / "job"
    result_dir = job_dir / "result"
    home = folder / "home"
    for path in (result_dir, home):
        path.mkdir(parents=True)
    env = {
        "JOB_ID": f"test-{name}",
        "MODEL_TYPE": {"dmo": "DMO", "rmo": "RMO", "so": "SO"}[name],
        "CONFIG": json.dumps(config or {}),
        "SANDBOX_JOB_DIR": str(job_dir),
        "SANDBOX_RESULT_DIR": str(result_dir),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
    }
    if data_source is not None:
        env["DATA_SOURCE_DIR"] = str(data_source)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=job_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, result_dir)


def load_module(name: str) -> ModuleType:
    """The model file as a module (its main() does not run on import)."""
    key = f"sandbox_kit_example_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def matrix(rows: list[dict[str, str]], names: list[str]) -> np.ndarray:
    """Unit columns of a table as an array of shape (units, rows)."""
    return np.array([[float(row[name]) for row in rows] for name in names])


def metric_lines(stdout: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in stdout.splitlines():
        if line.startswith("::metric "):
            for pair in line.removeprefix("::metric ").split():
                key, _, value = pair.partition("=")
                values[key] = float(value)
    return values


def merit_order(pmin: np.ndarray, pmax: np.ndarray, mc: np.ndarray, load: float) -> np.ndarray:
    """Dispatch by hand: every unit at its minimum, then the cheapest raised first."""
    p = pmin.astype(float).copy()
    rest = load - p.sum()
    for i in np.argsort(mc, kind="stable"):
        step = min(rest, pmax[i] - p[i])
        p[i] += step
        rest -= step
    assert rest < TOL, "the units cannot serve the load"
    return p


# -- DMO ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dmo_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_model("dmo", tmp_path_factory.mktemp("dmo"))


@dataclass
class DmoAnswer:
    units: Any  # the model's Fleet
    load: np.ndarray
    u: np.ndarray  # (units, hours)
    p: np.ndarray
    prices: np.ndarray


@pytest.fixture(scope="module")
def dmo_answer(dmo_run: Run) -> DmoAnswer:
    dmo = load_module("dmo")
    units = dmo.fleet()
    return DmoAnswer(
        units=units,
        load=np.array(dmo.LOAD_PROFILE, dtype=float),
        u=matrix(dmo_run.table("commitment"), units.names),
        p=matrix(dmo_run.table("dispatch"), units.names),
        prices=np.array([float(row["price"]) for row in dmo_run.table("prices")]),
    )


def test_dmo_default_is_optimal(dmo_run: Run) -> None:
    assert dmo_run.returncode == 0, dmo_run.stderr
    result = dmo_run.result
    assert result["outcome"] == "optimal"
    assert result["objective"] == pytest.approx(DMO_OBJECTIVE, rel=1e-6)
    metrics = result["metrics"]
    for key in ("total_cost", "energy_cost", "startup_cost", "peak_price", "avg_price"):
        assert key in metrics
    assert metrics["total_cost"] == pytest.approx(result["objective"], rel=1e-9)
    parts = metrics["energy_cost"] + metrics["noload_cost"] + metrics["startup_cost"]
    assert parts == pytest.approx(metrics["total_cost"], rel=1e-9)
    assert 0 <= metrics["mip_gap"] <= 1e-6
    assert 0 < metrics["solve_time_s"] < 60
    assert set(result["tables"]) == {"commitment", "dispatch", "prices"}
    for file in result["tables"].values():
        assert (dmo_run.result_dir / file).is_file()
    assert "$" in result["message"]


def test_dmo_log_has_highs_progress_and_metrics(dmo_run: Run) -> None:
    lines = dmo_run.stdout.splitlines()
    assert any(line.startswith("Running HiGHS") for line in lines)
    # HiGHS's MIP table header: "Nodes | B&B Tree | Objective Bounds ..." then the columns.
    assert any("Nodes" in line and "B&B Tree" in line for line in lines)
    assert any("BestBound" in line and "BestSol" in line and "Gap" in line for line in lines)
    assert any(line.strip().startswith("Status") and "Optimal" in line for line in lines)
    assert dmo_run.lines("INFO: ")
    assert not dmo_run.lines("ERROR:")
    metrics = metric_lines(dmo_run.stdout)
    assert metrics["units"] >= 10
    assert metrics["periods"] == 24
    assert {"solve_time", "mip_gap", "total_cost"} <= set(metrics)

    # Python's own lines and the solver's native output come out in order.
    def first(prefix: str) -> int:
        return next(k for k, line in enumerate(lines) if line.startswith(prefix))

    assert first("INFO: MILP:") < first("Running HiGHS") < first("Solving report")
    assert first("Solving report") < first("::metric solve_time") < first("INFO: MILP optimal")


def test_dmo_reports_improving_solutions_from_highs_callbacks(dmo_run: Run) -> None:
    """The MIP callback prints each improving solution; the last is the optimum."""
    found = []
    for line in dmo_run.lines("::metric mip_primal_bound="):
        values = metric_lines(line)
        assert {"mip_primal_bound", "mip_dual_bound", "mip_gap", "mip_nodes"} <= set(values)
        assert values["mip_dual_bound"] <= values["mip_primal_bound"] + 1e-6
        found.append(values["mip_primal_bound"])
    assert found and found == sorted(found, reverse=True)  # each one improves
    assert found[-1] == pytest.approx(dmo_run.result["objective"], rel=1e-9)


@pytest.mark.parametrize("fleets", [0, 6, 1.5])
def test_dmo_fleets_must_be_one_to_five(tmp_path: Path, fleets: float) -> None:
    run = run_model("dmo", tmp_path, {"fleets": fleets})
    assert run.returncode == 2
    assert "CONFIG fleets must be a whole number from 1 to 5" in run.result["message"]


def test_dmo_costs_add_up_from_the_tables(dmo_run: Run, dmo_answer: DmoAnswer) -> None:
    units, u, p = dmo_answer.units, dmo_answer.u, dmo_answer.p
    previous = np.column_stack([units.u0, u[:, :-1]])
    starts = np.maximum(u - previous, 0)
    energy = float(np.sum(units.mc[:, None] * p))
    total = energy + float(
        np.sum(units.noload[:, None] * u) + np.sum(units.startup[:, None] * starts)
    )
    assert total == pytest.approx(dmo_run.result["objective"], rel=1e-8)
    assert energy == pytest.approx(dmo_run.result["metrics"]["energy_cost"], rel=1e-8)
    # A realistic magnitude: about $1M a day, an average cost between the cheapest and dearest.
    average = total / dmo_answer.load.sum()
    assert units.mc.min() < average < units.mc.max()


def test_dmo_dispatch_is_the_merit_order_of_the_commitment(dmo_answer: DmoAnswer) -> None:
    """With the commitment given, each hour's dispatch is a merit-order stack by hand.

    (Ramp limits do not bind in the default day, so the hours decouple.) Hour 3, worked out:
    1.1 x 893 MW of reserve needs a third unit beside the coal units (870 MW), so ccgt1 runs at
    its 120 MW minimum, coal1 at 450, and coal2 carries the rest, 323 MW, and sets the price.
    """
    units = dmo_answer.units
    index = {name: i for i, name in enumerate(units.names)}
    assert [units.names[i] for i in np.flatnonzero(dmo_answer.u[:, 3])] == [
        "coal1",
        "coal2",
        "ccgt1",
    ]
    assert dmo_answer.p[index["coal1"], 3] == pytest.approx(450)
    assert dmo_answer.p[index["coal2"], 3] == pytest.approx(893 - 450 - 120)
    assert dmo_answer.p[index["ccgt1"], 3] == pytest.approx(120)
    assert dmo_answer.prices[3] == pytest.approx(units.mc[index["coal2"]])
    for t, load in enumerate(dmo_answer.load):
        on = dmo_answer.u[:, t] == 1
        expected = np.zeros(units.n)
        expected[on] = merit_order(units.pmin[on], units.pmax[on], units.mc[on], load)
        assert dmo_answer.p[:, t] == pytest.approx(expected, abs=TOL), f"hour {t}"


def test_dmo_price_is_the_cost_of_the_marginal_unit(dmo_answer: DmoAnswer) -> None:
    units, p, prices = dmo_answer.units, dmo_answer.p, dmo_answer.prices
    assert np.all(prices > 0)
    for t in range(len(prices)):
        inside = (p[:, t] > units.pmin + TOL) & (p[:, t] < units.pmax - TOL)
        assert inside.any(), f"hour {t}: no unit strictly between its limits"
        # every unit strictly inside its limits (ramps are slack here) sets the same price
        assert units.mc[inside] == pytest.approx(np.full(inside.sum(), prices[t])), f"hour {t}"
    committed_mc = units.mc[dmo_answer.u.any(axis=1)]
    assert committed_mc.min() - TOL <= prices.min() <= prices.max() <= committed_mc.max() + TOL


def test_dmo_prices_are_the_cost_of_one_more_mwh(dmo_answer: DmoAnswer) -> None:
    """The balance duals equal finite differences of the dispatch LP (checks their sign too)."""
    dmo = load_module("dmo")
    units, u = dmo_answer.units, dmo_answer.u
    previous = np.column_stack([units.u0, u[:, :-1]])
    plan = dmo.Commitment(
        "optimal", "", u=u, v=np.maximum(u - previous, 0), w=np.maximum(previous - u, 0)
    )
    base = dmo.solve_dispatch(units, dmo_answer.load, plan)
    assert base.prices == pytest.approx(dmo_answer.prices, abs=TOL)
    step = 0.5
    for t in range(len(dmo_answer.load)):
        bump = np.zeros(len(dmo_answer.load))
        bump[t] = step
        up = dmo.solve_dispatch(units, dmo_answer.load + bump, plan).energy_cost
        down = dmo.solve_dispatch(units, dmo_answer.load - bump, plan).energy_cost
        left, right = (base.energy_cost - down) / step, (up - base.energy_cost) / step
        assert left - 1e-4 <= base.prices[t] <= right + 1e-4, f"hour {t}"


def test_dmo_schedule_respects_the_unit_constraints(dmo_answer: DmoAnswer) -> None:
    units, u, p, load = dmo_answer.units, dmo_answer.u, dmo_answer.p, dmo_answer.load
    hours = len(load)
    assert set(np.unique(u)) <= {0.0, 1.0}
    assert p.sum(axis=0) == pytest.approx(load, abs=TOL)
    assert np.all(units.pmax @ u >= 1.1 * load - TOL)  # spinning reserve (default 10%)
    assert np.all(p >= units.pmin[:, None] * u - TOL)
    assert np.all(p <= units.pmax[:, None] * u + TOL)
    for i, name in enumerate(units.names):
        # status history: init_hours of the initial status, then the 24 hours; every run
        # except the last (cut off by the horizon) lasts at least min up / min down
        initial = int(units.init_hours[i] > 0)
        history = [initial] * abs(int(units.init_hours[i])) + [int(x) for x in u[i]]
        runs = [(value, len(list(group))) for value, group in itertools.groupby(history)]
        for value, length in runs[:-1]:
            need = units.min_up[i] if value else units.min_down[i]
            assert length >= need, f"{name}: {'on' if value else 'off'} for {length} h < {need}"
        # ramps: within limits while on; start-up/shut-down hours within max(pmin, ramp)
        p_prev = np.concatenate([[units.p0[i]], p[i]])
        on_prev = np.array([initial] + [int(x) for x in u[i]])
        for t in range(hours):
            delta = p_prev[t + 1] - p_prev[t]
            if on_prev[t] and on_prev[t + 1]:
                assert -units.ramp_down[i] - TOL <= delta <= units.ramp_up[i] + TOL, (name, t)
            elif on_prev[t + 1]:  # start-up in hour t
                assert p_prev[t + 1] <= max(units.pmin[i], units.ramp_up[i]) + TOL, (name, t)
            elif on_prev[t]:  # shut down in hour t
                assert p_prev[t] <= max(units.pmin[i], units.ramp_down[i]) + TOL, (name, t)


def test_dmo_load_the_units_cannot_follow_is_infeasible(tmp_path: Path) -> None:
    """At 30% load the initial coal output cannot ramp down fast enough: HiGHS says infeasible."""
    run = run_model("dmo", tmp_path, {"load_scale": 0.3})
    assert run.returncode == 0, run.stderr
    assert run.result["outcome"] == "infeasible"
    assert "HiGHS" in run.result["message"]
    assert run.lines("ERROR: infeasible")


def test_dmo_load_above_capacity_is_infeasible(tmp_path: Path) -> None:
    run = run_model("dmo", tmp_path, {"load_scale": 5})
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["outcome"] == "infeasible"
    assert "capacity" in result["message"]
    assert "hour 18: load 8745 MW + reserve 874 MW exceeds capacity 2095 MW" in result["message"]
    assert any("capacity" in line for line in run.lines("ERROR: "))
    assert "objective" not in result


def test_dmo_bad_config_is_an_error(tmp_path: Path) -> None:
    run = run_model("dmo", tmp_path, {"load_scale": "big"})
    assert run.returncode != 0
    assert run.result["outcome"] == "error"
    assert "load_scale" in run.result["message"]


# -- RMO ---------------------------------------------------------------------------------------


def check_rmo_answer(run: Run, on: np.ndarray | None = None) -> None:
    """Dispatch within limits and 5-minute ramps, balance, and prices = d cost / d load."""
    rmo = load_module("rmo")
    units = rmo.fleet()
    p = matrix(run.table("dispatch"), units.names)
    prices = np.array([float(row["price"]) for row in run.table("prices")])
    load = np.array([float(row["load"]) for row in run.table("load")])
    assert p.shape == (units.n, 12)
    assert p.sum(axis=0) == pytest.approx(load, abs=1e-4)
    committed = (p > 0).any(axis=1) if on is None else on.astype(bool)
    assert np.all(p[~committed] == 0)
    assert np.all(p[committed] >= units.pmin[committed, None] - TOL)
    assert np.all(p[committed] <= units.pmax[committed, None] + TOL)
    steps = np.diff(p, axis=1)
    assert np.all(steps <= units.ramp_up[:, None] / 12 + TOL)
    assert np.all(-steps <= units.ramp_down[:, None] / 12 + TOL)
    assert np.all(prices > 0)

    # Prices are the LP's d cost / d load: bracket them by finite differences (the LP rate is
    # in $/h, so for a 5-minute interval the $ cost of the hour changes by price * MW / 12).
    on_flags = committed.astype(float)
    base = rmo.solve_dispatch(units, on_flags, load)
    assert base.cost == pytest.approx(run.result["objective"], rel=1e-9)
    step = 0.01
    for k in range(12):
        bump = np.zeros(12)
        bump[k] = step
        up = rmo.solve_dispatch(units, on_flags, load + bump)
        down = rmo.solve_dispatch(units, on_flags, load - bump)
        right = (up.cost - base.cost) * 12 / step if up.status == 0 else np.inf
        left = (base.cost - down.cost) * 12 / step if down.status == 0 else -np.inf
        assert left - 1e-3 <= prices[k] <= right + 1e-3, f"interval {k}"

    # KKT structure: a unit strictly inside its limits whose ramps on both sides are slack is
    # marginal, and its cost is the price; otherwise an interior unit is held by a ramp limit
    # and the price couples intervals (e.g. 42.40 + (42.40 - 38.20) = 46.60).
    slack_up = units.ramp_up[:, None] / 12 - steps > TOL
    slack_down = units.ramp_down[:, None] / 12 + steps > TOL
    slack = slack_up & slack_down  # (n, 11): the ramp between k and k+1
    for k in range(12):
        inside = committed & (p[:, k] > units.pmin + TOL) & (p[:, k] < units.pmax - TOL)
        assert inside.any(), f"interval {k}"
        free = inside.copy()
        if k > 0:
            free &= slack[:, k - 1]
        if k < 11:
            free &= slack[:, k]
        if free.any():
            assert units.mc[free] == pytest.approx(np.full(free.sum(), prices[k])), k
        else:
            assert (inside & ~free).any(), f"interval {k}: no marginal unit"


def test_rmo_default_commitment(tmp_path: Path) -> None:
    run = run_model("rmo", tmp_path)
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["outcome"] == "optimal"
    assert result["objective"] == pytest.approx(RMO_OBJECTIVE_DEFAULT_COMMITMENT, rel=1e-6)
    assert any("default merit-order commitment" in line for line in run.lines("INFO: "))
    assert set(result["tables"]) >= {"dispatch", "prices"}
    assert metric_lines(run.stdout)["intervals"] == 12
    check_rmo_answer(run)


def test_rmo_reads_the_dmo_commitment(tmp_path: Path, dmo_run: Run, dmo_answer: DmoAnswer) -> None:
    run = run_model("rmo", tmp_path, data_source=dmo_run.result_dir)
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["outcome"] == "optimal"
    source = str(dmo_run.result_dir / "commitment.csv")
    assert any(
        "commitment read from DATA_SOURCE_DIR" in line and source in line and "hour 17" in line
        for line in run.lines("INFO: ")
    )
    assert not any("default" in line for line in run.lines("WARNING"))
    on = dmo_answer.u[:, 17]
    check_rmo_answer(run, on)
    assert result["objective"] == pytest.approx(RMO_OBJECTIVE_DMO_COMMITMENT, rel=1e-6)
    assert result["metrics"]["committed_units"] == on.sum()
    assert result["metrics"]["day_ahead_price"] == pytest.approx(dmo_answer.prices[17])
    # The DMO committed one combustion turbine fewer than the default; it ran at its minimum.
    assert result["objective"] < RMO_OBJECTIVE_DEFAULT_COMMITMENT


def test_rmo_missing_commitment_falls_back(tmp_path: Path) -> None:
    empty = tmp_path / "empty-source"
    empty.mkdir()
    run = run_model("rmo", tmp_path, data_source=empty)
    assert run.returncode == 0, run.stderr
    assert run.result["objective"] == pytest.approx(RMO_OBJECTIVE_DEFAULT_COMMITMENT, rel=1e-6)
    assert any("no commitment.csv" in line for line in run.lines("WARNING: "))


def test_rmo_other_hour_and_seed(tmp_path: Path) -> None:
    run = run_model("rmo", tmp_path, {"hour": 3, "seed": 7, "forecast_error": 0.01})
    assert run.returncode == 0, run.stderr
    assert run.result["outcome"] == "optimal"
    rows = run.table("load")
    assert rows[0]["time"] == "03:00"
    assert rows[-1]["time"] == "03:55"
    check_rmo_answer(run)


def test_rmo_load_above_capacity_is_infeasible(tmp_path: Path) -> None:
    run = run_model("rmo", tmp_path, {"load_scale": 5})
    assert run.returncode == 0, run.stderr
    assert run.result["outcome"] == "infeasible"
    assert "capacity" in run.result["message"]
    assert any("capacity" in line for line in run.lines("ERROR: "))


def test_rmo_load_above_the_dmo_commitment_is_infeasible(tmp_path: Path, dmo_run: Run) -> None:
    run = run_model("rmo", tmp_path, {"load_scale": 1.1}, data_source=dmo_run.result_dir)
    assert run.returncode == 0, run.stderr
    assert run.result["outcome"] == "infeasible"
    assert "committed capacity 1900 MW" in run.result["message"]


# -- SO ----------------------------------------------------------------------------------------

# case14 generators as (bus, Pmax MW, $/MWh = gencost c1), and total load, copied by hand.
CASE14_GENERATORS = [
    (1, 332.4, 20.0),
    (2, 140.0, 20.0),
    (3, 100.0, 40.0),
    (6, 100.0, 40.0),
    (8, 100.0, 40.0),
]
CASE14_LOAD = 259.0

# MATPOWER's published rundcopf objectives ($/h), held to 1e-6 relative (issue 15).
MATPOWER_PUBLISHED = {"case9": 5216.026607, "case14": 7642.591776}
# More cases of the MATPOWER distribution: rundcopf of MATPOWER 8.1 (its default solver, MIPS).
MATPOWER_8_1 = {
    "case5": 17479.896925,
    "case30": 565.205966,
    "case30pwl": 5732.8,  # piecewise-linear costs
    "case57": 41006.736942,
    "case118": 125947.881418,
    "case300": 706292.324244,  # phase shifters, shunts, out-of-service branches
    "case1354pegase": 73059.67,  # more buses than the dense PTDF cross-check takes
}

# A case written for these tests: a tap, a phase shifter (-4 degrees), a shunt, parallel
# branches, a branch and a generator out of service, an isolated bus (type 4) with a load and a
# generator, a reference angle of 5 degrees, binding limits, and quadratic, linear and
# piecewise-linear costs. MATPOWER 8.1's rundcopf gives 8815.7263605 $/h (its interior-point
# solver stops at ~1e-9 relative), these LMPs and these branch shadow prices.
TEST_CASE = """function mpc = sk_test6
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [
	1	3	0	0	0	0	1	1	5	230	1	1.1	0.9;
	2	2	60	10	0	0	1	1	0	230	1	1.1	0.9;
	3	1	120	20	10	0	1	1	0	230	1	1.1	0.9;
	4	1	90	15	0	0	1	1	0	230	1	1.1	0.9;
	5	2	30	0	0	0	1	1	0	230	1	1.1	0.9;
	6	4	40	0	0	0	1	1	0	230	1	1.1	0.9;
];
mpc.gen = [
	1	0	0	300	-300	1	100	1	250	20;
	2	0	0	300	-300	1	100	1	150	0;
	5	0	0	300	-300	1	100	1	120	10;
	4	0	0	300	-300	1	100	0	100	0;
	6	0	0	300	-300	1	100	1	50	0;
];
mpc.branch = [
	1	2	0.01	0.06	0	200	200	200	0	0	1	-360	360;
	1	3	0.02	0.10	0	80	80	80	0.97	0	1	-360	360;
	2	3	0.01	0.08	0	0	0	0	0	0	1	-360	360;
	2	4	0.01	0.09	0	60	60	60	1	-4	1	-360	360;
	3	4	0.02	0.12	0	50	50	50	0	0	1	-360	360;
	3	4	0.02	0.12	0	50	50	50	0	0	1	-360	360;
	4	5	0.01	0.05	0	100	100	100	0	0	1	-360	360;
	2	5	0.01	0.07	0	100	100	100	0	0	0	-360	360;
	5	6	0.01	0.05	0	100	100	100	0	0	1	-360	360;
];
mpc.gencost = [
	2	0	0	3	0.02	18	100	0	0	0;
	1	0	0	3	0	0	50	1500	150	5000;
	2	0	0	2	40	0	0	0	0	0;
	2	0	0	3	0.01	10	0	0	0	0;
	2	0	0	2	20	0	0	0	0	0;
];
"""
TEST_CASE_OBJECTIVE = 8815.7263605205
TEST_CASE_LMP = {1: 25.8328827407, 2: 30.0, 3: 38.0954956499, 4: 40.0, 5: 40.0}
TEST_CASE_MU = {"1-3": 18.99945196, "2-4": 12.85675844}


def so_run(tmp_path: Path, case: str, **config: Any) -> Run:
    run = run_model("so", tmp_path, {"case": case, **config})
    assert run.returncode == 0, run.stderr
    return run


def finite_difference_lmps(case: str, step: float = 0.01) -> np.ndarray:
    """d cost / d Pd at each bus, by re-solving with one bus's load moved up and down."""
    so = load_module("so")
    net = so.load_network(case, 1.0, 1.0)
    lmps = []
    for k in range(net.nb):
        costs = []
        for sign in (1, -1):
            pd = net.pd.copy()
            pd[k] += sign * step
            result = so.solve_angle(dataclasses.replace(net, pd=pd))
            assert result.status == 0
            costs.append(result.objective)
        lmps.append((costs[0] - costs[1]) / (2 * step))
    return np.array(lmps)


def test_so_default_is_congested(tmp_path: Path) -> None:
    run = run_model("so", tmp_path)
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["outcome"] == "optimal"
    assert result["objective"] == pytest.approx(SO_OBJECTIVE, rel=1e-6)
    metrics = result["metrics"]
    assert metrics["n_congested"] >= 1
    assert metrics["objective_angle"] == pytest.approx(metrics["objective_ptdf"], rel=1e-6)
    assert set(result["tables"]) == {"lmp", "flows", "dispatch"}
    assert result["message"].startswith("optimal: case14_congested: ")

    lmp = {int(row["bus"]): float(row["lmp"]) for row in run.table("lmp")}
    assert sorted(lmp) == list(range(1, 15))
    assert max(lmp.values()) - min(lmp.values()) > 1  # congestion separates the prices
    assert metrics["max_lmp"] == pytest.approx(max(lmp.values()))
    assert metrics["min_lmp"] == pytest.approx(min(lmp.values()))
    flows = run.table("flows")
    congested = [row for row in flows if row["congested"] == "1"]
    assert len(congested) == metrics["n_congested"]
    assert {row["branch"] for row in congested} == {"1-5", "2-3"}
    for row in flows:
        assert abs(float(row["flow"])) <= float(row["limit"]) + TOL
    for row in congested:
        assert abs(float(row["flow"])) == pytest.approx(float(row["limit"]))
    dispatch = {int(row["bus"]): float(row["mw"]) for row in run.table("dispatch")}
    assert sum(dispatch.values()) == pytest.approx(CASE14_LOAD)
    # a generator strictly inside its limits is paid its own cost
    for bus, pmax, cost in CASE14_GENERATORS:
        if TOL < dispatch[bus] < pmax - TOL:
            assert lmp[bus] == pytest.approx(cost), f"bus {bus}"
    assert any("congested branch" in line for line in run.lines("INFO: "))
    assert any("objectives agree" in line for line in run.lines("INFO: "))


@pytest.mark.parametrize(("case", "objective"), sorted(MATPOWER_PUBLISHED.items()))
def test_so_reproduces_matpowers_published_rundcopf(
    tmp_path: Path, case: str, objective: float
) -> None:
    run = so_run(tmp_path, case)
    result = run.result
    assert result["outcome"] == "optimal"
    assert result["objective"] == pytest.approx(objective, rel=1e-6)
    # LMPs are the balance duals: d cost / d Pd at every bus, as finite differences say.
    lmp = np.array([float(row["lmp"]) for row in run.table("lmp")])
    assert lmp == pytest.approx(finite_difference_lmps(case), abs=1e-4)
    assert result["metrics"]["objective_ptdf"] == pytest.approx(objective, rel=1e-6)


@pytest.mark.parametrize(("case", "objective"), sorted(MATPOWER_8_1.items()))
def test_so_matches_matpower_on_more_standard_cases(case: str, objective: float) -> None:
    so = load_module("so")
    result = so.solve_angle(so.load_network(case, 1.0, 1.0))
    assert result.status == 0, result.message
    assert result.objective == pytest.approx(objective, rel=1e-6)


def test_so_full_dc_model_matches_matpower_on_a_case_file(tmp_path: Path) -> None:
    """A .m file in DATA_SOURCE_DIR, with every feature of the DC model at once."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "sk_test6.m").write_text(TEST_CASE, encoding="utf-8")
    run = run_model("so", tmp_path, {"case": "sk_test6.m"}, data_source=data)
    assert run.returncode == 0, run.stderr
    assert not run.stderr.strip()  # the parser's warning about mixed cost models is not noise
    result = run.result
    assert result["objective"] == pytest.approx(TEST_CASE_OBJECTIVE, rel=1e-8)
    lmp = {int(row["bus"]): float(row["lmp"]) for row in run.table("lmp")}
    assert lmp == pytest.approx(TEST_CASE_LMP, abs=1e-5)  # bus 6 (isolated) is left out
    flows = {row["branch"]: row for row in run.table("flows")}
    assert set(flows) == {"1-2", "1-3", "2-3", "2-4", "3-4", "3-4#2", "4-5"}
    assert flows["2-3"]["limit"] == ""  # RATE_A 0: unlimited
    assert {b for b, row in flows.items() if row["congested"] == "1"} == set(TEST_CASE_MU)
    for branch, mu in TEST_CASE_MU.items():
        assert float(flows[branch]["shadow_price"]) == pytest.approx(mu, abs=1e-5)
    dispatch = [(int(row["bus"]), float(row["mw"])) for row in run.table("dispatch")]
    assert [bus for bus, _ in dispatch] == [1, 2, 5]  # out of service and isolated: none
    assert sum(mw for _, mw in dispatch) == pytest.approx(60 + 120 + 10 + 90 + 30)  # with GS


@pytest.mark.parametrize(
    ("config", "data", "message"),
    [
        ({"case": "case9000"}, None, "unknown case 'case9000'; bundled cases include"),
        ({"case": "x.m"}, None, "is a file name, but the run has no DATA_SOURCE_DIR"),
        ({"case": "nope.m"}, "sk_test6.m", "no case file 'nope.m' in DATA_SOURCE_DIR"),
        ({"case": "../sk_test6.m"}, "sk_test6.m", "points outside DATA_SOURCE_DIR"),
        ({"case": "a/../../b"}, None, "is neither a case name nor a .m file name"),
        ({"case": "cubic.m"}, "cubic.m", "polynomial cost of degree 3"),
        ({"case": "case_RTS_GMLC"}, None, "has DC lines (mpc.dcline): not supported"),
        ({"case": 9}, None, "CONFIG case must be a case name"),
        ({"line_limit_scale": 0}, None, "CONFIG line_limit_scale must be positive"),
    ],
)
def test_so_refuses_what_it_cannot_use(
    tmp_path: Path, config: dict[str, Any], data: str | None, message: str
) -> None:
    source = None
    if data is not None:
        source = tmp_path / "data"
        source.mkdir()
        text = TEST_CASE
        if data == "cubic.m":  # the first generator's cost becomes a cubic polynomial
            text = text.replace("2\t0\t0\t3\t0.02\t18\t100\t0", "2\t0\t0\t4\t0.001\t0.02\t18\t100")
        (source / data).write_text(text, encoding="utf-8")
    run = run_model("so", tmp_path, config, data_source=source)
    assert run.returncode == 2, run.stderr
    assert run.result["outcome"] == "error"
    assert message in run.result["message"]
    assert run.lines("ERROR: ")


@pytest.mark.parametrize(
    ("case", "load_scale", "line_limit_scale"),
    [
        ("case14_congested", 1.0, 1.0),
        ("case14_congested", 1.0, 0.75),
        ("case14_congested", 1.0, 1e6),
        ("case14_congested", 1.5, 1.5),
        ("case14_congested", 0.7, 0.625),
        ("case9", 1.0, 0.5),  # quadratic costs, congested
        ("case57", 1.0, 1.0),  # (case30pwl's equal generators make its dispatch non-unique)
        ("case118", 1.0, 0.6),
    ],
)
def test_so_angle_and_ptdf_formulations_agree(
    case: str, load_scale: float, line_limit_scale: float
) -> None:
    so = load_module("so")
    net = so.load_network(case, load_scale, line_limit_scale)
    angle, ptdf = so.solve_angle(net), so.solve_ptdf(net)
    assert angle.status == ptdf.status == 0
    assert ptdf.objective == pytest.approx(angle.objective, rel=1e-6)
    assert ptdf.lmp == pytest.approx(angle.lmp, abs=1e-5)  # lambda - PTDF^T mu = bus duals
    assert ptdf.mu == pytest.approx(angle.mu, abs=1e-5)
    assert ptdf.flow == pytest.approx(angle.flow, abs=1e-5)
    # the PTDF flows are the DC power flow of the injections (phase shifters included)
    injection = net.gen_map() @ ptdf.pg - net.pd - net.gs - net.pbusinj()
    assert net.ptdf() @ injection + net.pfinj() == pytest.approx(ptdf.flow, abs=1e-5)


def test_so_uncongested_is_one_price_and_the_merit_order(tmp_path: Path) -> None:
    run = run_model("so", tmp_path, {"line_limit_scale": 1e6})
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["outcome"] == "optimal"
    assert result["metrics"]["n_congested"] == 0
    lmps = [float(row["lmp"]) for row in run.table("lmp")]
    assert lmps == pytest.approx([lmps[0]] * 14)
    # merit order by hand: fill the load from the cheapest generator up
    rest, cost, marginal = CASE14_LOAD, 0.0, 0.0
    for _, pmax, price in sorted(CASE14_GENERATORS, key=lambda g: g[2]):
        take = min(rest, pmax)
        cost += take * price
        rest -= take
        if take > 0:
            marginal = price
    assert rest == 0
    assert cost == pytest.approx(5180.0)  # 259 MW at $20/MWh
    assert result["objective"] == pytest.approx(cost, rel=1e-9)
    assert lmps[0] == pytest.approx(marginal)


def test_so_load_above_capacity_is_infeasible(tmp_path: Path) -> None:
    run = run_model("so", tmp_path, {"load_scale": 5})
    assert run.returncode == 0, run.stderr
    assert run.result["outcome"] == "infeasible"
    assert "capacity" in run.result["message"]
    assert "1295.0 MW" in run.result["message"]
    assert any("capacity" in line for line in run.lines("ERROR: "))


def test_so_limits_too_tight_is_infeasible(tmp_path: Path) -> None:
    run = run_model("so", tmp_path, {"line_limit_scale": 0.25})
    assert run.returncode == 0, run.stderr
    assert run.result["outcome"] == "infeasible"
    assert "branch limits" in run.result["message"]


def test_models_run_without_the_sandbox_env(tmp_path: Path) -> None:
    """Plain ``python model.py`` with no sandbox variables writes ./result."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "so.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "result" / "result.json").read_text(encoding="utf-8"))
    assert result["outcome"] == "optimal"

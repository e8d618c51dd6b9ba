"""Day-ahead unit commitment (a DMO sample model for sandbox_kit).

Commits and dispatches a fleet of 10 thermal units over 24 hourly periods at least cost:

    min  sum_t sum_i  mc_i * p[i,t] + noload_i * u[i,t] + startup_i * v[i,t]

    s.t. sum_i p[i,t] = load[t]                                  (power balance)
         sum_i pmax_i * u[i,t] >= (1 + reserve_fraction) * load[t]   (spinning reserve)
         pmin_i * u[i,t] <= p[i,t] <= pmax_i * u[i,t]
         u[i,t] - u[i,t-1] = v[i,t] - w[i,t],  v[i,t] + w[i,t] <= 1
         sum_{tau=t-UT_i+1..t} v[i,tau] <= u[i,t]                 (minimum up time)
         sum_{tau=t-DT_i+1..t} w[i,tau] <= 1 - u[i,t]             (minimum down time)
         p[i,t] - p[i,t-1] <= RU_i * u[i,t-1] + max(pmin_i, RU_i) * v[i,t]     (ramp up)
         p[i,t-1] - p[i,t] <= RD_i * u[i,t] + max(pmin_i, RD_i) * w[i,t]       (ramp down)
         u, v, w binary

The reserve is the committed headroom: committed capacity must cover load plus reserve in
every hour. Hour t = -1 is the initial state (status, hours in that status, output), which
also fixes units that must stay on or off at the start to honour their minimum up/down times.

The MILP is solved with HiGHS through its own Python API, ``highspy`` (its native MIP log goes
to stdout). Two HiGHS callbacks follow the search: each improving solution is kept and printed
as a ``::metric`` line (primal and dual bound, gap, nodes), and the frequent MIP "interrupt"
callback keeps the latest dual bound and gap. The commitment is then fixed and the dispatch LP
is re-solved; hourly prices are the HiGHS row duals of the power-balance rows, i.e.
d(total cost)/d(load[t]) in $/MWh (HiGHS reports y = d objective / d row bound for a
minimisation, so they come out positive as written here). The reserve rows involve only the
fixed commitment, so the LP leaves them out. When no ramp limit binds, each hour's price is the
marginal cost of a unit running strictly between its limits; a binding ramp couples hours and
the price becomes a combination of marginal costs.

Best so far: the model registers ``sandbox_kit.model_api.on_stop``. When the sandbox stops the
job (timeout or cancel: SIGTERM, then SIGKILL after the grace period), the callback writes the
best commitment found so far (commitment.csv, dispatch.csv) and result.json with outcome
``time_limit`` (timeout) or ``interrupted`` (cancel), its cost as the objective and the MIP gap
at that moment; the dispatch LP and its prices are skipped. Run by an interpreter without
sandbox_kit, the model still runs; a stop then loses the incumbent.

Threads: HiGHS's ``threads`` option is set to ``$SANDBOX_THREADS``, what the sandbox gave the
job (``# sandbox: threads=N`` in a model's header asks for more); unset, HiGHS picks.

The fleet is illustrative (no published source): two coal units, three combined-cycle units, a
gas steam unit, three combustion turbines and an oil unit, with costs of a realistic magnitude.

CONFIG (JSON object, all optional):
    load_scale        multiplies the load profile (default 1.0)
    reserve_fraction  spinning reserve as a fraction of load (default 0.1)
    mip_gap           HiGHS relative MIP gap (default 1e-6)
    time_limit        HiGHS time limit in seconds (default 60)
    days              horizon in days, 1-7 (default 1); the days follow the weekly shape
                      DAY_FACTORS (the week's peak is 6 % above the first day's), a harder
                      MILP that shows the solver's progress for longer
    fleets            copies of the fleet, 1-5 (default 1), the load scaled to match; each
                      copy's costs are 0.2 % above the previous copy's, so the copies are not
                      interchangeable. {"days": 7, "fleets": 2} takes HiGHS minutes to prove
                      optimal (the first good commitment comes within seconds)

Outputs in $SANDBOX_RESULT_DIR (./result when unset): result.json, commitment.csv,
dispatch.csv and prices.csv. An infeasible case (load plus reserve above capacity, or HiGHS
proving infeasibility) is an answer, not a failure: outcome "infeasible", exit status 0. A bad
CONFIG exits with status 2 and an unexpected failure with 1, both with outcome "error".
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highspy
import numpy as np

# name, pmin MW, pmax MW, marginal cost $/MWh, no-load $/h, start-up $, min up h, min down h,
# ramp up MW/h, ramp down MW/h (1-8 %/min of capacity), initial status (+h on / -h off),
# initial output MW
UNIT_TABLE = (
    ("coal1", 180, 450, 24.30, 1200, 9000, 8, 8, 270, 270, 12, 380),
    ("coal2", 170, 420, 25.80, 1100, 8500, 8, 8, 240, 240, 10, 340),
    ("ccgt1", 120, 300, 36.50, 850, 3200, 4, 4, 360, 360, 6, 230),
    ("ccgt2", 110, 280, 38.20, 800, 3000, 4, 4, 330, 330, -3, 0),
    ("ccgt3", 50, 160, 42.40, 400, 1200, 3, 3, 240, 240, -2, 0),
    ("steam1", 60, 200, 47.90, 520, 1800, 6, 4, 120, 120, -6, 0),
    ("ct1", 20, 90, 72.50, 180, 300, 1, 1, 360, 360, -4, 0),
    ("ct2", 20, 85, 78.10, 170, 280, 1, 1, 340, 340, -4, 0),
    ("ct3", 15, 60, 86.30, 150, 220, 1, 1, 300, 300, -4, 0),
    ("oil1", 10, 50, 118.00, 120, 150, 1, 1, 90, 90, -8, 0),
)

# System load in MW for the hours starting 00:00 ... 23:00: night trough, morning ramp, midday
# plateau, evening peak at 18:00. No value is a multiple of 5 MW while every unit limit is, so in
# each hour at least one unit is strictly between its limits and the hourly price is unique.
LOAD_PROFILE: tuple[float, ...] = (
    978, 937, 906, 893, 911, 992, 1148, 1302, 1403, 1466, 1502, 1521,
    1512, 1497, 1486, 1507, 1571, 1672, 1749, 1731, 1652, 1508, 1322, 1137,
)  # fmt: skip

COPY_COST_STEP = 0.002  # costs of each further copy of the fleet (CONFIG fleets)
# Each day's load relative to the first day's, over a week: midweek peak, lighter weekend.
DAY_FACTORS = (1.00, 1.04, 1.06, 1.03, 0.99, 0.91, 0.87)

DEFAULTS: dict[str, float] = {
    "load_scale": 1.0,
    "reserve_fraction": 0.1,
    "mip_gap": 1e-6,
    "time_limit": 60.0,
    "days": 1,
    "fleets": 1,
}
TOL = 1e-6


class ConfigError(ValueError):
    """The CONFIG object is unusable."""


@dataclass(frozen=True)
class Fleet:
    names: list[str]
    pmin: np.ndarray
    pmax: np.ndarray
    mc: np.ndarray
    noload: np.ndarray
    startup: np.ndarray
    min_up: np.ndarray
    min_down: np.ndarray
    ramp_up: np.ndarray
    ramp_down: np.ndarray
    init_hours: np.ndarray
    p0: np.ndarray

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def u0(self) -> np.ndarray:
        return (self.init_hours > 0).astype(float)

    @property
    def startup_ramp(self) -> np.ndarray:
        return np.maximum(self.pmin, self.ramp_up)

    @property
    def shutdown_ramp(self) -> np.ndarray:
        return np.maximum(self.pmin, self.ramp_down)


def fleet(copies: int = 1) -> Fleet:
    """The fleet of UNIT_TABLE, ``copies`` times; copy k's costs are 0.2 % x k higher."""
    cols = list(zip(*UNIT_TABLE, strict=True))
    names = [f"{n}_{k + 1}" if k else str(n) for k in range(copies) for n in cols[0]]
    arr = []
    for position, col in enumerate(cols[1:], start=1):
        values = np.array(col, dtype=float)
        costly = position in (3, 4, 5)  # marginal, no-load and start-up cost
        arr.append(
            np.concatenate(
                [values * (1 + COPY_COST_STEP * k if costly else 1) for k in range(copies)]
            )
        )
    return Fleet(names, *arr)


def log(message: str, level: str = "INFO") -> None:
    print(f"{level}: {message}", flush=True)


def metric(**values: float) -> None:
    """A live metric line; values that are not finite numbers are left out."""
    pairs = [f"{k}={v:.10g}" for k, v in values.items() if math.isfinite(v)]
    if pairs:
        print("::metric " + " ".join(pairs), flush=True)


def read_config() -> dict[str, float]:
    raw = os.environ.get("CONFIG", "").strip() or "{}"
    try:
        given = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"CONFIG is not valid JSON: {exc.msg}") from exc
    if not isinstance(given, dict):
        raise ConfigError("CONFIG must be a JSON object")
    for key in sorted(set(given) - set(DEFAULTS)):
        log(f"unknown CONFIG key {key!r} ignored (known: {', '.join(DEFAULTS)})", "WARNING")
    cfg = dict(DEFAULTS)
    for key in DEFAULTS:
        if key not in given:
            continue
        value = given[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"CONFIG {key} must be a finite number, got {value!r}")
        cfg[key] = float(value)
    if cfg["load_scale"] <= 0:
        raise ConfigError("CONFIG load_scale must be positive")
    if not 0 <= cfg["reserve_fraction"] <= 1:
        raise ConfigError("CONFIG reserve_fraction must be between 0 and 1")
    if cfg["mip_gap"] < 0 or cfg["time_limit"] <= 0:
        raise ConfigError("CONFIG mip_gap must be >= 0 and time_limit > 0")
    if cfg["days"] not in range(1, 8):
        raise ConfigError("CONFIG days must be a whole number from 1 to 7")
    if cfg["fleets"] not in range(1, 6):
        raise ConfigError("CONFIG fleets must be a whole number from 1 to 5")
    return cfg


def result_dir() -> Path:
    folder = Path(os.environ.get("SANDBOX_RESULT_DIR") or "result")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_result(folder: Path, **result: Any) -> None:
    """Write result.json; metrics and objective that are not finite numbers are left out."""
    if "metrics" in result:
        result["metrics"] = {k: v for k, v in result["metrics"].items() if math.isfinite(v)}
    if "objective" in result and not math.isfinite(result["objective"]):
        del result["objective"]
    text = json.dumps(result, indent=2, allow_nan=False)
    # Written whole, then renamed: the on_stop callback may write it from another thread.
    partial = folder / f".result.json.{threading.get_ident()}.tmp"
    partial.write_text(text + "\n", encoding="utf-8")
    os.replace(partial, folder / "result.json")


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def clean(x: float, digits: int = 6) -> float:
    value = round(float(x), digits)
    return 0.0 if value == 0 else value


def capacity_shortfalls(
    units: Fleet, load: np.ndarray, reserve_fraction: float
) -> list[tuple[int, float, float]]:
    """The hours whose load plus reserve exceeds the fleet's capacity: (hour, load, reserve)."""
    capacity = float(units.pmax.sum())
    return [
        (t, float(d), float(d) * reserve_fraction)
        for t, d in enumerate(load)
        if d * (1 + reserve_fraction) > capacity + TOL
    ]


def must_keep_initial_status(units: Fleet) -> list[int]:
    """Hours each unit must keep its initial status to serve its minimum up or down time."""
    hours = []
    for i in range(units.n):
        init = int(units.init_hours[i])
        if init > 0:
            hours.append(max(0, int(units.min_up[i]) - init))
        else:
            hours.append(max(0, int(units.min_down[i]) + init))
    return hours


class Rows:
    """Constraint rows ``lo <= A x <= hi`` built one row at a time (row-wise sparse)."""

    def __init__(self, ncols: int) -> None:
        self.ncols = ncols
        self.start: list[int] = [0]
        self.index: list[int] = []
        self.value: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, terms: list[tuple[int, float]], lo: float, hi: float) -> int:
        for col, val in terms:
            self.index.append(col)
            self.value.append(val)
        self.start.append(len(self.index))
        self.lo.append(lo)
        self.hi.append(hi)
        return len(self.lo) - 1

    @property
    def nnz(self) -> int:
        return len(self.index)

    def lp(
        self, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray, integer: np.ndarray | None
    ) -> highspy.HighsLp:
        """The model as a HiGHS LP (a MIP when ``integer`` marks integer columns)."""
        lp = highspy.HighsLp()
        lp.num_col_ = self.ncols
        lp.num_row_ = len(self.lo)
        lp.col_cost_ = np.asarray(cost, dtype=float)
        lp.col_lower_ = np.asarray(lower, dtype=float)
        lp.col_upper_ = np.asarray(upper, dtype=float)
        lp.row_lower_ = np.array(self.lo, dtype=float)
        lp.row_upper_ = np.array(self.hi, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = self.ncols
        lp.a_matrix_.num_row_ = len(self.lo)
        lp.a_matrix_.start_ = np.array(self.start, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(self.index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(self.value, dtype=float)
        if integer is not None:
            kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
            lp.integrality_ = [kinds[int(flag)] for flag in integer]
        return lp


def highs(threads: int | None, *, log: bool) -> highspy.Highs:
    """A HiGHS instance with its native log on stdout (or silent) and the job's threads."""
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", log)
    if threads:
        solver.setOptionValue("threads", threads)
    return solver


def job_threads() -> int | None:
    """The CPU threads the sandbox gave this job (``$SANDBOX_THREADS``), if it said."""
    try:
        value = int(os.environ.get("SANDBOX_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


class Progress:
    """What the MIP search has found so far, updated from HiGHS's callbacks.

    The callbacks run on the solver's thread; :meth:`snapshot` may be called from another (the
    ``on_stop`` callback), so every field is read and written under one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.x: np.ndarray | None = None  # the incumbent, one value per column
        self.objective = math.nan
        self.dual_bound = -math.inf
        self.gap = math.nan
        self.nodes = 0
        self.seconds = 0.0
        self.solutions = 0

    def improved(self, event: Any) -> None:
        """kCallbackMipImprovingSolution: keep the solution, print its metrics."""
        out = event.data_out
        with self._lock:
            self.x = np.array(out.mip_solution, dtype=float)
            self.objective = float(out.objective_function_value)
            self._bounds(out)
            self.solutions += 1
            values = {
                "mip_primal_bound": self.objective,
                "mip_dual_bound": self.dual_bound,
                "mip_gap": self.gap,
                "mip_nodes": float(self.nodes),
                "mip_time_s": self.seconds,
            }
        metric(**values)

    def interrupt(self, event: Any) -> None:
        """kCallbackMipInterrupt (called often): keep the latest bound and gap."""
        with self._lock:
            self._bounds(event.data_out)

    def _bounds(self, out: Any) -> None:
        self.dual_bound = float(out.mip_dual_bound)
        self.gap = float(out.mip_gap)
        self.nodes = int(out.mip_node_count)
        self.seconds = float(out.running_time)

    def snapshot(self) -> tuple[np.ndarray | None, float, float, float, int, float]:
        """``(x, objective, dual bound, gap, nodes, seconds)`` at this moment."""
        with self._lock:
            gap = self.gap
            if self.x is not None and math.isfinite(self.dual_bound):
                # HiGHS's relative gap, from the incumbent and the latest dual bound.
                gap = (self.objective - self.dual_bound) / max(abs(self.objective), 1e-9)
            return self.x, self.objective, self.dual_bound, gap, self.nodes, self.seconds


@dataclass
class Commitment:
    status: str  # optimal | time_limit | infeasible | error
    message: str
    u: np.ndarray | None = None  # (n, T) 0/1
    v: np.ndarray | None = None
    w: np.ndarray | None = None
    p: np.ndarray | None = None
    objective: float = math.nan
    gap: float = math.nan
    nodes: int = 0
    seconds: float = 0.0


def split(x: np.ndarray, n: int, periods: int) -> tuple[np.ndarray, ...]:
    """The MILP's columns as (u, v, w, p), each of shape (n, periods)."""
    nt = n * periods
    shape = (n, periods)
    u, v, w = (np.round(x[k * nt : (k + 1) * nt]).reshape(shape) for k in range(3))
    return u, v, w, x[3 * nt : 4 * nt].reshape(shape)


def solve_commitment(
    units: Fleet,
    load: np.ndarray,
    reserve_fraction: float,
    mip_gap: float,
    time_limit: float,
    *,
    progress: Progress | None = None,
    threads: int | None = None,
) -> Commitment:
    """The unit commitment MILP, solved by HiGHS with its native log on stdout."""
    n, periods = units.n, len(load)
    nt = n * periods
    progress = progress or Progress()

    def u(i: int, t: int) -> int:
        return i * periods + t

    def v(i: int, t: int) -> int:
        return nt + i * periods + t

    def w(i: int, t: int) -> int:
        return 2 * nt + i * periods + t

    def p(i: int, t: int) -> int:
        return 3 * nt + i * periods + t

    rows = Rows(4 * nt)
    inf = math.inf
    for t in range(periods):
        rows.add([(p(i, t), 1.0) for i in range(n)], load[t], load[t])
        reserve = [(u(i, t), units.pmax[i]) for i in range(n)]
        rows.add(reserve, load[t] * (1 + reserve_fraction), inf)
    for i in range(n):
        u0, p0 = units.u0[i], units.p0[i]
        ru, rd = units.ramp_up[i], units.ramp_down[i]
        sur, sdr = units.startup_ramp[i], units.shutdown_ramp[i]
        up, down = int(units.min_up[i]), int(units.min_down[i])
        for t in range(periods):
            rows.add([(p(i, t), 1.0), (u(i, t), -units.pmax[i])], -inf, 0.0)
            rows.add([(p(i, t), 1.0), (u(i, t), -units.pmin[i])], 0.0, inf)
            logic = [(u(i, t), 1.0), (v(i, t), -1.0), (w(i, t), 1.0)]
            if t == 0:
                rows.add(logic, u0, u0)
            else:
                rows.add([*logic, (u(i, t - 1), -1.0)], 0.0, 0.0)
            rows.add([(v(i, t), 1.0), (w(i, t), 1.0)], -inf, 1.0)
            window_up = [(v(i, s), 1.0) for s in range(max(0, t - up + 1), t + 1)]
            rows.add([*window_up, (u(i, t), -1.0)], -inf, 0.0)
            window_down = [(w(i, s), 1.0) for s in range(max(0, t - down + 1), t + 1)]
            rows.add([*window_down, (u(i, t), 1.0)], -inf, 1.0)
            if t == 0:
                rows.add([(p(i, 0), 1.0), (v(i, 0), -sur)], -inf, p0 + ru * u0)
                rows.add([(p(i, 0), -1.0), (u(i, 0), -rd), (w(i, 0), -sdr)], -inf, -p0)
            else:
                ramp_up = [(p(i, t), 1.0), (p(i, t - 1), -1.0), (u(i, t - 1), -ru), (v(i, t), -sur)]
                rows.add(ramp_up, -inf, 0.0)
                ramp_dn = [(p(i, t - 1), 1.0), (p(i, t), -1.0), (u(i, t), -rd), (w(i, t), -sdr)]
                rows.add(ramp_dn, -inf, 0.0)

    lower = np.zeros(4 * nt)
    upper = np.ones(4 * nt)
    upper[3 * nt :] = np.repeat(units.pmax, periods)
    forced = []
    for i, hours in enumerate(must_keep_initial_status(units)):
        on = units.u0[i] == 1
        for t in range(min(periods, hours)):
            if on:
                lower[u(i, t)] = 1.0
            else:
                upper[u(i, t)] = 0.0
        if hours:
            forced.append(f"{units.names[i]} {'on' if on else 'off'} for {hours} h")
    if forced:
        log("initial status and minimum up/down times keep " + ", ".join(forced))

    cost = np.concatenate(
        [
            np.repeat(units.noload, periods),
            np.repeat(units.startup, periods),
            np.zeros(nt),
            np.repeat(units.mc, periods),
        ]
    )
    integer = np.concatenate([np.ones(3 * nt), np.zeros(nt)])
    log(
        f"MILP: {4 * nt} variables ({3 * nt} binary), {len(rows.lo)} constraints, "
        f"{rows.nnz} nonzeros; HiGHS gap {mip_gap:g}, time limit {time_limit:g} s"
        + (f", {threads} thread(s)" if threads else "")
    )
    solver = highs(threads, log=True)
    solver.setOptionValue("mip_rel_gap", mip_gap)
    solver.setOptionValue("time_limit", time_limit)
    solver.passModel(rows.lp(cost, lower, upper, integer))
    solver.cbMipImprovingSolution.subscribe(progress.improved)
    solver.cbMipInterrupt.subscribe(progress.interrupt)
    start = time.perf_counter()
    solver.run()
    seconds = time.perf_counter() - start
    sys.stdout.flush()
    status = solver.getModelStatus()
    info = solver.getInfo()
    message = solver.modelStatusToString(status)
    nodes = int(info.mip_node_count)
    gap = float(info.mip_gap) if info.primal_solution_status == 2 else math.nan
    if status == highspy.HighsModelStatus.kInfeasible:
        return Commitment("infeasible", message, seconds=seconds, nodes=nodes)
    if info.primal_solution_status != 2:  # no feasible solution
        kind = "time_limit" if status == highspy.HighsModelStatus.kTimeLimit else "error"
        return Commitment(kind, message, seconds=seconds, nodes=nodes)
    x = np.array(solver.getSolution().col_value, dtype=float)
    uu, vv, ww, pp = split(x, n, periods)
    return Commitment(
        "optimal" if status == highspy.HighsModelStatus.kOptimal else "time_limit",
        message,
        u=uu,
        v=vv,
        w=ww,
        p=pp,
        objective=float(info.objective_function_value),
        gap=gap,
        nodes=nodes,
        seconds=seconds,
    )


@dataclass
class Dispatch:
    p: np.ndarray  # (n, T) MW
    prices: np.ndarray  # (T,) $/MWh
    energy_cost: float


def solve_dispatch(
    units: Fleet, load: np.ndarray, plan: Commitment, threads: int | None = None
) -> Dispatch:
    """The dispatch LP for a fixed commitment; prices are the power-balance duals."""
    assert plan.u is not None and plan.v is not None and plan.w is not None
    n, periods = units.n, len(load)
    u, v, w = plan.u, plan.v, plan.w

    def p(i: int, t: int) -> int:
        return i * periods + t

    rows = Rows(n * periods)
    for t in range(periods):  # rows 0..T-1: the balance, whose duals are the prices
        rows.add([(p(i, t), 1.0) for i in range(n)], load[t], load[t])
    for i in range(n):
        ru, rd = units.ramp_up[i], units.ramp_down[i]
        sur, sdr = units.startup_ramp[i], units.shutdown_ramp[i]
        for t in range(periods):
            prev_u = units.u0[i] if t == 0 else u[i, t - 1]
            up_room = ru * prev_u + sur * v[i, t]
            down_room = rd * u[i, t] + sdr * w[i, t]
            if t == 0:
                rows.add([(p(i, 0), 1.0)], -math.inf, units.p0[i] + up_room)
                rows.add([(p(i, 0), -1.0)], -math.inf, down_room - units.p0[i])
            else:
                rows.add([(p(i, t), 1.0), (p(i, t - 1), -1.0)], -math.inf, up_room)
                rows.add([(p(i, t - 1), 1.0), (p(i, t), -1.0)], -math.inf, down_room)
    lower = (units.pmin[:, None] * u).ravel()
    upper = (units.pmax[:, None] * u).ravel()
    solver = highs(threads, log=False)
    solver.passModel(rows.lp(np.repeat(units.mc, periods), lower, upper, None))
    solver.run()
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        text = solver.modelStatusToString(status)
        raise RuntimeError(f"dispatch LP with the commitment fixed failed: {text}")
    solution = solver.getSolution()
    # HiGHS's row dual is d(objective)/d(row bound); the balance rows read
    # sum_i p[i,t] = load[t], so it is the cost of one more MWh of load in hour t: the price.
    prices = np.array(solution.row_dual[:periods], dtype=float)
    x = np.array(solution.col_value, dtype=float)
    return Dispatch(x.reshape(n, periods), prices, float(solver.getInfo().objective_function_value))


def best_so_far(
    folder: Path, units: Fleet, load: np.ndarray, progress: Progress
) -> Callable[[str], None]:
    """The ``on_stop`` callback: save the incumbent when the sandbox stops the job."""

    def save(reason: str) -> None:
        x, objective, bound, gap, nodes, seconds = progress.snapshot()
        outcome = "time_limit" if reason == "timeout" else "interrupted"
        why = {"timeout": "the job's timeout", "cancel": "a cancel"}.get(reason, "SIGTERM")
        if x is None:
            message = f"{outcome}: stopped by {why} before HiGHS found a commitment"
            log(message, "WARNING")
            write_result(folder, outcome=outcome, message=message, metrics={"mip_nodes": nodes})
            return
        u, v, _, p = split(x, units.n, len(load))
        hours = range(len(load))
        write_csv(
            folder / "commitment.csv",
            ["hour", *units.names],
            [[t, *(int(u[i, t]) for i in range(units.n))] for t in hours],
        )
        write_csv(
            folder / "dispatch.csv",
            ["hour", *units.names],
            [[t, *(clean(p[i, t]) for i in range(units.n))] for t in hours],
        )
        message = (
            f"{outcome}: stopped by {why}; best commitment found: total cost ${objective:,.0f}, "
            f"gap {gap:.2%} ({int(v.sum())} start-ups; prices not computed)"
        )
        log(message, "WARNING")
        write_result(
            folder,
            outcome=outcome,
            objective=objective,
            metrics={
                "total_cost": objective,
                "mip_gap": gap,
                "mip_dual_bound": bound,
                "mip_nodes": nodes,
                "solve_time_s": seconds,
                "startups": int(v.sum()),
            },
            tables={"commitment": "commitment.csv", "dispatch": "dispatch.csv"},
            message=message,
        )

    return save


def register_stop(callback: Callable[[str], None]) -> None:
    """Have the sandbox's SIGTERM run ``callback`` (needs sandbox_kit importable)."""
    try:
        from sandbox_kit.model_api import on_stop
    except ImportError:
        log("sandbox_kit is not importable: a timeout or cancel loses the incumbent", "WARNING")
        return
    on_stop(callback)


def run(folder: Path) -> int:
    log(f"DMO day-ahead unit commitment, job {os.environ.get('JOB_ID', '(local run)')}")
    try:
        cfg = read_config()
    except ConfigError as exc:
        log(str(exc), "ERROR")
        write_result(folder, outcome="error", message=str(exc))
        return 2
    if os.environ.get("DATA_SOURCE_DIR"):
        log("DATA_SOURCE_DIR is set but the day-ahead model reads no data source; ignored")

    copies = int(cfg["fleets"])
    units = fleet(copies)
    days = int(cfg["days"])
    growth = np.repeat(np.array(DAY_FACTORS[:days]), len(LOAD_PROFILE)) * copies
    load = np.tile(np.array(LOAD_PROFILE, dtype=float), days) * growth * cfg["load_scale"]
    periods = len(load)
    capacity = float(units.pmax.sum())
    log(
        f"{units.n} units, {capacity:.0f} MW installed; {periods} hours; load "
        f"{load.min():.0f}-{load.max():.0f} MW (load_scale {cfg['load_scale']:g}), "
        f"reserve {cfg['reserve_fraction']:.0%} of load"
    )
    metric(units=units.n, periods=periods, peak_load=float(load.max()), capacity=capacity)

    shortfalls = capacity_shortfalls(units, load, cfg["reserve_fraction"])
    if shortfalls:
        t, d, r = max(shortfalls, key=lambda s: s[1])
        message = (
            f"infeasible: hour {t}: load {d:.0f} MW + reserve {r:.0f} MW exceeds capacity "
            f"{capacity:.0f} MW ({len(shortfalls)} of {periods} hours short of capacity)"
        )
        log(message, "ERROR")
        write_result(
            folder, outcome="infeasible", message=message, metrics={"hours_short": len(shortfalls)}
        )
        return 0
    tight = [t for t, d in enumerate(load) if d * (1 + cfg["reserve_fraction"]) > 0.95 * capacity]
    if tight:
        log(f"load + reserve is above 95% of capacity in hours {tight}", "WARNING")

    threads = job_threads()
    progress = Progress()
    register_stop(best_so_far(folder, units, load, progress))
    plan = solve_commitment(
        units,
        load,
        cfg["reserve_fraction"],
        cfg["mip_gap"],
        cfg["time_limit"],
        progress=progress,
        threads=threads,
    )
    metric(solve_time=plan.seconds, mip_gap=plan.gap, mip_nodes=plan.nodes)
    if plan.status == "infeasible":
        message = (
            "infeasible: HiGHS proved the unit commitment infeasible; capacity covers load and "
            "reserve in every hour, so the ramp, minimum up/down or initial-status limits "
            "cannot follow the load"
        )
        log(message, "ERROR")
        write_result(
            folder, outcome="infeasible", message=message, metrics={"solve_time_s": plan.seconds}
        )
        return 0
    if plan.u is None:
        message = f"no commitment found: {plan.message}"
        log(message, "ERROR")
        write_result(
            folder, outcome=plan.status, message=message, metrics={"solve_time_s": plan.seconds}
        )
        return 0 if plan.status == "time_limit" else 1
    if plan.status == "time_limit":
        log(
            f"time limit reached; keeping the best commitment found (gap {plan.gap:.2%})", "WARNING"
        )
    log(
        f"MILP {plan.status}: cost ${plan.objective:,.2f}, gap {plan.gap:.2e}, {plan.seconds:.2f} s"
    )

    dispatch = solve_dispatch(units, load, plan, threads)
    assert plan.v is not None
    noload_cost = float(np.sum(units.noload[:, None] * plan.u))
    startup_cost = float(np.sum(units.startup[:, None] * plan.v))
    total_cost = dispatch.energy_cost + noload_cost + startup_cost
    prices = dispatch.prices
    log(
        f"dispatch LP with commitment fixed: energy ${dispatch.energy_cost:,.2f} + no-load "
        f"${noload_cost:,.2f} + start-up ${startup_cost:,.2f} = ${total_cost:,.2f}"
    )
    if total_cost > plan.objective + 1e-6 * abs(plan.objective) + 1e-6:
        log(f"re-dispatch cost exceeds the MILP's ${plan.objective:,.2f}", "WARNING")
    starts = int(plan.v.sum())
    for i, name in enumerate(units.names):
        hours_on = int(plan.u[i].sum())
        if hours_on:
            mwh = float(dispatch.p[i].sum())
            log(f"  {name:7s} on {hours_on:2d} h, {mwh:8.1f} MWh, {int(plan.v[i].sum())} start(s)")
    peak = int(np.argmax(prices))
    log(
        f"prices ${prices.min():.2f}-${prices.max():.2f}/MWh (peak at hour {peak}), "
        f"load-weighted average ${float(prices @ load / load.sum()):.2f}/MWh; {starts} start-ups"
    )
    if np.any(prices < -TOL):
        log("negative prices: minimum output or ramp limits bind", "WARNING")
    avg_price = float(prices @ load / load.sum())
    metrics = {
        "total_cost": total_cost,
        "energy_cost": dispatch.energy_cost,
        "noload_cost": noload_cost,
        "startup_cost": startup_cost,
        "peak_price": float(prices.max()),
        "avg_price": avg_price,
        "solve_time_s": plan.seconds,
        "mip_gap": plan.gap,
        "mip_nodes": plan.nodes,
        "startups": starts,
    }
    metric(total_cost=total_cost, peak_price=float(prices.max()), avg_price=avg_price)

    hours = range(periods)
    write_csv(
        folder / "commitment.csv",
        ["hour", *units.names],
        [[t, *(int(plan.u[i, t]) for i in range(units.n))] for t in hours],
    )
    write_csv(
        folder / "dispatch.csv",
        ["hour", *units.names],
        [[t, *(clean(dispatch.p[i, t]) for i in range(units.n))] for t in hours],
    )
    write_csv(folder / "prices.csv", ["hour", "price"], [[t, clean(prices[t])] for t in hours])
    message = (
        f"{plan.status}: {periods} h commitment of {units.n} units, total cost ${total_cost:,.0f} "
        f"({starts} start-ups), prices ${prices.min():.2f}-${prices.max():.2f}/MWh"
    )
    write_result(
        folder,
        outcome=plan.status,
        objective=total_cost,
        metrics=metrics,
        tables={"commitment": "commitment.csv", "dispatch": "dispatch.csv", "prices": "prices.csv"},
        message=message,
    )
    log(f"results written to {folder}")
    return 0


def main() -> int:
    folder = result_dir()
    try:
        return run(folder)
    except Exception as exc:  # report the failure in the results protocol, then re-raise
        message = f"{type(exc).__name__}: {exc}"
        log(f"model failed: {message}", "ERROR")
        write_result(folder, outcome="error", message=message)
        raise


if __name__ == "__main__":
    sys.exit(main())

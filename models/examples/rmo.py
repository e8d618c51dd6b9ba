"""Real-time economic dispatch (an RMO sample model for sandbox_kit).

Dispatches the committed units of the day-ahead fleet over one hour in twelve 5-minute
intervals, following the real-time load (the day-ahead forecast plus a forecast error):

    min  sum_k sum_i mc_i * p[i,k] * (5/60)
    s.t. sum_i p[i,k] = load[k]                                       (power balance)
         pmin_i <= p[i,k] <= pmax_i  for committed units, p[i,k] = 0 otherwise
         -ramp_down_i / 12 <= p[i,k] - p[i,k-1] <= ramp_up_i / 12      (5-minute ramps)

The first interval is dispatched freely within the unit limits (no telemetry of the output at
the start of the hour is modelled); the ramp limits couple the twelve intervals.

Commitment: when ``DATA_SOURCE_DIR`` (the result folder of a DMO run) holds ``commitment.csv``,
the row of the chosen hour is used; otherwise a merit-order commitment is built (cheapest units
first until committed capacity covers the hour's peak load plus 10%). The log says which.

Load: the DMO's hourly profile (times ``load_scale``) is interpolated linearly between hour
midpoints to 5-minute values (wrapping around midnight); the real-time load is that forecast
times ``1 + forecast_error * z[k]``, where z is a unit-variance AR(1) series (coefficient 0.9)
drawn from ``numpy.random.RandomState(seed)`` (a stream numpy keeps stable across versions).

The LP is solved with HiGHS through its own Python API, ``highspy`` (``threads`` set to
``$SANDBOX_THREADS`` when the sandbox gives it). Prices are the HiGHS row duals of the
power-balance rows (d cost / d load). The LP objective is written as a cost rate in $/h so the
duals are in $/MWh; the reported objective is the energy cost of the hour in $ (rate / 12
summed over intervals).

CONFIG (JSON object, all optional):
    hour            hour of the DMO day to dispatch, 0-23 (default 17)
    load_scale      multiplies the load profile (default 1.0)
    forecast_error  relative size of the forecast error (default 0.02)
    seed            seed of the forecast-error series (default 0)

Outputs in $SANDBOX_RESULT_DIR (./result when unset): result.json, dispatch.csv, prices.csv
and load.csv. Load the committed units cannot serve is an answer, not a failure: outcome
"infeasible", exit status 0. A bad CONFIG exits with status 2 and an unexpected failure with 1,
both with outcome "error".
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highspy
import numpy as np

# The same fleet as the DMO sample (each sample model is a single file, so it is repeated).
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

# The DMO's hourly load in MW (hours starting 00:00 ... 23:00).
LOAD_PROFILE: tuple[float, ...] = (
    978, 937, 906, 893, 911, 992, 1148, 1302, 1403, 1466, 1502, 1521,
    1512, 1497, 1486, 1507, 1571, 1672, 1749, 1731, 1652, 1508, 1322, 1137,
)  # fmt: skip

INTERVALS = 12  # 5-minute intervals in the hour
DEFAULT_RESERVE = 0.1  # headroom of the default commitment
DEFAULTS: dict[str, float] = {"hour": 17, "load_scale": 1.0, "forecast_error": 0.02, "seed": 0}
AR_COEFFICIENT = 0.9
TOL = 1e-6


class ConfigError(ValueError):
    """The CONFIG object is unusable."""


@dataclass(frozen=True)
class Fleet:
    names: list[str]
    pmin: np.ndarray
    pmax: np.ndarray
    mc: np.ndarray
    ramp_up: np.ndarray
    ramp_down: np.ndarray

    @property
    def n(self) -> int:
        return len(self.names)


def fleet() -> Fleet:
    cols = list(zip(*UNIT_TABLE, strict=True))

    def col(k: int) -> np.ndarray:
        return np.array(cols[k], dtype=float)

    return Fleet([str(n) for n in cols[0]], col(1), col(2), col(3), col(8), col(9))


def log(message: str, level: str = "INFO") -> None:
    print(f"{level}: {message}", flush=True)


def metric(**values: float) -> None:
    """A live metric line; values that are not finite numbers are left out."""
    pairs = [f"{k}={v:.6g}" for k, v in values.items() if math.isfinite(v)]
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
    if cfg["hour"] != int(cfg["hour"]) or not 0 <= cfg["hour"] <= len(LOAD_PROFILE) - 1:
        raise ConfigError(f"CONFIG hour must be an integer 0-{len(LOAD_PROFILE) - 1}")
    if cfg["seed"] != int(cfg["seed"]) or cfg["seed"] < 0:
        raise ConfigError("CONFIG seed must be a non-negative integer")
    if cfg["load_scale"] <= 0:
        raise ConfigError("CONFIG load_scale must be positive")
    if not 0 <= cfg["forecast_error"] < 1:
        raise ConfigError("CONFIG forecast_error must be in [0, 1)")
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
    (folder / "result.json").write_text(text + "\n", encoding="utf-8")


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def clean(x: float, digits: int = 6) -> float:
    value = round(float(x), digits)
    return 0.0 if value == 0 else value


def clock(hour: int, k: int) -> str:
    minutes = 5 * k
    return f"{hour:02d}:{minutes:02d}"


def load_forecast(hour: int, load_scale: float) -> np.ndarray:
    """5-minute forecast for the hour: the hourly profile interpolated between hour midpoints."""
    hourly = np.array(LOAD_PROFILE, dtype=float) * load_scale
    n = len(hourly)
    times = hour + (np.arange(INTERVALS) + 0.5) / INTERVALS  # interval midpoints, in hours
    midpoints = np.arange(-1, n + 1) + 0.5
    values = np.concatenate([[hourly[-1]], hourly, [hourly[0]]])  # wrap around midnight
    return np.interp(times, midpoints, values)


def forecast_errors(seed: int) -> np.ndarray:
    """A unit-variance AR(1) series, one value per interval."""
    noise = np.random.RandomState(seed).standard_normal(INTERVALS)
    z = np.empty(INTERVALS)
    z[0] = noise[0]
    scale = math.sqrt(1 - AR_COEFFICIENT**2)
    for k in range(1, INTERVALS):
        z[k] = AR_COEFFICIENT * z[k - 1] + scale * noise[k]
    return z


def default_commitment(units: Fleet, peak_load: float) -> np.ndarray:
    """Cheapest units first until committed capacity covers the peak load plus the reserve."""
    on = np.zeros(units.n)
    capacity = 0.0
    for i in np.argsort(units.mc, kind="stable"):
        if capacity >= peak_load * (1 + DEFAULT_RESERVE):
            break
        on[i] = 1.0
        capacity += units.pmax[i]
    return on


def commitment_from(source: Path, hour: int, units: Fleet) -> tuple[np.ndarray | None, str]:
    """The hour's row of ``commitment.csv`` in a DMO result folder, or None and why not."""
    path = source / "commitment.csv"
    if not path.is_file():
        return None, f"no commitment.csv in DATA_SOURCE_DIR {source}"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return None, f"cannot read {path}: {exc}"
    missing = [name for name in units.names if rows and name not in rows[0]]
    if not rows or missing:
        return None, f"{path} does not describe this fleet (missing units {missing})"
    for row in rows:
        if str(row.get("hour", "")).strip() == str(hour):
            try:
                values = np.array([float(row[name]) for name in units.names])
            except ValueError as exc:
                return None, f"{path} hour {hour}: {exc}"
            if not np.all(np.isin(values, (0.0, 1.0))):
                return None, f"{path} hour {hour}: commitment values must be 0 or 1"
            return values, f"{path} hour {hour}"
    return None, f"{path} has no row for hour {hour}"


def infeasibility(units: Fleet, on: np.ndarray, load: np.ndarray, hour: int) -> str | None:
    """Why the committed units cannot serve the load in some interval, or None."""
    committed_max = float(units.pmax @ on)
    committed_min = float(units.pmin @ on)
    fleet_max = float(units.pmax.sum())
    k = int(np.argmax(load))
    if load[k] > committed_max + TOL:
        short = int(np.sum(load > committed_max + TOL))
        where = "" if committed_max == fleet_max else f" (the whole fleet has {fleet_max:.0f} MW)"
        return (
            f"interval {k} ({clock(hour, k)}): load {load[k]:.0f} MW exceeds the committed "
            f"capacity {committed_max:.0f} MW{where}; {short} of {INTERVALS} intervals short"
        )
    k = int(np.argmin(load))
    if load[k] < committed_min - TOL:
        return (
            f"interval {k} ({clock(hour, k)}): load {load[k]:.0f} MW is below the committed "
            f"units' minimum output {committed_min:.0f} MW"
        )
    return None


@dataclass
class Dispatch:
    status: int  # 0 optimal, 1 other failure, 2 infeasible
    message: str
    p: np.ndarray | None = None  # (n, K) MW
    prices: np.ndarray | None = None  # (K,) $/MWh
    cost: float = math.nan  # $ for the hour
    seconds: float = 0.0


def solve_dispatch(units: Fleet, on: np.ndarray, load: np.ndarray) -> Dispatch:
    """The multi-interval economic dispatch LP; prices are the power-balance duals."""
    n, periods = units.n, len(load)

    def p(i: int, k: int) -> int:
        return i * periods + k

    start: list[int] = [0]
    index: list[int] = []
    value: list[float] = []
    lower_rows: list[float] = []
    upper_rows: list[float] = []

    def add(terms: list[tuple[int, float]], lo: float, hi: float) -> None:
        for col, coefficient in terms:
            index.append(col)
            value.append(coefficient)
        start.append(len(index))
        lower_rows.append(lo)
        upper_rows.append(hi)

    for k in range(periods):  # rows 0..K-1: the balance, whose duals are the prices
        add([(p(i, k), 1.0) for i in range(n)], load[k], load[k])
    for i in range(n):
        if not on[i]:
            continue
        up, down = units.ramp_up[i] / INTERVALS, units.ramp_down[i] / INTERVALS
        for k in range(1, periods):
            add([(p(i, k), 1.0), (p(i, k - 1), -1.0)], -down, up)  # 5-minute ramps
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n * periods, len(lower_rows)
    lp.col_cost_ = np.repeat(units.mc, periods)  # $/h cost rate, so balance duals are in $/MWh
    lp.col_lower_ = np.repeat(units.pmin * on, periods)
    lp.col_upper_ = np.repeat(units.pmax * on, periods)
    lp.row_lower_ = np.array(lower_rows, dtype=float)
    lp.row_upper_ = np.array(upper_rows, dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = lp.num_col_, lp.num_row_
    lp.a_matrix_.start_ = np.array(start, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    if threads := job_threads():
        solver.setOptionValue("threads", threads)
    solver.passModel(lp)
    begin = time.perf_counter()
    solver.run()
    seconds = time.perf_counter() - begin
    status = solver.getModelStatus()
    message = solver.modelStatusToString(status)
    if status == highspy.HighsModelStatus.kInfeasible:
        return Dispatch(2, message, seconds=seconds)
    if status != highspy.HighsModelStatus.kOptimal:
        return Dispatch(1, message, seconds=seconds)
    solution = solver.getSolution()
    return Dispatch(
        0,
        message,
        p=np.array(solution.col_value, dtype=float).reshape(n, periods),
        # HiGHS's row dual: d(objective)/d(row bound), here the cost of one more MW of load.
        prices=np.array(solution.row_dual[:periods], dtype=float),
        cost=float(solver.getInfo().objective_function_value) / INTERVALS,
        seconds=seconds,
    )


def job_threads() -> int | None:
    """The CPU threads the sandbox gave this job (``$SANDBOX_THREADS``), if it said."""
    try:
        value = int(os.environ.get("SANDBOX_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def day_ahead_price(source: Path, hour: int) -> float | None:
    path = source / "prices.csv"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if str(row.get("hour", "")).strip() == str(hour):
                    return float(row["price"])
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, ValueError):
        return None
    return None


def run(folder: Path) -> int:
    log(f"RMO real-time economic dispatch, job {os.environ.get('JOB_ID', '(local run)')}")
    try:
        cfg = read_config()
    except ConfigError as exc:
        log(str(exc), "ERROR")
        write_result(folder, outcome="error", message=str(exc))
        return 2
    hour = int(cfg["hour"])
    units = fleet()
    forecast = load_forecast(hour, cfg["load_scale"])
    z = forecast_errors(int(cfg["seed"]))
    load = forecast * (1 + cfg["forecast_error"] * z)
    log(
        f"hour {hour:02d}:00-{hour + 1:02d}:00 in {INTERVALS} x 5 min; forecast "
        f"{forecast.min():.0f}-{forecast.max():.0f} MW, real-time load {load.min():.0f}-"
        f"{load.max():.0f} MW (forecast error {cfg['forecast_error']:.1%}, seed {int(cfg['seed'])})"
    )
    metric(units=units.n, intervals=INTERVALS, peak_load=float(load.max()))

    source_dir = os.environ.get("DATA_SOURCE_DIR")
    on: np.ndarray | None = None
    source = Path(source_dir) if source_dir else None
    if source is not None:
        on, where = commitment_from(source, hour, units)
        if on is None:
            log(f"{where}; falling back to the default commitment", "WARNING")
        else:
            log(f"commitment read from DATA_SOURCE_DIR: {where}")
    else:
        log("no DATA_SOURCE_DIR: using the default merit-order commitment")
    if on is None:
        on = default_commitment(units, float(load.max()))
        origin = "default"
    else:
        origin = "data source"
    committed = [name for name, flag in zip(units.names, on, strict=True) if flag]
    log(
        f"{origin} commitment: {', '.join(committed) or 'none'} "
        f"({units.pmin @ on:.0f}-{units.pmax @ on:.0f} MW)"
    )
    metric(committed_units=len(committed))

    why = infeasibility(units, on, load, hour)
    if why is not None:
        message = f"infeasible: {why}"
        log(message, "ERROR")
        write_result(folder, outcome="infeasible", message=message)
        return 0

    result = solve_dispatch(units, on, load)
    metric(solve_time=result.seconds)
    if result.status == 2 or result.p is None or result.prices is None:
        if result.status == 2:
            message = (
                "infeasible: the committed units' 5-minute ramp limits cannot follow the load "
                f"({result.message})"
            )
            outcome = "infeasible"
        else:
            message = f"dispatch LP failed: {result.message}"
            outcome = "error"
        log(message, "ERROR")
        write_result(folder, outcome=outcome, message=message)
        return 0 if outcome == "infeasible" else 1
    prices = result.prices
    energy = float(load.sum()) / INTERVALS
    avg_price = float(prices @ load / load.sum())
    log(
        f"LP optimal in {result.seconds:.3f} s: energy cost ${result.cost:,.2f} for "
        f"{energy:.1f} MWh; prices ${prices.min():.2f}-${prices.max():.2f}/MWh, "
        f"load-weighted average ${avg_price:.2f}/MWh"
    )
    for k in range(INTERVALS):
        log(
            f"  {clock(hour, k)}  load {load[k]:7.1f} MW (forecast {forecast[k]:7.1f})  "
            f"price ${prices[k]:6.2f}/MWh"
        )
    metrics = {
        "total_cost": result.cost,
        "energy_mwh": energy,
        "avg_price": avg_price,
        "max_price": float(prices.max()),
        "min_price": float(prices.min()),
        "committed_units": len(committed),
        "solve_time_s": result.seconds,
    }
    if source is not None and origin == "data source":
        da = day_ahead_price(source, hour)
        if da is not None:
            log(f"day-ahead price for hour {hour} was ${da:.2f}/MWh")
            metrics["day_ahead_price"] = da
    metric(total_cost=result.cost, avg_price=avg_price, max_price=float(prices.max()))

    intervals = range(INTERVALS)
    write_csv(
        folder / "dispatch.csv",
        ["interval", *units.names],
        [[k, *(clean(result.p[i, k]) for i in range(units.n))] for k in intervals],
    )
    write_csv(
        folder / "prices.csv", ["interval", "price"], [[k, clean(prices[k])] for k in intervals]
    )
    write_csv(
        folder / "load.csv",
        ["interval", "time", "forecast", "load"],
        [[k, clock(hour, k), clean(forecast[k]), clean(load[k])] for k in intervals],
    )
    message = (
        f"optimal: hour {hour} in {INTERVALS} intervals with the {origin} commitment "
        f"({len(committed)} units), energy cost ${result.cost:,.0f}, prices "
        f"${prices.min():.2f}-${prices.max():.2f}/MWh"
    )
    write_result(
        folder,
        outcome="optimal",
        objective=result.cost,
        metrics=metrics,
        tables={"dispatch": "dispatch.csv", "prices": "prices.csv", "load": "load.csv"},
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

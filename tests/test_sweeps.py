"""Scenario sweeps (issue 11): grids and cases, one job per scenario, the table, the cache,
cancel, and a 3 x 2 sweep of the real DMO through the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox_kit import Sandbox, Settings
from sandbox_kit.errors import RunError, ValidationError
from sandbox_kit.sweeps import plan, read_cases
from tests.conftest import ROOT, cli, script


def test_a_grid_is_the_cartesian_product_in_the_order_given() -> None:
    found = plan(
        grid={"load_scale": [0.9, 1.0, 1.1], "reserve_fraction": [0.05, 0.1]},
        cases=None,
        base_config={"days": 1, "load_scale": 5},
        max_scenarios=10,
    )
    assert found.params == ("load_scale", "reserve_fraction")
    assert found.scenarios[:3] == [
        {"load_scale": 0.9, "reserve_fraction": 0.05},
        {"load_scale": 0.9, "reserve_fraction": 0.1},
        {"load_scale": 1.0, "reserve_fraction": 0.05},
    ]
    assert len(found.configs) == 6
    assert found.configs[-1] == {"days": 1, "load_scale": 1.1, "reserve_fraction": 0.1}


@pytest.mark.parametrize(
    ("grid", "cases", "base", "message"),
    [
        (None, None, None, "give a grid"),
        ({"x": [1]}, [{"x": 1}], None, "give a grid"),
        ({}, None, None, "non-empty JSON object"),
        ({"x": 1}, None, None, "grid entry 'x' must be a non-empty list"),
        ({"x": []}, None, None, "grid entry 'x' must be a non-empty list"),
        ({"x": [1, 2, 3], "y": [1, 2]}, None, None, "6 scenarios, more than the limit of 5"),
        (None, [], None, "the list of cases is empty"),
        (None, [{"x": 1}, [2]], None, "case 2 must be a JSON object"),
        ({"x": [1]}, None, [1], "the base config must be a JSON object"),
        ({"x": [float("nan")]}, None, None, "scenario 1 is not JSON-serialisable"),
    ],
)
def test_bad_plans_are_refused(grid: object, cases: object, base: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        plan(grid=grid, cases=cases, base_config=base, max_scenarios=5)  # type: ignore[arg-type]


def test_cases_are_json_lines() -> None:
    assert read_cases('{"x": 1}\n\n{"x": 2, "y": "a"}\n', filename="c.jsonl") == [
        {"x": 1},
        {"x": 2, "y": "a"},
    ]
    with pytest.raises(ValidationError, match=r"c\.jsonl, line 2, column 7: invalid JSON"):
        read_cases('{"x": 1}\n{"x": }\n', filename="c.jsonl")
    with pytest.raises(ValidationError, match=r"c\.jsonl, line 1: each line must be a JSON object"):
        read_cases("[1]\n", filename="c.jsonl")


def test_a_sweep_runs_each_scenario_and_reruns_from_the_cache(sandbox: Sandbox) -> None:
    model = sandbox.upload(script("outcome_writer.py"), "DMO").id
    sweep = sandbox.sweep(model, {"objective": [1, 2, 3], "scale": [1.0, 2.0]}, cache=True)
    info = sweep.wait(timeout=120)
    assert (info.total, info.done, info.counts) == (6, 6, {"success": 6})
    rows = sweep.rows()
    assert [r.params for r in rows][:2] == [
        {"objective": 1, "scale": 1.0},
        {"objective": 1, "scale": 2.0},
    ]
    assert [r.objective for r in rows] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert [job.info.sweep_id for job in sweep.jobs()] == [sweep.id] * 6
    table = sweep.table()
    # The parameters, then the job and its results; a parameter named like a result column
    # (here "objective" and the metric "scale") is shown as config.<name>.
    assert list(table.columns) == [
        "config.objective",
        "config.scale",
        "job_id",
        "status",
        "outcome",
        "objective",
        "cached_from",
        "scale",
    ]
    assert table["objective"].tolist() == table["config.objective"].astype(float).tolist()
    again = sandbox.sweep(model, {"objective": [1, 2, 3], "scale": [1.0, 2.0]}, cache=True)
    assert again.info.finished  # every scenario was a hit: done before wait()
    assert [r.cached_from for r in again.rows()] == [r.job_id for r in rows]
    assert [s.id for s in sandbox.sweeps()] == [again.id, sweep.id]
    assert [e.object_id for e in sandbox.audit(action="sweep")] == [again.id, sweep.id]
    shown = again.to_dict()
    assert {"id", "target", "total", "done", "rows"} <= set(shown)
    assert set(shown["rows"][0]) >= {"config", "job_id", "status", "outcome", "objective"}


def test_the_scenario_limit(home: Path) -> None:
    sb = Sandbox(home=home, settings=Settings(sweep_max_scenarios=2))
    try:
        model = sb.upload(script("outcome_writer.py"), "DMO").id
        with pytest.raises(ValidationError, match="more than the limit of 2"):
            sb.sweep(model, {"objective": [1, 2, 3]})
        assert sb.sweeps() == [] and sb.jobs() == []
    finally:
        sb.close()


def test_a_scenario_the_database_refuses_leaves_a_sweep_of_those_queued(home: Path) -> None:
    sb = Sandbox(home=home)
    try:
        model = sb.upload(script("outcome_writer.py"), "DMO").id
        with sb.lifecycle.conn.write() as st:  # a real refusal, from the database itself
            st.run(
                "CREATE TRIGGER refuse_third BEFORE INSERT ON jobs WHEN NEW.sweep_index >= 2 "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        with pytest.raises(RunError, match=r"2 of 4 scenarios were queued, then scenario 3 fa"):
            sb.sweep(model, {"objective": [1, 2, 3, 4]})
        (sweep,) = [sb.get_sweep(info.id) for info in sb.sweeps()]
        assert sweep.info.total == 2
        sweep.wait(timeout=60)  # it ends: it waits for no scenario that was never queued
        assert [row.status.value for row in sweep.rows()] == ["success", "success"]
    finally:
        sb.close()


def test_sweep_commands_and_cancel(home: Path, tmp_path: Path) -> None:
    assert (
        cli("upload", str(script("outcome_writer.py")), "--type", "DMO", home=home).returncode == 0
    )
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"objective": 1}\n' + '{"objective": 2, "sleep": 60}\n' * 3)
    one_at_a_time = {"SANDBOX_MAX_RUNNING": "1"}
    started = cli("sweep", "DMO", "--cases", str(cases), home=home, env=one_at_a_time)
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.strip().splitlines()[-1]
    assert sweep_id.startswith("sweep_") and "4 scenario(s)" in started.stderr

    def show() -> Any:
        done = cli("sweep", "show", sweep_id, "--json", home=home, env=one_at_a_time)
        return json.loads(done.stdout)

    deadline = time.monotonic() + 60
    while show()["rows"][0]["status"] != "success":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled = cli("sweep", "cancel", sweep_id, home=home)
    assert "cancelled 3 scenario(s)" in cancelled.stdout
    deadline = time.monotonic() + 60
    while (final := show())["done"] != 4:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [r["status"] for r in final["rows"]] == ["success"] + ["cancelled"] * 3
    text = cli("sweep", "show", sweep_id, home=home).stdout
    assert "4/4 done (3 cancelled, 1 success)" in text and "objective" in text
    assert sweep_id in cli("sweep", "list", home=home).stdout
    missing = cli("sweep", "show", home=home)
    assert missing.returncode == 1 and "sweep show needs a sweep id" in missing.stderr
    no_grid = cli("sweep", "DMO", home=home)
    assert no_grid.returncode == 1 and "--grid JSON or --cases FILE" in no_grid.stderr
    bad = cli("sweep", "DMO", "--grid", '{"x": [1,}', home=home)
    assert bad.returncode == 1 and "--grid, line 1, column 10: invalid JSON" in bad.stderr


@pytest.mark.slow
def test_a_3x2_sweep_of_the_real_dmo_matches_single_runs(home: Path) -> None:
    dmo = ROOT / "models" / "examples" / "dmo.py"
    assert cli("upload", str(dmo), "--type", "DMO", home=home).returncode == 0
    grid = {"load_scale": [0.95, 1.0, 1.05], "reserve_fraction": [0.05, 0.1]}
    done = cli("sweep", "DMO", "--grid", json.dumps(grid), "--wait", "--json", home=home)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[0])
    assert (shown["total"], shown["done"], len(shown["rows"])) == (6, 6, 6)
    assert {r["outcome"] for r in shown["rows"]} == {"optimal"}
    sb = Sandbox(home=home)
    try:
        singles = [sb.run("DMO", config=r["config"], cache=False) for r in shown["rows"]]
        for row, single in zip(shown["rows"], singles, strict=True):
            alone = single.wait(timeout=300)
            assert alone.cached_from is None and alone.outcome == "optimal"
            assert row["objective"] == pytest.approx(alone.objective, rel=1e-6)
            assert row["config"] == alone.config
        assert len({r["objective"] for r in shown["rows"]}) == 6  # the grid changes the answer
    finally:
        sb.close()
    # Cancel mid-sweep: one job at a time; once the first scenario is done, cancel the rest.
    one_at_a_time = {"SANDBOX_MAX_RUNNING": "1"}
    grid = {"load_scale": [0.96, 0.97, 0.98], "reserve_fraction": [0.06, 0.07]}
    started = cli("sweep", "DMO", "--grid", json.dumps(grid), home=home, env=one_at_a_time)
    sweep_id = started.stdout.strip().splitlines()[-1]

    def show() -> Any:
        done = cli("sweep", "show", sweep_id, "--json", home=home, env=one_at_a_time)
        return json.loads(done.stdout)

    deadline = time.monotonic() + 120
    while show()["rows"][0]["status"] != "success":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert cli("sweep", "cancel", sweep_id, home=home).returncode == 0
    deadline = time.monotonic() + 60
    while (final := show())["done"] != 6:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    statuses = [r["status"] for r in final["rows"]]
    assert statuses[0] == "success" and statuses[-3:] == ["cancelled"] * 3
    assert set(statuses) <= {"success", "cancelled"}


def test_a_dispatching_process_never_takes_the_supervisors_it_started_for_its_own(
    lite: Sandbox,
) -> None:
    # A supervisor kills its job's whole tree; the supervisors it started for other jobs (a
    # chained dispatch that claimed two) are its children too, and must be spared: killing
    # them left jobs "lost" in 100-scenario sweeps.
    import subprocess

    import psutil

    from sandbox_kit.executor import started_supervisors
    from sandbox_kit.proctree import tree as _tree

    job = lite.run(lite.upload(script("hang.py"), "DMO").id)
    deadline = time.monotonic() + 30
    while not job.logs():  # "hanging": the model runs, under its supervisor
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ours = subprocess.Popen(["sleep", "30"])
    try:
        started = started_supervisors()
        assert started, "this process started the job's supervisor"
        tree = {p.pid for p in _tree(psutil.Process())}
        assert ours.pid in tree
        others = {
            pid
            for root in started
            for pid in [root, *(c.pid for c in psutil.Process(root).children(recursive=True))]
        }
        assert len(others) > 1 and not tree & others
    finally:
        ours.kill()
        ours.wait()
        job.cancel()
        assert job.wait(timeout=30).status.value == "cancelled"

"""The runner suite against both executors (issue 12): the local one, and Dask.

The Dask variant runs on a real ``LocalCluster`` (two worker processes with ``slots=2`` each
and a scratch folder of their own) and the PostgreSQL server, with a folder store: the log
of each job comes back through the registry, its results through the store, and nothing is
read from the worker's folders. The same assertions hold for both.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sandbox_kit import Job, JobInfo, JobStatus, Sandbox, Settings
from tests.conftest import ROOT, cli, job_processes, script
from tests.dask_fixtures import local_cluster

EXAMPLES = ROOT / "models" / "examples"
WAIT_S = 180
#: What both sides agree on: the workers read it from their environment.
WORKER_ENV = {
    "SANDBOX_HEARTBEAT_S": "0.5",
    "SANDBOX_KILL_GRACE_S": "1",
    "SANDBOX_MEMORY_MB": "1024",
}
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module", params=["local", "dask"])
def executor_sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    """One sandbox per executor for the whole module (a cluster takes seconds to start)."""
    home = tmp_path_factory.mktemp("home")
    common = dict(kill_grace_s=1.0, heartbeat_s=0.5, lost_after_s=5.0, max_running=4)
    if request.param == "local":
        sb = Sandbox(home=home, settings=Settings(**common))  # type: ignore[arg-type]
        yield sb
        sb.close()
        return
    db_url, drop = _pg_schema(request)
    store = str(home / "store")
    with local_cluster(
        {**WORKER_ENV, "SANDBOX_DB_URL": db_url, "SANDBOX_STORE": store},
        tmp_path_factory.mktemp("dask"),
    ) as address:
        settings = Settings(executor="dask", dask_address=address, store=store, **common)  # type: ignore[arg-type]
        sb = Sandbox(home=home, db_url=db_url, settings=settings)
        yield sb
        sb.close()
    drop()


def _pg_schema(request: pytest.FixtureRequest) -> tuple[str, object]:
    server = str(request.getfixturevalue("pg_server"))
    schema = f"sk_{secrets.token_hex(6)}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()

    return f"{server}?options=-csearch_path%3D{schema}", drop


def run(sb: Sandbox, name: str, model_type: str = "DMO", **kwargs: object) -> Job:
    model = sb.upload(script(name), model_type, name=Path(name).stem)
    return sb.run(model.id, **kwargs)  # type: ignore[arg-type]


def ended(job: Job, timeout: float = WAIT_S) -> JobInfo:
    return job.wait(timeout=timeout)


def texts(job: Job) -> list[str]:
    return [line.text for line in job.logs()]


def assert_nothing_left(job: Job) -> None:
    """No process of the job is left, on any worker (the workers are on this host)."""
    deadline = time.monotonic() + 10
    while job_processes(job.id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_processes(job.id) == []


def test_every_line_arrives_in_order_while_followed(executor_sandbox: Sandbox) -> None:
    job = run(executor_sandbox, "flood.py", config={"lines": 50_000})
    seen = [e.line.text for e in job.follow() if e.kind == "log" and e.line is not None]
    info = job.refresh().info
    assert info.status is JobStatus.SUCCESS, info.reason
    assert seen == [f"line {i}" for i in range(50_000)]
    assert [line.seq for line in job.logs()] == list(range(1, 50_001))
    assert info.remote is (executor_sandbox.settings.executor == "dask")


def test_progress_and_levels_are_kept(executor_sandbox: Sandbox) -> None:
    progress = run(executor_sandbox, "progress.py")
    levels = run(executor_sandbox, "levels.py")
    assert ended(progress).status is JobStatus.SUCCESS
    assert texts(progress) == ["start", "progress 100%", "done"]
    assert ended(levels).status is JobStatus.SUCCESS
    by_text = {line.text: str(line.level) for line in levels.logs()}
    assert by_text["plain stdout"] == "INFO"
    assert by_text["ERROR: explicit error on stdout"] == "ERROR"
    assert by_text["[WARNING] bracketed warning"] == "WARNING"
    assert by_text["plain stderr"] == "ERROR"


def test_cancel_kills_a_setsid_grandchild(executor_sandbox: Sandbox) -> None:
    job = run(executor_sandbox, "setsid_grandchild.py")
    _wait_for_line(job, "grandchild")
    job.cancel()
    info = ended(job, 60)
    assert info.status is JobStatus.CANCELLED, info.reason
    assert_nothing_left(job)


def test_timeout_kills_a_setsid_grandchild(executor_sandbox: Sandbox) -> None:
    job = run(executor_sandbox, "setsid_grandchild.py", timeout=3)
    info = ended(job, 60)
    assert info.status is JobStatus.TIMEOUT
    assert "timeout after 3 s" in (info.reason or "")
    assert_nothing_left(job)


def test_the_memory_limit_holds(executor_sandbox: Sandbox) -> None:
    info = ended(run(executor_sandbox, "memory_hog.py"))
    assert info.status is JobStatus.FAILED
    assert "memory limit" in (info.reason or "")


def test_the_sample_models_run_and_chain_dmo_to_rmo(executor_sandbox: Sandbox) -> None:
    sb = executor_sandbox
    ids = {
        kind: sb.upload(EXAMPLES / name, kind).id
        for kind, name in (("DMO", "dmo.py"), ("RMO", "rmo.py"), ("SO", "so.py"))
    }
    day, system = sb.run(ids["DMO"]), sb.run(ids["SO"])
    for job in (day, system):
        info = ended(job)
        assert info.status is JobStatus.SUCCESS, (info.reason, texts(job)[-10:])
        result = job.result()
        assert result is not None and result["outcome"] == "optimal"
        assert info.objective == pytest.approx(result["objective"], rel=1e-9)
        assert set(job.tables()) == set(result["tables"])
    # The RMO reads the DMO's commitment from its results (through the store on Dask).
    real_time = sb.run(ids["RMO"], data_source_id=day.id)
    info = ended(real_time)
    assert info.status is JobStatus.SUCCESS, (info.reason, texts(real_time)[-10:])
    assert any("commitment read from DATA_SOURCE_DIR" in line for line in texts(real_time))
    assert "commitment.csv" in {p.name for p in day.files()}


def _wait_for_line(job: Job, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(wanted in line for line in texts(job.refresh())):
            return
        time.sleep(0.2)
    raise AssertionError(f"{wanted!r} never appeared: {texts(job)[-5:]}")


def test_the_jobs_view_and_the_cli_say_where_a_job_ran(
    executor_sandbox: Sandbox, tmp_path: Path
) -> None:
    from sandbox_kit.widgets.jobs_view import JobsView

    sb = executor_sandbox
    model = sb.upload(script("fast_exit.py"), "SO", name="where")
    env = {"SANDBOX_DB_URL": sb.db.url, "SANDBOX_EXECUTOR": sb.settings.executor}
    if sb.settings.dask_address:
        env |= {
            "SANDBOX_DASK_ADDRESS": sb.settings.dask_address,
            "SANDBOX_STORE": str(sb.settings.store),
        }
    done = cli("run", str(model.id), "--retries", "2", "--wait", home=sb.home, env=env)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split()[-1]
    info = sb.job_info(job_id)
    assert info.status is JobStatus.SUCCESS and info.retries == 2
    status = json.loads(cli("status", job_id, "--json", home=sb.home, env=env).stdout)
    assert (status["executor"], status["worker"]) == (info.executor, info.worker)
    listing = cli("jobs", "--limit", "3", home=sb.home, env=env).stdout
    view = JobsView(sb, start=False)
    row = next(r for r in view.table.rows if r.info is not None and r.info.id == job_id)
    if info.remote:
        assert info.worker is not None and info.worker.startswith("tcp://")
        assert "WORKER" in listing.splitlines()[0] and info.worker in listing
        assert f'title="Dask worker {info.worker}"' in row.cells.value
    else:
        assert info.worker is None and "WORKER" not in listing
        assert "Dask worker" not in row.cells.value
    bad = cli("run", str(model.id), "--retries", "-1", home=sb.home, env=env)
    assert bad.returncode == 1 and "retries must be a whole number" in bad.stderr
    # Deleting the model takes the jobs' shipped logs with them.
    assert (_chunks(sb, job_id) > 0) is info.remote
    sb.delete(model.id)
    assert _chunks(sb, job_id) == 0


def _chunks(sb: Sandbox, job_id: str) -> int:
    with sb.lifecycle.conn.read() as st:
        row = st.run("SELECT count(*) FROM log_chunks WHERE job_id = :id", {"id": job_id}).one()
    return int(row[0]) if row else 0


def test_a_data_set_reaches_the_job_read_only(executor_sandbox: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "prices"
    folder.mkdir()
    (folder / "a.csv").write_text("hour,price\n1,42\n")
    data = executor_sandbox.add_data(folder, name=f"prices-{secrets.token_hex(3)}")
    job = run(executor_sandbox, "data_writer.py", data_source_id=f"data:{data.name}")
    info = ended(job)
    assert info.status is JobStatus.SUCCESS, info.reason
    report = json.loads(texts(job)[-1])
    assert report["names"] == ["a.csv"] and report["read"] == "hour,price\n1,42\n"
    assert "changed" not in report.values()


def test_the_log_panel_shows_a_running_job_live(executor_sandbox: Sandbox) -> None:
    from sandbox_kit.widgets.logpanel import LogPanel

    panel = LogPanel(executor_sandbox, start=False, discover_every=0)
    job = run(executor_sandbox, "slow_lines.py", config={"lines": 100, "every": 0.1})
    deadline = time.monotonic() + 60
    seen: list[str] = []
    while time.monotonic() < deadline and "tick 3" not in seen:
        panel.refresh()
        seen = [e.text for e in panel.visible() if not e.note]
        time.sleep(0.1)
    assert "tick 3" in seen
    assert job.refresh().info.status is JobStatus.RUNNING  # seen while it runs
    job.cancel()
    assert ended(job, 60).status is JobStatus.CANCELLED
    panel.close()

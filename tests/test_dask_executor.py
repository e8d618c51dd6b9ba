"""The Dask executor's own cases (issue 12): worker loss and retries, a scheduler restart,
a million lines through a remote worker, the store on S3, cancel before a worker starts.

The runner suite shared with the local executor is in ``tests/test_executors.py``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_kit import Job, JobStatus, Sandbox, Settings, dask_executor
from sandbox_kit.errors import ClusterError, ValidationError
from sandbox_kit.store import Store, result_key
from tests.conftest import ROOT, job_processes, script
from tests.dask_fixtures import (  # noqa: F401 (fixtures)
    DaskCluster,
    _moto_endpoint,
    dask_cluster,
    s3_store_url,
)

pytestmark = pytest.mark.timeout(300)
WORKER_ENV = {"SANDBOX_HEARTBEAT_S": "0.5", "SANDBOX_KILL_GRACE_S": "1"}


def dask_sandbox(home: Path, address: str, db_url: str, store: str) -> Sandbox:
    settings = Settings(
        executor="dask",
        dask_address=address,
        store=store,
        kill_grace_s=1.0,
        heartbeat_s=0.5,
        lost_after_s=5.0,
        max_running=4,
    )
    return Sandbox(home=home, db_url=db_url, settings=settings)


@pytest.fixture
def cluster_sandbox(home: Path, pg_url: str, dask_cluster: DaskCluster) -> Iterator[Sandbox]:  # noqa: F811
    """A sandbox on PostgreSQL whose jobs run on a two-worker LocalCluster."""
    store = str(home / "store")
    address = dask_cluster({**WORKER_ENV, "SANDBOX_DB_URL": pg_url, "SANDBOX_STORE": store})
    sb = dask_sandbox(home, address, pg_url, store)
    yield sb
    sb.close()


def slow(sb: Sandbox, lines: int = 60, **kwargs: object) -> Job:
    model = sb.upload(script("slow_lines.py"), "DMO", name="slow")
    return sb.run(model.id, config={"lines": lines, "every": 0.1}, **kwargs)  # type: ignore[arg-type]


def wait_for(predicate: object, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def worker_pid(address: str, worker: str) -> int:
    from distributed import Client

    with Client(address, timeout=10) as client:
        return int(client.run(os.getpid, workers=[worker])[worker])


def texts(job: Job) -> list[str]:
    return [line.text for line in job.logs()]


def test_a_killed_worker_loses_its_job_and_leaves_nothing_running(
    cluster_sandbox: Sandbox,
) -> None:
    job = slow(cluster_sandbox)
    wait_for(lambda: "tick 5" in texts(job.refresh()), what="the job's first lines")
    worker = job.info.worker
    assert worker is not None
    os.kill(worker_pid(cluster_sandbox.settings.dask_address or "", worker), signal.SIGKILL)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.LOST
    assert info.reason == f"worker {worker} died"
    wait_for(lambda: job_processes(job.id) == [], 10, "the job's processes to end")


def test_a_lost_attempt_is_retried_on_the_other_worker_without_duplicate_lines(
    cluster_sandbox: Sandbox,
) -> None:
    job = slow(cluster_sandbox, retries=1)
    wait_for(lambda: "tick 5" in texts(job.refresh()), what="the first attempt's lines")
    first = job.info.worker
    assert first is not None
    os.kill(worker_pid(cluster_sandbox.settings.dask_address or "", first), signal.SIGKILL)
    wait_for(lambda: job.refresh().info.attempt == 2, 30, "the second attempt")
    info = job.wait(timeout=120)
    assert info.status is JobStatus.SUCCESS, info.reason
    assert info.attempt == 2 and info.worker is not None and info.worker != first
    # The log is the second attempt's, whole and once.
    assert texts(job) == [f"tick {i}" for i in range(60)]
    wait_for(lambda: job_processes(job.id) == [], 10, "the job's processes to end")


def test_a_million_lines_come_back_from_a_remote_worker_in_order(
    cluster_sandbox: Sandbox,
) -> None:
    model = cluster_sandbox.upload(script("flood.py"), "DMO", name="flood")
    job = cluster_sandbox.run(model.id, config={"lines": 1_000_000})
    count = 0
    for event in job.follow():
        if event.kind == "log":
            assert event.line is not None and event.line.text == f"line {count}"
            count += 1
    assert job.refresh().info.status is JobStatus.SUCCESS
    assert count == 1_000_000


def test_cancel_before_a_worker_starts_the_job(cluster_sandbox: Sandbox) -> None:
    # Four slots in the cluster, all taken: the fifth job waits in Dask's queue.
    busy = [slow(cluster_sandbox, lines=600) for _ in range(4)]  # a minute each
    wait_for(lambda: all(j.refresh().info.worker for j in busy), what="four busy slots")
    # One more slot than the cluster has.
    cluster_sandbox.settings = dataclasses.replace(cluster_sandbox.settings, cpu_slots=5)
    waiting = slow(cluster_sandbox)
    assert waiting.refresh().info.status is JobStatus.RUNNING
    assert waiting.info.worker is None
    waiting.cancel()
    info = waiting.refresh().info
    assert info.status is JobStatus.CANCELLED
    assert info.reason == "cancelled before a worker started it"
    for job in busy:
        job.cancel()
    for job in busy:
        assert job.wait(timeout=60).status is JobStatus.CANCELLED
    assert waiting.refresh().info.started_at is None  # no worker ever ran it


def test_results_and_the_dmo_to_rmo_chain_go_through_an_s3_store(
    home: Path,
    pg_url: str,
    dask_cluster: DaskCluster,  # noqa: F811
    s3_store_url: str,  # noqa: F811
) -> None:
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    address = dask_cluster(
        {**WORKER_ENV, **aws, "SANDBOX_DB_URL": pg_url, "SANDBOX_STORE": s3_store_url}
    )
    sb = dask_sandbox(home, address, pg_url, s3_store_url)
    examples = ROOT / "models" / "examples"
    day = sb.run(sb.upload(examples / "dmo.py", "DMO").id)
    info = day.wait(timeout=180)
    assert info.status is JobStatus.SUCCESS, info.reason
    assert "commitment.csv" in {p.name for p in day.files()}
    real_time = sb.run(sb.upload(examples / "rmo.py", "RMO").id, data_source_id=day.id)
    info = real_time.wait(timeout=180)
    assert info.status is JobStatus.SUCCESS, texts(real_time)[-5:]
    assert any("commitment read from DATA_SOURCE_DIR" in line for line in texts(real_time))
    # Deleting the models deletes their jobs' results from the store too.
    store = Store(s3_store_url)
    keys = [result_key(job.id, 1) for job in (day, real_time)]
    assert all(store.exists(key) for key in keys)
    for job in (real_time, day):
        sb.delete(job.info.model_id)
    assert not any(store.exists(key) for key in keys)
    sb.close()


def test_an_unset_address_or_an_unreachable_scheduler_is_refused(home: Path) -> None:
    with pytest.raises(ValidationError, match="set SANDBOX_DASK_ADDRESS"):
        Settings(executor="dask")
    with pytest.raises(ValidationError, match="retries for DMO must be 0 to 100"):
        Settings.from_env({"SANDBOX_RETRIES_DMO": "101"})
    sb = Sandbox(home=home, settings=Settings())
    model = sb.upload(script("fast_exit.py"), "DMO")
    sb.settings = Settings(executor="dask", dask_address=f"tcp://127.0.0.1:{_free_port()}")
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        sb.run(model.id)
    assert sb.jobs() == []  # nothing was queued
    sb.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_scheduler_restart_lets_running_jobs_finish_and_resubmits_the_queue(
    home: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real ``dask scheduler`` and ``dask worker`` processes, as in the README's set-up; the
    workers are restarted when they exit, as their process manager would."""
    monkeypatch.setattr(dask_executor, "ORPHAN_AFTER_S", 3.0)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    store = str(home / "store")
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, **WORKER_ENV, "SANDBOX_DB_URL": pg_url, "SANDBOX_STORE": store}
    logs = tmp_path / "dask-logs"
    logs.mkdir()

    def scheduler() -> subprocess.Popen[bytes]:
        with open(logs / "scheduler.log", "ab") as errors:
            return subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )

    def worker(i: int) -> subprocess.Popen[bytes]:
        with open(logs / f"worker{i}.log", "ab") as errors:
            return subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    "--nthreads",
                    "2",
                    "--resources",
                    "slots=2",
                    "--no-dashboard",
                    "--local-directory",
                    str(tmp_path / f"w{i}"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )

    sched = scheduler()
    workers = [worker(0), worker(1)]
    try:
        sb = dask_sandbox(home, address, pg_url, store)
        wait_for(lambda: _workers_up(address) == 2, 60, "two workers")
        model = sb.upload(script("slow_lines.py"), "DMO", name="slow")
        jobs = [sb.run(model.id, config={"lines": 40, "every": 0.1}) for _ in range(6)]
        wait_for(lambda: sum(bool(j.refresh().info.worker) for j in jobs) == 4, 60, "4 running")
        assert [j.info.status for j in jobs[4:]] == [JobStatus.QUEUED] * 2
        sched.kill()
        sched.wait()
        sched = scheduler()

        def settled() -> bool:
            for i, proc in enumerate(workers):
                if proc.poll() is not None:  # the process manager brings it back
                    workers[i] = worker(i)
            sb.reconcile()
            return all(j.refresh().info.status.terminal for j in jobs)

        wait_for(settled, 180, "every job to end")
        for job in jobs:
            assert job.info.status is JobStatus.SUCCESS, (job.id, job.info.reason)
            assert texts(job) == [f"tick {i}" for i in range(40)]
        sb.close()
    finally:
        for proc in [sched, *workers]:
            proc.terminate()
        for proc in [sched, *workers]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _workers_up(address: str) -> int:
    from distributed import Client

    try:
        with Client(address, timeout=5) as client:
            return len(client.scheduler_info()["workers"])
    except Exception:
        return 0

"""Database outages survived (issue 9), each fault injected for real.

SQLite locked by another process for a minute; PostgreSQL connections killed with
``pg_terminate_backend`` mid-job; PostgreSQL unreachable for 30 s (a TCP forwarder that is cut).
In each, the model keeps running and its lines keep landing in the log, the final status is
recorded once the database is back, and the job is never marked ``lost`` meanwhile. Also: one
failed supervisor start does not strand the rest of a claimed batch, and is logged.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from sandbox_kit import JobStatus, Sandbox, Settings, launcher
from sandbox_kit.dbapi import Connection
from sandbox_kit.lifecycle import Lifecycle, utcnow
from tests.tcp_proxy import Proxy, wait_until
from tests.test_runner import _row, assert_no_process_left, texts, upload, wait_for_line

LINES = {"lines": 30, "every": 0.1}


def _oplog(home: Path) -> str:
    path = home / "logs" / "sandbox.log"
    return path.read_text() if path.exists() else ""


def _never_lost(sb: Sandbox) -> None:
    # Every heartbeat looks an hour old, yet the supervisor lives: nothing may be marked lost.
    later = utcnow() + timedelta(hours=1)
    assert launcher.reconcile(sb.lifecycle, lost_after_s=20, now=lambda: later) == []


@pytest.mark.slow
def test_sqlite_locked_for_a_minute(home: Path, settings: Settings) -> None:
    sb = Sandbox(home=home, settings=settings)
    job = sb.run(upload(sb, "slow_lines.py"), config=LINES)
    wait_for_line(job, "tick 1")
    wait_until(lambda: _row(sb, job.id).heartbeat_at is not None, 20, "a heartbeat")
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
            "time.sleep(60); c.execute('COMMIT')",
            str(home / "sandbox.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    wait_until(lambda: "tick 29" in texts(job), 30, "the model's last line")  # lines land
    time.sleep(2)
    assert _row(sb, job.id).status == "running"  # its end cannot be written yet
    _never_lost(sb)
    assert locker.wait(timeout=90) == 0
    locker.stdout.close()
    info = job.wait(timeout=60)
    assert info.status is JobStatus.SUCCESS
    assert len(job.logs()) == 30
    assert f"job {job.id}: cannot record success yet" in _oplog(home)
    assert_no_process_left(job)


def test_postgres_connections_killed_mid_job(
    home: Path, settings: Settings, pg_url: str, pg_server: str
) -> None:
    sb = Sandbox(home=home, db_url=pg_url, settings=settings)
    job = sb.run(upload(sb, "slow_lines.py"), config=LINES)
    wait_until(lambda: _row(sb, job.id).heartbeat_at is not None, 20, "a heartbeat")
    killed = 0
    with psycopg.connect(_libpq(pg_server), autocommit=True) as admin:
        for _ in range(4):
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"sandbox-kit job {job.id}",),
            ).fetchall()
            killed += sum(1 for (ok,) in rows if ok)
            time.sleep(0.6)
    assert killed >= 2  # the supervisor's connection really was killed, more than once
    info = job.wait(timeout=60)
    assert info.status is JobStatus.SUCCESS
    assert len(job.logs()) == 30
    assert_no_process_left(job)
    sb.close()


@pytest.mark.slow
def test_postgres_unreachable_for_half_a_minute(
    home: Path, settings: Settings, pg_url: str
) -> None:
    parts = urlsplit(pg_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    via_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    sb = Sandbox(home=home, db_url=via_proxy, settings=settings)
    direct = Lifecycle(Connection(pg_url))  # the test's own view, not through the proxy
    job = sb.run(upload(sb, "slow_lines.py"), config={"lines": 20, "every": 0.1})
    wait_until(lambda: _row(sb, job.id).heartbeat_at is not None, 20, "a heartbeat")
    cut = time.monotonic()
    with proxy.outage():
        wait_until(lambda: "tick 19" in texts(job), 30, "the model's last line")
        assert direct.status(job.id) == "running"
        _never_lost_direct(direct)
        time.sleep(max(0.0, 30 - (time.monotonic() - cut)))
        assert direct.status(job.id) == "running"
    wait_until(lambda: direct.status(job.id) == "success", 30, "the recorded end")
    assert len(job.logs()) == 20
    assert f"job {job.id}: cannot record success yet" in _oplog(home)
    assert_no_process_left(job)
    direct.conn.close()
    sb.close()
    proxy.close()


def _never_lost_direct(lc: Lifecycle) -> None:
    later = utcnow() + timedelta(hours=1)
    assert launcher.reconcile(lc, lost_after_s=20, now=lambda: later) == []


def test_one_failed_start_does_not_strand_the_batch(home: Path, settings: Settings) -> None:
    narrow = Sandbox(home=home, settings=replace(settings, max_running=1))
    blocker = narrow.run(upload(narrow, "hang.py"))  # holds the only slot
    model = upload(narrow, "fast_exit.py", "SO")
    queued = [narrow.run(model) for _ in range(3)]
    assert [j.refresh().status for j in queued] == [JobStatus.QUEUED] * 3
    broken = queued[1]
    job_dir = Path(broken.info.result_dir).parent
    shutil.rmtree(job_dir)
    job_dir.write_text("a file where the job's folder should be")
    wide = Sandbox(home=home, settings=replace(settings, max_running=4))
    wide.reconcile()  # claims all three at once
    infos = [j.wait(timeout=30) for j in queued]
    assert [i.status for i in infos] == [JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.SUCCESS]
    assert (infos[1].reason or "").startswith("cannot start supervisor: ")
    assert f"cannot start the supervisor of {broken.id}" in _oplog(home)
    blocker.cancel()
    assert blocker.wait(timeout=30).status is JobStatus.CANCELLED


def _libpq(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(scheme="postgresql").geturl()

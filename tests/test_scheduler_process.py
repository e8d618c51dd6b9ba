"""Real ``sandbox-kit scheduler`` processes (issue 10): two against one database, the leader
killed with SIGKILL; a deadline missed by a real slow model, notified for real; the scheduler
``serve`` starts beside Voilà.

The schedulers run on a clock ten times faster than real time (``SANDBOX_SCHEDULER_CLOCK``,
see :mod:`sandbox_kit.scheduler`), so three minutes of an every-minute schedule take 18 s and
the 30 s lease expires in 3 s. Nothing here asserts a duration.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from pytest_httpserver import HTTPServer

from sandbox_kit import Sandbox
from sandbox_kit.cron import clock_from_env
from sandbox_kit.records import JobStatus
from tests.conftest import cli, script
from tests.scheduling import Mailbox, free_port, mailbox, text_of, wait_for

__all__ = ["mailbox"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.slow
SCALE = 10


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Scheduler (or serve) processes started by a test; killed if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def start_scheduler(
    home: Path, env: dict[str, str], processes: list[subprocess.Popen[str]], log: Path
) -> subprocess.Popen[str]:
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox_kit", "scheduler"],
        env={**os.environ, "SANDBOX_HOME": str(home), **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out.close()
    processes.append(proc)
    return proc


def _leader_pid(sb: Sandbox) -> int | None:
    with sb.lifecycle.conn.read() as st:
        row = st.run("SELECT holder FROM scheduler_lease").one()
    return None if row is None else int(str(row[0]).split(":")[1])


def _submitted(sb: Sandbox, schedule_id: int) -> list[tuple[object, str | None]]:
    fires = [f for f in reversed(sb.schedule_fires(schedule_id, limit=1000))]
    return [(f.fire_at, f.job_id) for f in fires if f.outcome == "submitted"]


def test_two_schedulers_fire_each_minute_once_and_survive_a_killed_leader(
    db_url: str, home: Path, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    sb = Sandbox(home=home, db_url=db_url)
    try:
        sb.upload(script("fast_exit.py"), "DMO")
        # queue: a run that is slow to start (a loaded machine) delays the next, never skips it
        schedule = sb.add_schedule("DMO", cron="* * * * *", timezone="UTC", overlap="queue")
        env = {
            "SANDBOX_DB_URL": db_url,
            "SANDBOX_SCHEDULER_CLOCK": f"{SCALE}@{time.time()}",
        }
        clock, _ = clock_from_env(env)  # the schedulers' clock
        logs = [tmp_path / "one.log", tmp_path / "two.log"]
        procs = [start_scheduler(home, env, processes, log) for log in logs]
        # Three minutes on the schedule's clock.
        wait_for(lambda: len(_submitted(sb, schedule.id)) >= 3, timeout=120, what="3 fires")
        leader = wait_for(lambda: _leader_pid(sb), what="a leader")
        (killed,) = [p for p in procs if p.pid == leader]
        (survivor,) = [p for p in procs if p.pid != leader]
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        before = len(_submitted(sb, schedule.id))
        wait_for(
            lambda: len(_submitted(sb, schedule.id)) >= before + 2, timeout=120, what="takeover"
        )
        assert _leader_pid(sb) == survivor.pid
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0
        # Released on the way out (a held lease would expire seconds from now on that clock):
        # no other scheduler has to wait for it.
        with sb.lifecycle.conn.read() as st:
            row = st.run("SELECT expires_at FROM scheduler_lease").one()
            expires = None if row is None else st.moment(row[0])
        assert expires is not None and expires <= clock()
        fired = _submitted(sb, schedule.id)
        times = [t for t, _ in fired]
        assert times == sorted(set(times))  # unique
        assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(times))
        outcomes = {f.outcome for f in sb.schedule_fires(schedule.id, limit=1000)}
        assert outcomes <= {"submitted", "waiting", "due"}  # nothing missed or skipped
        jobs = sb.jobs(schedule=schedule.id, limit=1000)
        assert sorted(j.id for j in jobs) == sorted(job for _, job in fired if job)
        for job in jobs:
            assert sb.job(job.id).wait(timeout=60).status is JobStatus.SUCCESS
        survivor_log = logs[procs.index(survivor)].read_text()
        assert "leading" in survivor_log and survivor_log.rstrip().endswith("stopped")
        assert "stopped" in (home / "logs" / "scheduler.log").read_text()
    finally:
        sb.close()


def test_a_deadline_missed_by_a_slow_model_is_notified_and_cancelled(
    home: Path,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
    mailbox: Mailbox,
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/deadline", method="POST").respond_with_data("ok")
    hook = f"json://localhost:{httpserver.port}/deadline"
    assert cli("upload", str(script("slow_lines.py")), "--type", "RMO", home=home).returncode == 0
    added = cli(
        "schedule", "add", "RMO", "--cron", "* * * * *", "--tz", "Europe/Berlin",
        "--config", '{"lines": 600, "every": 0.1}', "--deadline", "0.5",
        "--deadline-action", "cancel", "--notify", mailbox.url(), hook, "--name", "rt",
        home=home,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    schedule_id = int(added.stdout.strip().splitlines()[-1])
    env = {"SANDBOX_SCHEDULER_CLOCK": f"{SCALE}@{time.time()}"}
    proc = start_scheduler(home, env, processes, tmp_path / "scheduler.log")
    sb = Sandbox(home=home)
    try:
        job_id = wait_for(
            lambda: next((j.id for j in sb.jobs(schedule=schedule_id) if j.deadline_missed), None),
            timeout=120,
            what="a missed deadline",
        )
        assert sb.job(job_id).wait(timeout=60).status is JobStatus.CANCELLED
        (mail,) = wait_for(lambda: mailbox.messages[:1], timeout=60, what="the mail")
        posted = wait_for(
            lambda: [json.loads(r.get_data()) for r, _ in httpserver.log], what="json"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        sb.close()
    assert mail["Subject"] == f"[sandbox_kit] RMO job {job_id} missed its deadline"
    body = text_of(mail)
    assert f"Job: {job_id}" in body and "Schedule: schedule" in body and "(missed)" in body
    assert "Last 20 log lines:" in body and "\ntick " in body.replace("\r\n", "\n")
    assert posted[0]["title"] == mail["Subject"]
    status = cli("status", job_id, "--json", home=home)
    info = json.loads(status.stdout)
    assert info["schedule_id"] == schedule_id
    assert info["deadline_missed"] is True and info["deadline_at"]
    deadline = {
        (n["target_kind"], n["status"]) for n in info["notifications"] if n["event"] == "deadline"
    }
    assert deadline == {("mailto", "delivered"), ("json", "delivered")}
    listed = json.loads(cli("jobs", "--schedule", str(schedule_id), "--json", home=home).stdout)
    assert job_id in {j["id"] for j in listed}
    assert {j["schedule_id"] for j in listed} == {schedule_id}


def test_serve_starts_a_scheduler_that_ends_with_it(
    home: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "sandbox_kit", "serve", "--no-examples", "--port", str(port)],
        env={**os.environ, "SANDBOX_HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "cfg")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    processes.append(serve)
    log = home / "logs" / "scheduler.log"
    wait_for(lambda: log.exists() and "leading" in log.read_text(), timeout=120, what="leading")
    (child,) = [
        p for p in psutil.Process(serve.pid).children() if "scheduler" in " ".join(p.cmdline())
    ]
    assert f"--parent-pid {serve.pid}" in " ".join(child.cmdline())
    serve.send_signal(signal.SIGTERM)  # Voilà, which the serve process became
    serve.wait(timeout=60)
    child.wait(timeout=30)  # it noticed its parent was gone (not ours: no exit code here)
    assert not child.is_running()
    text = log.read_text()
    assert "the process that started the scheduler is gone" in text
    assert text.rstrip().endswith("stopped")

"""Isolation end to end (issue 8): hostile models run through ``Sandbox.run``, as users run them.

``tests/test_jail.py`` covers the jail's command line piece by piece; here the same hostile
scripts go through the whole path (registry, queue, supervisor, jail) and each test asserts
both the refusal and that the sandbox is unharmed. The scripts take their arguments from
``CONFIG`` here (a two-line prefix turns it into their ``argv[1]``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox_kit import Job, JobStatus, Sandbox, Settings
from sandbox_kit.jail import probe
from tests.conftest import ROOT, script
from tests.test_runner import _row, assert_no_process_left, texts, upload, wait_for_line

pytestmark = pytest.mark.skipif(
    not probe().isolated and os.environ.get("CI") != "true",
    reason=f"no isolation on this machine: {probe().reason}",
)
_ARGV_FROM_CONFIG = "import os, sys\nsys.argv[1:] = [os.environ['CONFIG']]\n"


def hostile(sb: Sandbox, name: str, **args: Any) -> tuple[Job, dict[str, Any]]:
    """Run ``tests/scripts/<name>`` as a model with ``args``; its JSON verdict."""
    source = _ARGV_FROM_CONFIG + script(name).read_text()
    model = sb.upload(source.encode(), "DMO", name=Path(name).stem, filename=name)
    job = sb.run(model.id, config=args)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.SUCCESS, (info.reason, texts(job))
    assert info.isolation == "namespaces"
    return job, json.loads(texts(job)[-1])


def _tables(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_registry_is_out_of_reach(lite: Sandbox, home: Path) -> None:
    before = _tables(home / "sandbox.db")
    _, verdict = hostile(lite, "escape_registry.py", db=str(home / "sandbox.db"))
    assert verdict["escaped"] is False and verdict["found"] == []
    assert _tables(home / "sandbox.db") == before


def test_stored_models_cannot_be_changed_and_a_changed_one_is_refused(
    lite: Sandbox, home: Path
) -> None:
    victim = lite.upload(script("fast_exit.py"), "SO")
    path = Path(victim.path)
    _, verdict = hostile(
        lite, "escape_models.py", models_dir=str(home / "models"), models=[str(path)]
    )
    assert verdict["escaped"] is False
    assert _digest(path) == victim.sha256
    assert path.stat().st_mode & 0o222 == 0  # stored read-only
    assert lite.run(victim.id).wait(timeout=30).status is JobStatus.SUCCESS
    # Changed behind the registry's back (by someone with the sandbox's own rights): refused.
    path.chmod(0o644)
    path.write_text(path.read_text() + "\nprint('injected')\n")
    info = lite.run(victim.id).wait(timeout=30)
    assert info.status is JobStatus.FAILED
    assert info.reason == (
        f"model file changed since upload: expected {victim.sha256}, found {_digest(path)}"
    )


def test_secrets_of_the_caller_are_out_of_reach(lite: Sandbox) -> None:
    canary = f"canary-{secrets.token_hex(8)}"
    os.environ["SANDBOX_TEST_CANARY"] = canary
    try:
        _, verdict = hostile(lite, "escape_proc_secrets.py", canary_reversed=canary[::-1])
    finally:
        del os.environ["SANDBOX_TEST_CANARY"]
    assert verdict["escaped"] is False
    assert max(verdict["pids"]) < 10  # it sees its own pid namespace only


def test_a_running_supervisor_holds_no_caller_secret(lite: Sandbox) -> None:
    os.environ["SANDBOX_TEST_CANARY"] = "canary-supervisor"
    try:
        job = lite.run(upload(lite, "hang.py"))
    finally:
        del os.environ["SANDBOX_TEST_CANARY"]
    wait_for_line(job, "hanging")
    pid = _row(lite, job.id).supervisor_pid
    assert pid is not None
    environ = psutil.Process(pid).environ()
    assert "SANDBOX_TEST_CANARY" not in environ and "SANDBOX_DB_URL" not in environ
    assert "canary-supervisor" not in " ".join(psutil.Process(pid).cmdline())
    job.cancel()
    assert job.wait(timeout=30).status is JobStatus.CANCELLED


def test_another_running_job_cannot_be_traced_or_signalled(lite: Sandbox) -> None:
    victim = lite.run(upload(lite, "hang.py"))
    wait_for_line(victim, "hanging")
    model_pid = _row(lite, victim.id).model_pid
    assert model_pid is not None
    marker = Path(lite.model(victim.info.model_id or 0).path).name
    _, verdict = hostile(
        lite, "escape_ptrace.py", pids=[model_pid], marker_reversed=marker[::-1], scan=True
    )
    assert verdict["escaped"] is False
    assert victim.refresh().status is JobStatus.RUNNING
    victim.cancel()
    assert victim.wait(timeout=30).status is JobStatus.CANCELLED
    assert_no_process_left(victim)


def test_loopback_is_closed_unless_the_type_may_use_the_network(
    home: Path, settings: Settings
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        closed = Sandbox(home=home, settings=settings)
        _, verdict = hostile(closed, "escape_loopback.py", port=port)
        assert verdict["escaped"] is False
        opened = Sandbox(home=home, settings=replace(settings, network={"DMO": "host"}))
        _, verdict = hostile(opened, "escape_loopback.py", port=port)
        assert verdict["escaped"] is True  # SANDBOX_NETWORK_DMO=host: the team's choice


def test_a_fork_bomb_is_contained(home: Path, settings: Settings) -> None:
    sb = Sandbox(home=home, settings=replace(settings, max_processes=40))
    _, verdict = hostile(sb, "escape_fork_bomb.py", count=400)
    assert verdict["escaped"] is False


def test_off_runs_as_before_and_records_none(home: Path, settings: Settings) -> None:
    sb = Sandbox(home=home, settings=replace(settings, isolation="off"))
    job = sb.run(upload(sb, "fast_exit.py"))
    info = job.wait(timeout=30)
    assert (info.status, info.isolation) == (JobStatus.SUCCESS, "none")


_PRIVATE_MOUNTS = ["unshare", "--mount", "--propagation", "private"]
_HIDE_TOOLS = """
set -e
for tool in $(command -v bwrap) $(command -v unshare); do mount --bind /dev/null "$tool"; done
exec "$@"
"""


@pytest.mark.parametrize(("mode", "status"), [("required", "failed"), ("auto", "success")])
def test_a_machine_without_namespaces(home: Path, mode: str, status: str) -> None:
    # The test double of such a machine: bubblewrap and unshare hidden (bind-mounted over with
    # /dev/null) in a mount namespace of its own, where the whole sandbox then runs.
    run = textwrap.dedent(
        f"""
        from sandbox_kit import Sandbox, Settings
        sb = Sandbox(home={str(home)!r}, settings=Settings(isolation={mode!r}))
        model = sb.upload({str(script("fast_exit.py"))!r}, "DMO")
        job = sb.run(model.id)
        info = job.wait(timeout=60)
        ran = sum(line.stream == "stdout" for line in job.logs())
        print(info.status.value, info.isolation, info.reason, ran, sep="|")
        """
    )
    done = subprocess.run(
        [*_PRIVATE_MOUNTS, "sh", "-c", _HIDE_TOOLS, "sh", sys.executable, "-c", run],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got_status, isolation, reason, ran = done.stdout.strip().splitlines()[-1].split("|")
    assert got_status == status
    if mode == "required":
        assert reason.startswith("isolation unavailable: bubblewrap: ")
        assert ran == "0"  # nothing ran
    else:
        assert (isolation, reason) == ("none", "None") and ran != "0"


def test_a_job_that_cannot_be_jailed_fails_instead_of_running_unjailed(
    home: Path, settings: Settings
) -> None:
    # The machine isolates, but this job's data source vanished before it started: the jail
    # cannot be built, and the job must not run with the sandbox's rights instead.
    sb = Sandbox(home=home, settings=replace(settings, max_running=1))
    source = sb.run(upload(sb, "fast_exit.py")).wait(timeout=30)
    blocker = sb.run(upload(sb, "hang.py", "SO"))
    waiting = sb.run(upload(sb, "env_dump.py"), data_source_id=source.id)
    assert waiting.refresh().status is JobStatus.QUEUED
    result_dir = Path(source.result_dir)
    for path in [*result_dir.rglob("*"), result_dir]:
        path.chmod(0o755)
    shutil.rmtree(result_dir)
    blocker.cancel()
    info = waiting.wait(timeout=30)
    assert info.status is JobStatus.FAILED
    assert info.reason is not None and "does not exist" in info.reason
    assert [line for line in waiting.logs() if line.stream == "stdout"] == []

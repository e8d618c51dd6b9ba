"""The supervisor acts on deadlines, not on pipe EOF (issue 9): real hostile scripts.

Each script does something different with its descriptors (closes them, hands them to a
grandchild, floods them, never writes); timeout and cancel must fire on time for all of them,
the heartbeat must go on, and no process of the job may be left.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox_kit import JobStatus, Sandbox, Settings
from tests.test_runner import _row, assert_no_process_left, upload, wait_for_line

HOSTILE = ["close_fds_hang.py", "fds_to_grandchild.py", "silent_hang.py", "flood_forever.py"]


@pytest.fixture
def small_logs(home: Path, settings: Settings) -> Sandbox:
    """A sandbox whose log cap is small, so a flood drains instead of filling the disk."""
    return Sandbox(home=home, settings=replace(settings, log_cap_bytes=1 << 20))


@pytest.mark.parametrize("name", HOSTILE)
def test_timeout_fires_whatever_the_model_does_with_its_descriptors(
    small_logs: Sandbox, name: str
) -> None:
    job = small_logs.run(upload(small_logs, name), timeout=2)
    info = job.wait(timeout=30)
    assert (info.status, info.reason) == (JobStatus.TIMEOUT, "wall-clock timeout after 2 s")
    assert_no_process_left(job)


@pytest.mark.parametrize("name", HOSTILE)
def test_cancel_fires_whatever_the_model_does_with_its_descriptors(
    small_logs: Sandbox, name: str
) -> None:
    job = small_logs.run(upload(small_logs, name))
    _wait_for_heartbeat(small_logs, job.id)
    job.cancel()
    info = job.wait(timeout=30)
    assert (info.status, info.reason) == (JobStatus.CANCELLED, "killed by cancel")
    assert_no_process_left(job)


def test_heartbeat_goes_on_after_the_model_closes_its_descriptors(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "close_fds_hang.py"))
    wait_for_line(job, "closing")
    first = _wait_for_heartbeat(lite, job.id)
    deadline = time.monotonic() + 20
    while (_row(lite, job.id).heartbeat_at or first) <= first:
        assert time.monotonic() < deadline, "no heartbeat after the descriptors were closed"
        time.sleep(0.1)
    assert job.refresh().status is JobStatus.RUNNING
    job.cancel()
    assert job.wait(timeout=30).status is JobStatus.CANCELLED


def test_a_cancel_flag_without_a_signal_is_picked_up_by_the_heartbeat(lite: Sandbox) -> None:
    # A cancel from another host cannot signal the supervisor: the flag alone must do.
    job = lite.run(upload(lite, "silent_hang.py"))
    _wait_for_heartbeat(lite, job.id)
    with lite.lifecycle.conn.write() as st:
        st.run("UPDATE jobs SET cancel_requested = :t WHERE id = :id", {"t": True, "id": job.id})
    info = job.wait(timeout=30)
    assert (info.status, info.reason) == (JobStatus.CANCELLED, "killed by cancel")
    assert_no_process_left(job)


def _wait_for_heartbeat(sb: Sandbox, job_id: str) -> object:
    deadline = time.monotonic() + 20
    while (beat := _row(sb, job_id).heartbeat_at) is None:
        assert time.monotonic() < deadline, "the supervisor never beat"
        time.sleep(0.05)
    return beat


def test_a_finishing_supervisor_runs_the_next_queued_job_itself(
    home: Path, settings: Settings
) -> None:
    # One slot, three jobs: the first supervisor claims each next job as its model ends and
    # runs it in the same process (no new process start per job), each with its own record.
    sb = Sandbox(home=home, settings=replace(settings, max_running=1))
    model = upload(sb, "slow_lines.py")
    jobs = [sb.run(model, config={"lines": 2, "every": 0.2}) for _ in range(3)]
    infos = [job.wait(timeout=60) for job in jobs]
    assert [i.status for i in infos] == [JobStatus.SUCCESS] * 3
    assert [len(job.logs()) for job in jobs] == [2, 2, 2]
    pids = {_row(sb, job.id).supervisor_pid for job in jobs}
    assert len(pids) == 1 and None not in pids
    assert infos[0].finished_at and infos[1].started_at
    assert infos[0].finished_at <= infos[1].started_at  # one at a time: the limit held


def test_a_job_ended_elsewhere_is_stopped_by_its_supervisor(lite: Sandbox) -> None:
    # Another host's reconciliation marked it lost while its supervisor lived: the next
    # heartbeat finds the job no longer running, and the model must not run on unrecorded.
    job = lite.run(upload(lite, "hang.py"))
    _wait_for_heartbeat(lite, job.id)
    assert lite.lifecycle.mark_lost(job.id, "judged lost by another host")
    assert_no_process_left(job)
    info = job.refresh().info
    assert (info.status, info.reason) == (JobStatus.LOST, "judged lost by another host")

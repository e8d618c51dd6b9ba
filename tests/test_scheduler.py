"""The scheduler's rules with an injected clock: leadership and fencing, one job per fire time,
missed runs, overlap, DST, deadlines, chains and notifications (issue 10).

Real databases (SQLite and PostgreSQL), real jobs; only the scheduler's clock is injected.
Two real scheduler processes are in ``test_scheduler_process.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from sandbox_kit import Sandbox, Settings
from sandbox_kit.lease import LeaseLost
from sandbox_kit.lifecycle import utcnow
from sandbox_kit.notify import Notifier
from sandbox_kit.records import JobStatus, Schedule
from sandbox_kit.scheduler import Scheduler, Tick
from tests.conftest import script
from tests.scheduling import FakeClock, minute_now, wait_for

LOG = logging.getLogger("tests.scheduler")


@pytest.fixture
def made() -> Iterator[list[Scheduler]]:
    """Schedulers made by a test; their notifier threads are stopped afterwards."""
    schedulers: list[Scheduler] = []
    yield schedulers
    for scheduler in schedulers:
        scheduler.notifier.close(timeout=30)


def scheduler(sb: Sandbox, clock: FakeClock, made: list[Scheduler], name: str) -> Scheduler:
    found = Scheduler(sb, clock=clock, log=LOG, holder=name, backoff_s=0.05)
    made.append(found)
    return found


def add(sb: Sandbox, clock: FakeClock, target: str = "DMO", **options: object) -> Schedule:
    """A schedule created at the fake clock's time (so its cursor is on that clock)."""
    cron_expr = options.pop("cron", "* * * * *")
    options.setdefault("timezone", "UTC")
    return sb.schedule_store.add(
        target,
        cron_expr=cron_expr,
        actor="test",
        now=clock.now,
        **options,  # type: ignore[arg-type]
    )


def fires(sb: Sandbox, schedule_id: int) -> list[tuple[datetime, str, str | None]]:
    """(fire time, outcome, job id), oldest first."""
    return [(f.fire_at, f.outcome, f.job_id) for f in reversed(sb.schedule_fires(schedule_id))]


def finish_all(sb: Sandbox, job_ids: list[str]) -> None:
    for job_id in job_ids:
        sb.job(job_id).wait(timeout=60)


# -- leadership ---------------------------------------------------------------------------


def test_two_schedulers_one_leader_one_job_per_fire_time(
    sandbox: Sandbox, made: list[Scheduler]
) -> None:
    sandbox.upload(script("fast_exit.py"), "DMO")
    start = minute_now() + timedelta(seconds=1)
    clock = FakeClock(start)
    one, two = (scheduler(sandbox, clock, made, name) for name in ("one", "two"))
    schedule = add(sandbox, clock)
    started: list[str] = []
    for _ in range(3):
        clock.advance(seconds=60)
        passes = [one.tick(), two.tick(), one.tick()]
        assert [p.leading for p in passes] == [True, False, True]
        started += [job for p in passes for job in p.submitted]
        finish_all(sandbox, started)  # before the next fire time (overlap: skip)
    found = fires(sandbox, schedule.id)
    assert [outcome for _, outcome, _ in found] == ["submitted"] * 3
    assert [t for t, _, _ in found] == [
        start.replace(second=0) + timedelta(minutes=i) for i in (1, 2, 3)
    ]
    runs = sandbox.jobs(schedule=schedule.id)
    assert sorted(j.id for j in runs) == sorted(started) == sorted(job for _, _, job in found)
    assert {j.started_by for j in runs} == {f"schedule:{schedule.id}"}
    assert {j.status for j in runs} == {JobStatus.SUCCESS}


def test_a_leader_that_stalls_past_its_lease_is_fenced_off(
    sandbox: Sandbox, made: list[Scheduler]
) -> None:
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    old, new = scheduler(sandbox, clock, made, "old"), scheduler(sandbox, clock, made, "new")
    schedule = add(sandbox, clock, target="RMO")  # no RMO model: its fire times error out
    assert old.tick().leading
    assert not new.tick().leading
    clock.advance(seconds=31)  # past the 30 s lease: `old` stalled and did not renew
    assert new.tick().leading
    assert new.lease.token == old.lease.token + 1  # type: ignore[operator]
    clock.advance(seconds=29)  # a fire time is due; `new` holds the lease for 1 s more
    # `old` wakes up believing it leads: every write it tries is refused.
    with pytest.raises(LeaseLost):
        old._claim_due(Tick())
    with pytest.raises(LeaseLost), sandbox.lifecycle.conn.write() as st:
        old.lease.check(st)
    assert fires(sandbox, schedule.id) == []
    assert not old.tick().leading
    assert new.tick().leading
    assert [outcome for _, outcome, _ in fires(sandbox, schedule.id)] == ["error"]


def test_a_clean_exit_releases_the_lease_at_once(sandbox: Sandbox, made: list[Scheduler]) -> None:
    clock = FakeClock(minute_now())
    first, second = scheduler(sandbox, clock, made, "first"), scheduler(sandbox, clock, made, "b")
    assert first.tick().leading
    assert not second.tick().leading
    first.lease.release()
    assert second.tick().leading


# -- missed runs, overlap, pause --------------------------------------------------------------


@pytest.mark.parametrize("policy", ["skip", "once"])
def test_missed_fire_times(sandbox: Sandbox, made: list[Scheduler], policy: str) -> None:
    sandbox.upload(script("fast_exit.py"), "DMO")
    start = minute_now().replace(minute=0) + timedelta(seconds=1)
    clock = FakeClock(start)
    schedule = add(sandbox, clock, cron="*/5 * * * *", missed=policy)
    worker = scheduler(sandbox, clock, made, "solo")
    clock.set(start + timedelta(minutes=62, seconds=30))  # down for an hour: all 12 too late
    tick = worker.tick()
    finish_all(sandbox, tick.submitted)
    ((fire_at, outcome, job_id),) = fires(sandbox, schedule.id)
    assert fire_at == start.replace(second=0) + timedelta(hours=1)  # the newest missed one
    detail = sandbox.schedule_fires(schedule.id)[0].detail or ""
    if policy == "skip":
        assert (outcome, job_id) == ("missed", None)
        assert detail.startswith("12 fire time(s) missed:")
        assert sandbox.jobs(schedule=schedule.id) == []
    else:
        assert outcome == "submitted"
        assert detail.startswith("catch-up run for 12 missed fire time(s):")
        assert [j.id for j in sandbox.jobs(schedule=schedule.id)] == [job_id]
    # Back on time: the next fire time runs as usual.
    clock.set(start + timedelta(minutes=65, seconds=5))
    finish_all(sandbox, worker.tick().submitted)
    assert fires(sandbox, schedule.id)[-1][1] == "submitted"


def test_missed_once_is_covered_by_an_on_time_run(sandbox: Sandbox, made: list[Scheduler]) -> None:
    sandbox.upload(script("fast_exit.py"), "DMO")
    clock = FakeClock(minute_now().replace(minute=0) + timedelta(seconds=1))
    schedule = add(sandbox, clock, cron="*/5 * * * *", missed="once")
    clock.advance(minutes=60)  # 11 fire times too late, the newest (now - 1 s) on time
    finish_all(sandbox, scheduler(sandbox, clock, made, "solo").tick().submitted)
    outcomes = [outcome for _, outcome, _ in fires(sandbox, schedule.id)]
    assert outcomes == ["missed", "submitted"]
    assert "covers them" in (sandbox.schedule_fires(schedule.id)[1].detail or "")


@pytest.mark.parametrize("policy", ["skip", "queue", "cancel"])
def test_overlap(sandbox: Sandbox, made: list[Scheduler], policy: str) -> None:
    sandbox.upload(script("hang.py"), "DMO")
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    schedule = add(sandbox, clock, overlap=policy)
    worker = scheduler(sandbox, clock, made, "solo")
    clock.advance(seconds=60)
    (first,) = worker.tick().submitted
    clock.advance(seconds=60)
    second = worker.tick().submitted
    outcomes = [outcome for _, outcome, _ in fires(sandbox, schedule.id)]
    if policy == "skip":
        assert second == []
        assert outcomes == ["submitted", "skipped"]
        assert first in (sandbox.schedule_fires(schedule.id)[0].detail or "")
    elif policy == "queue":
        assert second == []
        assert outcomes == ["submitted", "waiting"]
        sandbox.cancel(first)
        sandbox.job(first).wait(timeout=30)
        (second_job,) = worker.tick().submitted  # the previous run ended: now it starts
        assert [o for _, o, _ in fires(sandbox, schedule.id)] == ["submitted", "submitted"]
        sandbox.cancel(second_job)
    else:
        (second_job,) = second
        assert outcomes == ["submitted", "submitted"]
        assert sandbox.job(first).wait(timeout=30).status is JobStatus.CANCELLED
        assert sandbox.job_info(second_job).status in (JobStatus.QUEUED, JobStatus.RUNNING)
        sandbox.cancel(second_job)


def test_a_paused_schedule_neither_fires_nor_misses(
    sandbox: Sandbox, made: list[Scheduler]
) -> None:
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    schedule = add(sandbox, clock, target="RMO")
    worker = scheduler(sandbox, clock, made, "solo")
    sandbox.pause_schedule(schedule.id)
    clock.advance(minutes=10)
    assert worker.tick().claimed == []
    # Resumed now (real time, which the fake clock started from): past fire times are not
    # run, nor counted as missed.
    sandbox.schedule_store.set_enabled(schedule.id, True, actor="test", now=clock.now)
    assert worker.tick().claimed == []
    clock.advance(seconds=60)
    assert [outcome for _, _, outcome in worker.tick().claimed] == ["due"]


# -- DST ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expr", "start", "fired"),
    [
        # 02:30 does not exist on the spring-forward day: once, at 03:00 CEST.
        ("Europe/Berlin", "30 2 * * *", datetime(2025, 3, 29, 23, 0, tzinfo=UTC),
         datetime(2025, 3, 30, 1, 0, tzinfo=UTC)),
        # 02:30 happens twice on the fall-back day: once, at its first occurrence.
        ("Europe/Berlin", "30 2 * * *", datetime(2025, 10, 25, 23, 0, tzinfo=UTC),
         datetime(2025, 10, 26, 0, 30, tzinfo=UTC)),
        ("America/New_York", "30 2 * * *", datetime(2025, 3, 9, 5, 0, tzinfo=UTC),
         datetime(2025, 3, 9, 7, 0, tzinfo=UTC)),
        ("America/New_York", "30 1 * * *", datetime(2025, 11, 2, 4, 0, tzinfo=UTC),
         datetime(2025, 11, 2, 5, 30, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_dst_fire_times_run_once(
    sandbox: Sandbox, made: list[Scheduler], zone: str, expr: str, start: datetime, fired: datetime
) -> None:
    sandbox.upload(script("fast_exit.py"), "DMO")
    clock = FakeClock(start)
    schedule = add(sandbox, clock, cron=expr, timezone=zone)
    worker = scheduler(sandbox, clock, made, "solo")
    started: list[str] = []
    while clock.now < start + timedelta(hours=5):  # through the change, every 5 minutes
        clock.advance(minutes=5)
        started += worker.tick().submitted
    finish_all(sandbox, started)
    found = fires(sandbox, schedule.id)
    assert [(t, outcome) for t, outcome, _ in found] == [(fired, "submitted")]
    assert len(started) == 1


# -- deadlines --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["notify", "cancel"])
def test_a_run_not_ended_by_its_deadline_is_marked(
    sandbox: Sandbox, made: list[Scheduler], action: str
) -> None:
    sandbox.upload(script("hang.py"), "DMO")
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    schedule = add(sandbox, clock, deadline=2, deadline_action=action)
    worker = scheduler(sandbox, clock, made, "solo")
    clock.advance(seconds=60)
    (job_id,) = worker.tick().submitted
    fire_at = clock.now.replace(second=0)
    info = sandbox.job_info(job_id).to_dict()
    assert info["schedule_id"] == schedule.id
    assert info["deadline_at"] == (fire_at + timedelta(minutes=2)).isoformat()
    assert info["deadline_missed"] is None
    clock.advance(seconds=60)
    worker.tick()  # skipped (still running), deadline not yet passed
    assert sandbox.job_info(job_id).deadline_missed is None
    clock.set(fire_at + timedelta(minutes=2))
    worker.tick()
    info = sandbox.job_info(job_id).to_dict()
    assert info["deadline_missed"] is True
    if action == "cancel":
        assert sandbox.job(job_id).wait(timeout=30).status is JobStatus.CANCELLED
    else:
        assert sandbox.job_info(job_id).status is JobStatus.RUNNING
        sandbox.cancel(job_id)
        sandbox.job(job_id).wait(timeout=30)
    assert sandbox.job_info(job_id).deadline_missed is True  # judged once


def test_a_run_that_ends_in_time_meets_its_deadline(
    sandbox: Sandbox, made: list[Scheduler]
) -> None:
    sandbox.upload(script("fast_exit.py"), "DMO")
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    add(sandbox, clock, deadline=5)
    worker = scheduler(sandbox, clock, made, "solo")
    clock.advance(seconds=60)
    (job_id,) = worker.tick().submitted
    sandbox.job(job_id).wait(timeout=60)
    worker.tick()
    assert sandbox.job_info(job_id).deadline_missed is False


# -- chains and notifications -------------------------------------------------------------------


def test_a_chain_rmo_on_the_latest_dmo(lite: Sandbox, made: list[Scheduler]) -> None:
    lite.upload(script("result_writer.py"), "DMO")
    lite.upload(script("result_writer.py"), "RMO")
    dmo = lite.run("DMO").wait(timeout=60)
    assert dmo.status is JobStatus.SUCCESS
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    schedule = add(lite, clock, target="RMO", data_source="latest:DMO")
    clock.advance(minutes=1)
    (rmo_id,) = scheduler(lite, clock, made, "solo").tick().submitted
    rmo = lite.job(rmo_id).wait(timeout=60)
    assert rmo.status is JobStatus.SUCCESS
    assert (rmo.data_source_id, rmo.data_source) == ("latest:DMO", f"job:{dmo.id}")
    text = "\n".join(line.text for line in lite.job(rmo_id).logs())
    assert f"source dir: {dmo.result_dir}" in text
    assert '"outcome": "optimal"' in text  # it read the DMO's result.json
    assert rmo.schedule_id == schedule.id


def _posted(server: HTTPServer) -> list[dict[str, object]]:
    return [json.loads(request.get_data()) for request, _ in server.log]


def test_a_run_that_cannot_start_is_recorded_and_notified(
    lite: Sandbox, made: list[Scheduler], httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    target = f"json://localhost:{httpserver.port}/hook"
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    schedule = add(lite, clock, target="RMO", data_source="latest:DMO", notify=[target])
    clock.advance(seconds=60)
    worker = scheduler(lite, clock, made, "solo")
    assert worker.tick().submitted == []
    (fire,) = lite.schedule_fires(schedule.id)
    assert fire.outcome == "error"
    assert fire.detail is not None and "no active RMO model" in fire.detail
    (posted,) = wait_for(lambda: _posted(httpserver), what="the JSON notification")
    assert (
        posted["title"] == f"[sandbox_kit] schedule {schedule.id} (RMO * * * * *): run not started"
    )
    assert "no active RMO model" in str(posted["message"])

    # Had the scheduler stopped before recording it, the next leader would send it again,
    # with the reason read back from the fire time.
    assert worker.notifier.drain(30)  # the first delivery is recorded
    with lite.lifecycle.conn.write() as st:
        st.run(
            "UPDATE notifications SET status = 'sending', updated_at = :t",
            {"t": utcnow() - timedelta(hours=1)},
        )
    httpserver.clear_log()
    successor = scheduler(lite, clock, made, "successor")
    worker.lease.release()
    assert successor.tick().resent == 1
    assert successor.notifier.drain(30)
    (again,) = _posted(httpserver)
    assert again["title"] == posted["title"]
    assert "no active RMO model" in str(again["message"])


def test_job_ends_are_notified_to_the_global_targets(
    home: Path, settings: Settings, made: list[Scheduler], httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/ends", method="POST").respond_with_data("ok")
    target = f"json://localhost:{httpserver.port}/ends"
    sb = Sandbox(home=home, settings=replace(settings, notify=(target,)))
    try:
        worker = scheduler(sb, FakeClock(minute_now()), made, "solo")
        worker.tick()  # leads; job ends from now on are looked at
        sb.upload(script("nonzero_exit.py"), "DMO")
        sb.upload(script("fast_exit.py"), "SO")
        failed = sb.run("DMO").wait(timeout=60)
        ok = sb.run("SO").wait(timeout=60)
        assert (failed.status, ok.status) == (JobStatus.FAILED, JobStatus.SUCCESS)
        assert worker.tick().notified == 1  # the failure; a success is opt-in
        assert worker.tick().notified == 0  # and only once
        assert worker.notifier.drain(30)
        (posted,) = _posted(httpserver)
        assert posted["title"] == f"[sandbox_kit] DMO job {failed.id} failed"
        body = str(posted["message"])
        assert f"Job: {failed.id}" in body
        assert "Model: DMO nonzero_exit v1" in body
        assert "Status: failed (exit code 1)" in body
        assert "ValueError: model blew up" in body  # the log's last lines
        (note,) = sb.job_info(failed.id).to_dict()["notifications"]
        assert note == {
            **note,
            "event": "failed",
            "target_kind": "json",
            "status": "delivered",
            "delivered": True,
            "attempts": 1,
            "error": None,
        }
        assert sb.job_info(ok.id).notifications == ()
    finally:
        sb.close()


def test_notifications_a_stopped_scheduler_left_sending_are_delivered_again(
    sandbox: Sandbox, made: list[Scheduler], httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/again", method="POST").respond_with_data("ok")
    target = f"json://localhost:{httpserver.port}/again"
    removed = f"json://localhost:{httpserver.port}/removed"
    sandbox.settings = replace(sandbox.settings, notify=(target,))
    sandbox.upload(script("nonzero_exit.py"), "DMO")
    failed = sandbox.run("DMO").wait(timeout=60)
    assert failed.status is JobStatus.FAILED
    # A scheduler claimed these an hour ago and stopped before recording the outcome; the
    # second target has since been removed from the settings...
    stopped = Notifier(sandbox.lifecycle.conn, log=LOG)
    old = [
        stopped.claim(subject=failed.id, event="failed", url=url, job_id=failed.id)
        for url in (target, removed)
    ]
    with sandbox.lifecycle.conn.write() as st:
        for claim in old:
            assert claim is not None
            st.run(
                "UPDATE notifications SET updated_at = :t WHERE id = :id",
                {"t": utcnow() - timedelta(hours=1), "id": claim.row_id},
            )
    # ... and a live scheduler claimed this one a moment ago: it is still being delivered.
    assert stopped.claim(subject=failed.id, event="deadline", url=target, job_id=failed.id)
    stopped.close()

    worker = scheduler(sandbox, FakeClock(minute_now()), made, "next")
    assert worker.tick().resent == 1
    assert worker.notifier.drain(30)
    assert worker.tick().resent == 0
    (posted,) = _posted(httpserver)
    assert posted["title"] == f"[sandbox_kit] DMO job {failed.id} failed"
    assert "ValueError: model blew up" in str(posted["message"])
    notes = sandbox.job_info(failed.id).to_dict()["notifications"]
    assert sorted((n["event"], n["status"]) for n in notes) == [
        ("deadline", "sending"),
        ("failed", "delivered"),
        ("failed", "error"),
    ]
    (error,) = [n["error"] for n in notes if n["status"] == "error"]
    assert "target is no longer configured" in error

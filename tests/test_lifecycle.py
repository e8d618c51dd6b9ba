"""The job state machine, on SQLite and PostgreSQL: each transition, and random interleavings
of submit/claim/cancel/finish/lost from several processes at once (Hypothesis)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_kit.db import Database
from sandbox_kit.dbapi import Connection
from sandbox_kit.errors import NotFoundError
from sandbox_kit.lifecycle import CANCEL, GONE, Lifecycle

DRIVER = Path(__file__).with_name("lifecycle_driver.py")
LIMIT = 2


def migrate(db_url: str) -> None:
    db = Database(db_url)
    db.ensure_schema()
    db.dispose()


@pytest.fixture
def lifecycle(db_url: str) -> Iterator[Lifecycle]:
    migrate(db_url)
    lc = Lifecycle(Connection(db_url))
    yield lc
    lc.conn.close()


def create(
    lc: Lifecycle,
    job_id: str,
    model_type: str = "DMO",
    *,
    threads: int = 1,
    tokens: str = "",
    retries: int = 0,
) -> None:
    lc.create(
        retries=retries,
        threads=threads,
        tokens=tokens,
        id=job_id,
        model_id=None,
        model_type=model_type,
        model_name="m",
        model_version=1,
        model_sha256="0" * 64,
        config="{}",
        data_source_id=None,
        timeout_s=None,
        log_path="-",
        result_dir="-",
        spec=json.dumps({"job_id": job_id}),
    )


def test_a_lost_attempt_with_retries_left_is_queued_again_and_fences_the_old_one(
    lifecycle: Lifecycle,
) -> None:
    create(lifecycle, "J1", retries=1)
    (first,) = lifecycle.claim(4, {})
    assert first.attempt == 1
    assert lifecycle.take("J1", attempt=1, worker="tcp://w1")
    assert not lifecycle.take("J1", attempt=1, worker="tcp://w2")  # a task run twice
    assert lifecycle.mark_lost("J1", "worker tcp://w1 stopped", attempt=1)
    assert lifecycle.status("J1") == "queued"
    (second,) = lifecycle.claim(4, {})
    assert second.attempt == 2 and second.spec["attempt"] == 2
    # The dead attempt's late writes change nothing.
    assert lifecycle.heartbeat("J1", attempt=1) == GONE
    assert not lifecycle.take("J1", attempt=1, worker="tcp://w1")
    assert not lifecycle.finish("J1", "failed", attempt=1, reason="late")
    assert not lifecycle.mark_lost("J1", "late", attempt=1)
    assert lifecycle.take("J1", attempt=2, worker="tcp://w2")
    assert lifecycle.heartbeat("J1", attempt=2) is None
    # No retries left: the second loss is final.
    assert lifecycle.mark_lost("J1", "worker tcp://w2 stopped", attempt=2)
    assert lifecycle.status("J1") == "lost"
    with lifecycle.conn.read() as st:
        row = st.run("SELECT attempt, reason, worker FROM jobs WHERE id = 'J1'").one()
    assert row == (2, "worker tcp://w2 stopped", "tcp://w2")


def test_a_cancelled_job_is_not_retried(lifecycle: Lifecycle) -> None:
    create(lifecycle, "J1", retries=3)
    lifecycle.claim(4, {})
    lifecycle.cancel("J1")
    assert lifecycle.mark_lost("J1", "worker gone")
    assert lifecycle.status("J1") == "lost"


def test_a_job_goes_queued_running_and_ends_once(lifecycle: Lifecycle) -> None:
    create(lifecycle, "J1")
    assert lifecycle.status("J1") == "queued"
    claimed = lifecycle.claim(4, {})
    assert [(c.job_id, c.spec, c.slot, c.threads, c.attempt) for c in claimed] == [
        ("J1", {"job_id": "J1", "slot": 0, "threads": 1, "attempt": 1}, 0, 1, 1)
    ]
    assert lifecycle.status("J1") == "running"
    assert lifecycle.finish("J1", "success", exit_code=0, metrics={"x": 1.0}, truncated=False)
    assert not lifecycle.finish("J1", "failed", reason="late")
    assert not lifecycle.mark_lost("J1", "late")
    assert lifecycle.status("J1") == "success"


def test_claim_is_fifo_within_the_global_and_per_type_limits(lifecycle: Lifecycle) -> None:
    for i, kind in enumerate(["SO", "SO", "DMO", "RMO", "DMO"]):
        create(lifecycle, f"J{i}", kind)
    first = [c.job_id for c in lifecycle.claim(3, {"SO": 1})]
    assert first == ["J0", "J2", "J3"]  # the second SO waits for its type; others go on
    assert lifecycle.claim(3, {"SO": 1}) == []  # full
    assert lifecycle.finish("J0", "success")
    (again,) = lifecycle.claim(3, {"SO": 1})
    assert (again.job_id, again.slot) == ("J1", 0)  # the slot J0 freed: two running jobs
    # never share a slot (and so, isolated as root, never share a uid)


def test_cancel_of_queued_running_finished_and_missing_jobs(lifecycle: Lifecycle) -> None:
    create(lifecycle, "Q")
    ticket = lifecycle.cancel("Q")
    assert (ticket.status, ticket.ended, lifecycle.status("Q")) == ("queued", True, "cancelled")
    assert lifecycle.claim(4, {}) == []  # a cancelled job never starts
    create(lifecycle, "R")
    lifecycle.claim(4, {})
    ticket = lifecycle.cancel("R")
    assert (ticket.status, ticket.ended, lifecycle.status("R")) == ("running", False, "running")
    assert lifecycle.heartbeat("R") == CANCEL  # the supervisor learns of it
    assert lifecycle.finish("R", "cancelled", reason="killed by cancel")
    assert lifecycle.heartbeat("R") == GONE  # ended: a supervisor still beating must stop
    assert lifecycle.cancel("R").status == "cancelled"  # finished: left alone
    with pytest.raises(NotFoundError):
        lifecycle.cancel("nope")


def test_verdicts_and_columns_are_checked(lifecycle: Lifecycle) -> None:
    create(lifecycle, "J")
    lifecycle.claim(4, {})
    with pytest.raises(ValueError, match="not a verdict"):
        lifecycle.finish("J", "lost")
    with pytest.raises(TypeError, match="unknown columns"):
        lifecycle.finish("J", "success", claimed_at=None)
    assert lifecycle.status("J") == "running"


def test_the_clock_is_injected(lifecycle: Lifecycle) -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    lc = Lifecycle(lifecycle.conn, now=lambda: past)
    create(lc, "J")
    lc.claim(4, {})
    (job,) = lc.running()
    assert job.last_sign == past  # the claim time, as the injected clock said
    lc.now = lambda: past + timedelta(minutes=1)
    lc.heartbeat("J")
    assert lc.running()[0].last_sign == past + timedelta(minutes=1)


def claimed(lc: Lifecycle, cpu_slots: int, tokens: dict[str, int] | None = None) -> list[str]:
    return [c.job_id for c in lc.claim(cpu_slots, {}, tokens)]


def test_jobs_take_as_many_cpu_slots_as_threads(lifecycle: Lifecycle) -> None:
    create(lifecycle, "W", threads=2)
    create(lifecycle, "N1")
    create(lifecycle, "N2")
    wide, narrow = lifecycle.claim(3, {})
    assert (wide.job_id, wide.threads, wide.spec["threads"], wide.slot) == ("W", 2, 2, 0)
    assert (narrow.job_id, narrow.threads, narrow.slot) == ("N1", 1, 1)
    assert claimed(lifecycle, 3) == []  # 2 + 1 of 3 slots taken: N2 waits


def test_the_claim_counts_cpu_slots_not_jobs(lifecycle: Lifecycle) -> None:
    create(lifecycle, "A", threads=2)
    create(lifecycle, "B", threads=2)
    assert claimed(lifecycle, 2) == ["A"]  # two 2-thread jobs on 2 slots: one after the other
    assert claimed(lifecycle, 2) == []
    assert lifecycle.finish("A", "success")
    assert claimed(lifecycle, 2) == ["B"]
    with lifecycle.conn.read() as st:
        rows = st.run("SELECT id, threads, slot FROM jobs ORDER BY id").all()
    assert [tuple(r) for r in rows] == [("A", 2, 0), ("B", 2, 0)]  # one uid slot each


def test_a_wide_job_is_not_starved_by_narrow_ones(lifecycle: Lifecycle) -> None:
    create(lifecycle, "N0")
    assert claimed(lifecycle, 4) == ["N0"]
    create(lifecycle, "WIDE", threads=4)
    create(lifecycle, "N1")
    create(lifecycle, "N2")
    # 3 slots are free, WIDE needs 4: nothing younger starts before it.
    assert claimed(lifecycle, 4) == []
    assert lifecycle.finish("N0", "success")
    assert claimed(lifecycle, 4) == ["WIDE"]
    assert lifecycle.finish("WIDE", "success")
    assert claimed(lifecycle, 4) == ["N1", "N2"]


def test_more_threads_than_slots_runs_alone_on_all_of_them(lifecycle: Lifecycle) -> None:
    create(lifecycle, "HUGE", threads=16)
    (job,) = lifecycle.claim(3, {})
    assert (job.threads, job.spec["threads"]) == (3, 3)  # capped: it would never start else


def test_a_type_cap_or_an_empty_licence_pool_does_not_hold_others_back(
    lifecycle: Lifecycle,
) -> None:
    create(lifecycle, "G1", "DMO", tokens="gurobi")
    create(lifecycle, "G2", "SO", tokens="gurobi")  # another type, the same pool
    create(lifecycle, "S1", "SO")
    create(lifecycle, "X", "RMO", tokens="gurobi+xpress")
    pools = {"gurobi": 1}
    assert claimed(lifecycle, 8, pools) == ["G1", "S1"]  # one gurobi token: G2 and X wait
    assert lifecycle.finish("G1", "success")
    assert claimed(lifecycle, 8, pools) == ["G2"]  # the oldest waiting for the pool first
    assert lifecycle.finish("G2", "success")
    assert claimed(lifecycle, 8, pools) == ["X"]  # xpress: no pool set, no limit


_IDS = [f"J{i}" for i in range(6)]
_OP = st.one_of(
    st.tuples(
        st.just("submit"),
        st.sampled_from(_IDS),
        st.sampled_from(["DMO", "SO"]),
        st.integers(1, 3),  # threads (LIMIT is 2: a 3-thread job gets 2)
        st.sampled_from(["", "gurobi"]),
    ),
    st.tuples(st.just("claim"), st.just("")),
    st.tuples(st.just("cancel"), st.sampled_from(_IDS)),
    st.tuples(
        st.just("finish"),
        st.sampled_from(_IDS),
        st.sampled_from(["success", "failed", "cancelled", "timeout"]),
    ),
    st.tuples(st.just("lost"), st.sampled_from(_IDS)),
)


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workers=st.lists(st.lists(_OP, max_size=14), min_size=3, max_size=3))
def test_interleavings_from_several_processes_keep_the_invariants(
    db_url: str, workers: list[list[tuple[str, ...]]]
) -> None:
    migrate(db_url)
    prefix = secrets.token_hex(3)
    # Every submit of an id happens once, in the first worker that names it.
    seen: set[str] = set()
    plans = []
    for ops in workers:
        plan = []
        for op in ops:
            job_id = f"{prefix}_{op[1]}" if op[1] else ""
            if op[0] == "submit":
                if job_id in seen:
                    continue
                seen.add(job_id)
            plan.append([op[0], job_id, *op[2:]])
        plans.append(plan)
    procs = [
        subprocess.Popen(
            [sys.executable, str(DRIVER), db_url, str(LIMIT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in plans
    ]
    outputs = [
        p.communicate(json.dumps(plan), timeout=120)[0]
        for p, plan in zip(procs, plans, strict=True)
    ]
    assert all(p.returncode == 0 for p in procs)
    events = [event for out in outputs for event in json.loads(out)]
    assert [e for e in events if e[0] == "over"] == []  # never more running than the limits
    # Drain what is left, as supervisors and cancels would, then count terminal transitions.
    lc = Lifecycle(Connection(db_url))
    for job_id in sorted(seen):
        if lc.cancel(job_id).ended:
            events.append(["ended", job_id, "cancelled"])
        elif lc.finish(job_id, "success"):
            events.append(["ended", job_id, "success"])
    ended = Counter(e[1] for e in events if e[0] == "ended")
    assert ended == Counter({job_id: 1 for job_id in seen})  # exactly one terminal status each
    for event in events:
        if event[0] == "ended":
            assert lc.status(event[1]) == event[2]
    lc.conn.close()

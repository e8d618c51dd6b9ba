"""The :class:`Follower` behind ``Job.follow`` and the HTTP API's event stream (issue 16)."""

from __future__ import annotations

from sandbox_kit import Sandbox
from sandbox_kit.jobs import Follower
from tests.conftest import script

LINES = 50_000  # ~1 MB of log: several bounded polls


def _finished_flood(sb: Sandbox) -> str:
    job = sb.run(sb.upload(script("flood.py"), "DMO").id, config={"lines": LINES})
    assert job.wait(timeout=120).status.value == "success"
    return job.id


def test_every_line_once_in_bounded_polls_then_the_end(lite: Sandbox) -> None:
    info = lite.job_info(_finished_flood(lite))
    follower = Follower(info, since=10)
    kinds: list[str] = []
    seqs: list[int] = []
    polls = 0
    while not follower.done:
        events = follower.poll(info, 128 * 1024)
        polls += 1
        kinds += [e.kind for e in events]
        seqs += [e.line.seq for e in events if e.line is not None]
        assert follower.moved or follower.done
    assert polls > 3  # bounded: the log was read in pieces
    assert kinds[0] == "started" and kinds[-1] == "completed"
    assert seqs == list(range(11, LINES + 1)) and follower.last_seq == LINES
    assert follower.poll(info) == []


def test_a_follower_that_falls_behind_is_told_where_it_skipped(lite: Sandbox) -> None:
    job_id = _finished_flood(lite)
    info = lite.job_info(job_id)
    follower = Follower(info)
    head = follower.poll(info, 128 * 1024)  # reads the start, falls behind the rest
    read = [e.line.seq for e in head if e.line is not None]
    events = []
    while not follower.done:
        events += follower.poll(info, lag_bytes=200 * 1024)
    assert events[0].kind == "resync" and events[0].since == read[-1]
    assert [e.kind for e in events].count("resync") == 1
    after = [e.line.seq for e in events if e.line is not None]
    assert after == list(range(after[0], LINES + 1)) and after[0] > read[-1] + 1
    assert events[-1].kind == "completed"
    gap = [line.seq for line in lite.job(job_id).iter_logs(since=read[-1])][:3]
    assert gap == [read[-1] + 1, read[-1] + 2, read[-1] + 3]  # the skipped lines are kept

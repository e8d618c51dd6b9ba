"""What one event-stream client follows, turned into the original spec's messages.

A stream is stepped on a worker thread with the hub's newest :class:`~.hub.Snapshot`; each
step reads a bounded chunk of each followed job's durable log through
:class:`sandbox_kit.jobs.Follower` (the core of :meth:`Job.follow`) and returns JSON texts.
Its state is a file offset per job, so a client that reads slowly leaves its unread lines in
the log files, not in the server's memory.

Messages (``modelType`` and ``jobId`` on each)::

    optimization:started    status, job
    optimization:log        seq, ts, level, stream, text
    optimization:progress   stream, text (the current ``\\r`` line changed)
    optimization:completed  status "success", job
    optimization:failed     status "failed" | "timeout" | "cancelled" | "lost", reason, job
    resync                  since, message (the all-jobs stream skipped lines after ``since``)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox_kit.errors import NotFoundError
from sandbox_kit.jobs import Event, Follower
from sandbox_kit.records import JobInfo, JobStatus, ModelType

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox
    from sandbox_kit.server.hub import Snapshot

#: Log bytes one step reads per job (the least a log reader reads is two whole records).
STEP_BYTES = 256 * 1024
_EVENTS = {
    "started": "optimization:started",
    "log": "optimization:log",
    "progress": "optimization:progress",
    "completed": "optimization:completed",
    "resync": "resync",
}


class Step:
    """What one step produced.

    Attributes:
        messages: JSON texts to send, in order.
        done: the stream has ended (its job's terminal message is among ``messages``).
        more: log was read: more may be waiting, step again without waiting for the hub.
    """

    __slots__ = ("done", "messages", "more")

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.done = False
        self.more = False


def message(event: Event) -> dict[str, Any]:
    """The wire form of a follower's event (see the module doc)."""
    info = event.job
    out: dict[str, Any] = {
        "event": _EVENTS.get(event.kind, "optimization:failed"),
        "jobId": info.id,
        "modelType": info.model_type.value,
    }
    if event.line is not None:
        out.update(event.line.to_dict())
    elif event.progress is not None:
        out.update(stream=event.progress.stream, text=event.progress.text)
    elif event.kind == "resync":
        out["since"] = event.since
        out["message"] = (
            f"resync from seq {event.since}: this client fell behind and the lines after it "
            f"were skipped; read them with GET jobs/{info.id}/logs?since={event.since}"
        )
    else:
        out["status"] = info.status.value
        if event.kind not in ("started", "completed"):
            out["status"] = event.kind  # failed, timeout, cancelled, lost
            out["reason"] = info.reason
        out["job"] = info.to_dict()
    return out


class JobStream:
    """One job, from line ``since`` on, to its end; every line, in order, whatever the pace.

    Args:
        info: the job's record when the client connected.
        since: the last line the client already has.
    """

    def __init__(self, info: JobInfo, since: int = 0) -> None:
        self.job_id = info.id
        self._follower = Follower(info, since)

    def step(self, snapshot: Snapshot, sandbox: Callable[[], Sandbox]) -> Step:
        """Read what is new (blocking: run it on a worker thread)."""
        step = Step()
        info = snapshot.jobs.get(self.job_id) or sandbox().job_info(self.job_id)
        events = self._follower.poll(info, STEP_BYTES)
        step.messages = [_text(e) for e in events]
        step.done, step.more = self._follower.done, self._follower.moved
        return step


class AllJobsStream:
    """Every job (of one type, optionally) as it happens, from the moment of connection.

    Jobs running when the client connects are announced (``started``) and followed from
    their newest lines; jobs that appear later are followed from their first line. A client
    that falls more than ``lag_bytes`` behind a job's log is sent ``resync`` and skipped to
    the newest lines (it can read the gap with ``GET jobs/{jobId}/logs?since=``).

    Args:
        model_type: only jobs of this type (None: all).
        lag_bytes: how far behind a job's log the client may fall.
    """

    def __init__(self, model_type: ModelType | None, *, lag_bytes: int) -> None:
        self._type = model_type
        self._lag = lag_bytes
        self._followers: dict[str, Follower] = {}
        self._known: set[str] | None = None  # jobs of the previous snapshot

    def step(self, snapshot: Snapshot, sandbox: Callable[[], Sandbox]) -> Step:
        """Read what is new (blocking: run it on a worker thread)."""
        step = Step()
        jobs = {i.id: i for i in snapshot.jobs.values() if self._type in (None, i.model_type)}
        first = self._known is None
        for job_id, info in jobs.items():
            if job_id in self._followers or (self._known is not None and job_id in self._known):
                continue
            if first and info.status.terminal:
                continue  # finished before the client came
            follower = Follower(info, 0)
            self._followers[job_id] = follower
            if first and info.status is JobStatus.RUNNING:
                # Announce it, and go on from its newest lines (the rest is in its log).
                events = follower.poll(info, STEP_BYTES, lag_bytes=0)
                step.messages += [_text(e) for e in events if e.kind == "started"]
        self._known = set(jobs)
        for job_id, follower in list(self._followers.items()):
            now = jobs.get(job_id) or _record(sandbox(), job_id)
            if now is None:  # deleted meanwhile
                del self._followers[job_id]
                continue
            if now.status is JobStatus.QUEUED:
                continue  # no log yet
            events = follower.poll(now, STEP_BYTES, lag_bytes=self._lag)
            step.messages += [_text(e) for e in events]
            step.more = step.more or follower.moved
            if follower.done:
                del self._followers[job_id]
        return step


def _record(sandbox: Sandbox, job_id: str) -> JobInfo | None:
    try:
        return sandbox.job_info(job_id)
    except NotFoundError:
        return None


def _text(event: Event) -> str:
    return json.dumps(message(event), ensure_ascii=False)

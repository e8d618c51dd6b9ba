"""The job state machine: the one module that changes a job's status.

Every change is a conditional ``UPDATE ... WHERE status IN (...)`` inside a transaction that
holds the registry's write lock, so when a supervisor, a cancel and a reconciliation race, one
wins and the others see that nothing changed. Nothing else in sandbox_kit writes ``status``.

============  ==========================  ========================================================
from          to                          by
============  ==========================  ========================================================
(new)         ``queued``                  :meth:`Lifecycle.create` (``Sandbox.run``)
``queued``    ``running``                 :meth:`Lifecycle.claim`: oldest first, while the global
                                          and per-type limits allow (any dispatching process)
``queued``    ``cancelled``               :meth:`Lifecycle.cancel`: it never starts
``running``   (flag ``cancel_requested``) :meth:`Lifecycle.cancel`: the supervisor stops the tree
``running``   ``success`` ``failed``      :meth:`Lifecycle.finish`: the supervisor's verdict
              ``cancelled`` ``timeout``
``running``   ``failed``                  :meth:`Lifecycle.finish` by the executor when the
                                          supervisor cannot be started
``running``   ``lost``                    :meth:`Lifecycle.mark_lost`: reconciliation found its
                                          supervisor gone
============  ==========================  ========================================================

Terminal statuses never change again. Like :mod:`sandbox_kit.dbapi`, this module imports no
SQLAlchemy, so a supervisor can use it within milliseconds of starting.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox_kit.dbapi import Connection
from sandbox_kit.errors import NotFoundError

QUEUED, RUNNING = "queued", "running"
TERMINAL = ("success", "failed", "cancelled", "timeout", "lost")
_VERDICTS = frozenset({"success", "failed", "cancelled", "timeout"})
_FINISH_COLUMNS = frozenset(
    {"reason", "exit_code", "signal", "truncated", "outcome", "objective", "metrics"}
)
_CREATE_COLUMNS = (
    "id",
    "model_id",
    "model_type",
    "model_name",
    "model_version",
    "model_sha256",
    "config",
    "data_source_id",
    "timeout_s",
    "log_path",
    "result_dir",
    "spec",
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job this process moved from ``queued`` to ``running`` and must now start.

    ``slot`` is the lowest slot number no other running job holds; with isolation it picks
    the job's uid, so two running jobs never share one (issue 8).
    """

    job_id: str
    spec: dict[str, Any]
    slot: int


@dataclass(frozen=True, slots=True)
class CancelTicket:
    """What :meth:`Lifecycle.cancel` did, and whom to signal for a running job."""

    status: str  # the job's status when the cancel arrived
    ended: bool = False  # this call moved it from queued to cancelled
    supervisor_pid: int | None = None
    supervisor_started: float | None = None
    supervisor_ready: bool = False  # its signal handlers are installed (it has beaten once)


@dataclass(frozen=True, slots=True)
class Liveness:
    """What reconciliation needs to judge a running job."""

    job_id: str
    host: str | None
    supervisor_pid: int | None
    supervisor_started: float | None
    last_sign: datetime | None  # heartbeat, else the claim


class Lifecycle:
    """Status changes of the jobs in one database.

    Args:
        conn: a :class:`~sandbox_kit.dbapi.Connection` to the registry.
        now: the clock (tests inject one instead of sleeping).
    """

    def __init__(self, conn: Connection, *, now: Callable[[], datetime] = utcnow) -> None:
        self.conn = conn
        self.now = now

    def create(self, **values: Any) -> None:
        """Insert a new job as ``queued`` (values: the columns of ``_CREATE_COLUMNS``)."""
        missing = set(_CREATE_COLUMNS) - set(values)
        if missing:
            raise TypeError(f"create() needs {sorted(missing)}")
        row = {name: values[name] for name in _CREATE_COLUMNS}
        columns = ", ".join(_CREATE_COLUMNS)
        names = ", ".join(f":{name}" for name in _CREATE_COLUMNS)
        with self.conn.write() as st:
            st.run(
                f"INSERT INTO jobs ({columns}, status, created_at, truncated, attempt, "
                f"cancel_requested, metrics) VALUES ({names}, :status, :now, :f, 1, :f, '{{}}')",
                {**row, "status": QUEUED, "now": self.now(), "f": False},
            )

    def claim(self, max_running: int, per_type: dict[str, int]) -> list[Claimed]:
        """Move the oldest queued jobs to ``running`` while the limits allow; FIFO, except that
        a type at its own cap does not hold back the other types."""
        claimed: list[Claimed] = []
        with self.conn.write() as st:
            running: Counter[str] = Counter(
                dict(
                    st.run(
                        "SELECT model_type, COUNT(*) FROM jobs WHERE status = :r "
                        "GROUP BY model_type",
                        {"r": RUNNING},
                    ).all()
                )
            )
            free = max_running - sum(running.values())
            if free <= 0:
                return []
            queued = st.run(
                "SELECT id, model_type, spec FROM jobs WHERE status = :q ORDER BY created_at, id",
                {"q": QUEUED},
            ).all()
            taken = {
                slot
                for (slot,) in st.run(
                    "SELECT slot FROM jobs WHERE status = :r AND slot IS NOT NULL", {"r": RUNNING}
                ).all()
            }
            now = self.now()
            for job_id, model_type, spec in queued:
                if free <= 0:
                    break
                cap = per_type.get(model_type)
                if cap is not None and running[model_type] >= cap:
                    continue
                slot = next(n for n in range(len(taken) + 1) if n not in taken)
                taken.add(slot)
                st.run(
                    "UPDATE jobs SET status = :r, claimed_at = :now, slot = :slot "
                    "WHERE id = :id AND status = :q",
                    {"r": RUNNING, "q": QUEUED, "now": now, "slot": slot, "id": job_id},
                )
                running[model_type] += 1
                free -= 1
                claimed.append(Claimed(job_id, {**json.loads(spec), "slot": slot}, slot))
        return claimed

    def spawned(self, job_id: str, *, pid: int, pid_started: float | None) -> None:
        """Record the supervisor process of a claimed job."""
        with self.conn.write() as st:
            st.run(
                "UPDATE jobs SET supervisor_pid = :pid, supervisor_started = :ps, "
                "started_at = :now WHERE id = :id AND status = :r",
                {"pid": pid, "ps": pid_started, "now": self.now(), "id": job_id, "r": RUNNING},
            )

    def started(
        self,
        job_id: str,
        *,
        started: datetime,
        model_pid: int,
        model_started: float | None,
        python_version: str,
        supervisor_pid: int,
        supervisor_started: float | None,
        isolation: str,
    ) -> bool:
        """The supervisor's first word: the model runs. Returns True if a cancel is pending."""
        with self.conn.write() as st:
            st.run(
                "UPDATE jobs SET started_at = :started, heartbeat_at = :now, model_pid = :mp, "
                "model_started = :ms, host = :host, python_version = :pv, "
                "supervisor_pid = :sp, supervisor_started = :ss, isolation = :iso "
                "WHERE id = :id AND status = :r",
                {
                    "iso": isolation,
                    "sp": supervisor_pid,
                    "ss": supervisor_started,
                    "started": started,
                    "now": self.now(),
                    "mp": model_pid,
                    "ms": model_started,
                    "host": platform.node(),
                    "pv": python_version,
                    "id": job_id,
                    "r": RUNNING,
                },
            )
            return _cancel_flag(st, job_id)

    def heartbeat(self, job_id: str) -> bool:
        """Prove the supervisor is alive; returns True when a cancel was requested."""
        with self.conn.write() as st:
            st.run(
                "UPDATE jobs SET heartbeat_at = :now WHERE id = :id AND status = :r",
                {"now": self.now(), "id": job_id, "r": RUNNING},
            )
            return _cancel_flag(st, job_id)

    def finish(self, job_id: str, status: str, **values: Any) -> bool:
        """``running`` -> ``status`` (a verdict), once; returns False if it had ended already.

        ``values`` may set ``reason``, ``exit_code``, ``signal``, ``truncated``, ``outcome``,
        ``objective`` and ``metrics`` (a dict).
        """
        if status not in _VERDICTS:
            raise ValueError(f"not a verdict: {status!r}")
        unknown = set(values) - _FINISH_COLUMNS
        if unknown:
            raise TypeError(f"finish() got unknown columns {sorted(unknown)}")
        if "metrics" in values:
            values["metrics"] = json.dumps(values["metrics"] or {})
        return self._end(job_id, (RUNNING,), status, values)

    def mark_lost(self, job_id: str, reason: str) -> bool:
        """``running`` -> ``lost``; returns False when the job had ended meanwhile."""
        return self._end(job_id, (RUNNING,), "lost", {"reason": reason})

    def cancel(self, job_id: str) -> CancelTicket:
        """Cancel a job: a queued one ends ``cancelled`` now; a running one is flagged (its
        supervisor stops the tree and records the end); a finished one is left alone.

        Raises:
            NotFoundError: no job with this id.
        """
        with self.conn.write() as st:
            row = st.run(
                "SELECT status, supervisor_pid, supervisor_started, heartbeat_at FROM jobs "
                "WHERE id = :id",
                {"id": job_id},
            ).one()
            if row is None:
                raise NotFoundError("job", job_id)
            status, pid, pid_started, beat = row
            if status == QUEUED:
                st.run(
                    "UPDATE jobs SET status = 'cancelled', reason = :why, finished_at = :now "
                    "WHERE id = :id AND status = :q",
                    {
                        "why": "cancelled before it started",
                        "now": self.now(),
                        "id": job_id,
                        "q": QUEUED,
                    },
                )
                return CancelTicket(QUEUED, ended=True)
            if status != RUNNING:
                return CancelTicket(status)
            st.run(
                "UPDATE jobs SET cancel_requested = :t WHERE id = :id", {"t": True, "id": job_id}
            )
            return CancelTicket(RUNNING, False, pid, pid_started, beat is not None)

    def running(self) -> list[Liveness]:
        """The running jobs, with what tells whether their supervisor lives."""
        with self.conn.read() as st:
            rows = st.run(
                "SELECT id, host, supervisor_pid, supervisor_started, heartbeat_at, claimed_at "
                "FROM jobs WHERE status = :r",
                {"r": RUNNING},
            ).all()
            return [
                Liveness(job_id, host, pid, started, st.moment(beat) or st.moment(claimed))
                for job_id, host, pid, started, beat, claimed in rows
            ]

    def status(self, job_id: str) -> str | None:
        """The job's status, or None when there is no such job."""
        with self.conn.read() as st:
            row = st.run("SELECT status FROM jobs WHERE id = :id", {"id": job_id}).one()
            return None if row is None else str(row[0])

    def _end(
        self, job_id: str, sources: tuple[str, ...], status: str, values: dict[str, Any]
    ) -> bool:
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        allowed = ", ".join(f":from{i}" for i in range(len(sources)))
        params = {**values, "status": status, "now": self.now(), "id": job_id}
        params.update({f"from{i}": source for i, source in enumerate(sources)})
        with self.conn.write() as st:
            return (
                st.run(
                    f"UPDATE jobs SET status = :status, finished_at = :now"
                    f"{', ' if assignments else ''}{assignments} "
                    f"WHERE id = :id AND status IN ({allowed})",
                    params,
                ).rowcount
                == 1
            )


def _cancel_flag(st: Any, job_id: str) -> bool:
    row = st.run("SELECT cancel_requested FROM jobs WHERE id = :id", {"id": job_id}).one()
    return bool(row and row[0])

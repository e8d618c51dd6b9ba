"""The job state machine: the one module that changes a job's status.

Every change is a conditional ``UPDATE ... WHERE status IN (...)`` inside a transaction that
holds the registry's write lock, so when a supervisor, a cancel and a reconciliation race, one
wins and the others see that nothing changed. Nothing else in sandbox_kit writes ``status``.

============  ==========================  ========================================================
from          to                          by
============  ==========================  ========================================================
(new)         ``queued``                  :meth:`Lifecycle.create` (``Sandbox.run``)
(new)         ``success``                 :meth:`Lifecycle.create_cached`: a cache hit (issue 11);
                                          no process runs, ``cached_from`` names the job whose
                                          result and log it hands out
``queued``    ``running``                 :meth:`Lifecycle.claim`: oldest first, while the CPU
                                          slots, per-type caps and licence pools allow (any
                                          dispatching process; policy in its docstring)
``queued``    ``cancelled``               :meth:`Lifecycle.cancel`: it never starts
``running``   ``cancelled``               :meth:`Lifecycle.cancel` of a remote job not yet taken
``running``   (flag ``cancel_requested``) :meth:`Lifecycle.cancel`: the supervisor stops the tree
``running``   ``success`` ``failed``      :meth:`Lifecycle.finish`: the supervisor's verdict
              ``cancelled`` ``timeout``
``running``   ``failed``                  :meth:`Lifecycle.finish` by the executor when the
                                          supervisor cannot be started
``running``   ``lost``                    :meth:`Lifecycle.mark_lost`: reconciliation found its
                                          supervisor gone
``running``   ``queued`` (attempt + 1)    :meth:`Lifecycle.mark_lost` of a job with retries left
                                          (issue 12): a new attempt, claimed like any other
``running``   ``queued``                  :meth:`Lifecycle.release`: a claimed job no Dask worker
                                          took and the cluster lost (or never got); same attempt
============  ==========================  ========================================================

Terminal statuses never change again. A job's ``attempt`` fences the writes of its
supervisor: the Dask executor may run a task twice, and a worker thought dead may come back,
so a supervisor passes its attempt and its writes change nothing once a newer attempt exists.

Like :mod:`sandbox_kit.dbapi`, this module imports no
SQLAlchemy, so a supervisor can use it within milliseconds of starting.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox_kit import audit
from sandbox_kit.dbapi import Connection, Statements
from sandbox_kit.errors import NotFoundError

QUEUED, RUNNING = "queued", "running"
#: What a heartbeat can tell a supervisor (:meth:`Lifecycle.heartbeat`).
CANCEL, GONE = "cancel", "gone"
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
#: Columns :meth:`Lifecycle.create` and :meth:`Lifecycle.create_cached` also take (issue 11).
_OPTIONAL_CREATE_COLUMNS = (
    "data_source",
    "data_source_sha256",
    "cache_key",
    "cache_parts",
    "cache_miss_reason",
    "sweep_id",
    "sweep_index",
    # Who asked for the run (issue 13); also recorded in the audit trail, same transaction.
    "started_by",
    # CPU slots asked for and licence pools ("+"-joined) (issue 15).
    "threads",
    "tokens",
    # Where it runs, and how many lost attempts may be queued again (issue 12).
    "executor",
    "retries",
    # The schedule that fired the run, and the run's deadline (issue 10).
    "schedule_id",
    "deadline_at",
)
#: What a cache hit takes over from the job whose result it reuses.
_CACHED_COPY = (
    "log_path",
    "result_dir",
    "outcome",
    "objective",
    "metrics",
    "truncated",
    "exit_code",
    "python_version",
)


#: A check run inside a job's insert transaction (see :meth:`Lifecycle.create`).
Guard = Callable[[Statements, Mapping[str, Any]], None]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job this process moved from ``queued`` to ``running`` and must now start.

    ``slot`` is the lowest slot number no other running job holds; with isolation it picks
    the job's uid, so two running jobs never share one (issue 8). ``threads`` is the number of
    CPU slots it holds (issue 15): a 4-thread job has one ``slot`` and 4 CPU slots.
    """

    job_id: str
    spec: dict[str, Any]
    slot: int
    threads: int = 1
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class CancelTicket:
    """What :meth:`Lifecycle.cancel` did, and whom to signal for a running job."""

    status: str  # the job's status when the cancel arrived
    ended: bool = False  # this call moved it from queued to cancelled
    supervisor_pid: int | None = None
    supervisor_started: float | None = None
    supervisor_ready: bool = False  # its signal handlers are installed (it has beaten once)
    #: A remote job no worker took yet, ended here: its Dask task (job id, attempt) to cancel.
    task: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Liveness:
    """What reconciliation needs to judge a running job."""

    job_id: str
    host: str | None
    supervisor_pid: int | None
    supervisor_started: float | None
    last_sign: datetime | None  # heartbeat, else the claim
    worker: str | None = None  # the Dask worker that took it (issue 12)
    attempt: int = 1
    remote: bool = False  # run by the Dask executor


class Lifecycle:
    """Status changes of the jobs in one database.

    Args:
        conn: a :class:`~sandbox_kit.dbapi.Connection` to the registry.
        now: the clock (tests inject one instead of sleeping).
    """

    def __init__(self, conn: Connection, *, now: Callable[[], datetime] = utcnow) -> None:
        self.conn = conn
        self.now = now

    def create(self, *, guard: Guard | None = None, **values: Any) -> None:
        """Insert a new job as ``queued`` (values: the columns of ``_CREATE_COLUMNS``, and
        any of ``_OPTIONAL_CREATE_COLUMNS``).

        ``guard(st, values)`` runs first inside the insert's transaction; whatever it raises
        aborts the insert (the scheduler checks its lease and claims the fire time there, so
        a fire time gets its job exactly once, issue 10).
        """
        missing = set(_CREATE_COLUMNS) - set(values)
        if missing:
            raise TypeError(f"create() needs {sorted(missing)}")
        given = [*_CREATE_COLUMNS, *(c for c in _OPTIONAL_CREATE_COLUMNS if c in values)]
        row = {name: values[name] for name in given}
        columns = ", ".join(given)
        names = ", ".join(f":{name}" for name in given)
        with self.conn.write() as st:
            if guard is not None:
                guard(st, values)
            st.run(
                f"INSERT INTO jobs ({columns}, status, created_at, truncated, attempt, "
                f"cancel_requested, metrics) VALUES ({names}, :status, :now, :f, 1, :f, '{{}}')",
                {**row, "status": QUEUED, "now": self.now(), "f": False},
            )
            _audit_run(st, values, at=self.now())

    def create_cached(self, *, cached_from: str, guard: Guard | None = None, **values: Any) -> bool:
        """Insert a job that is a cache hit: ``success`` at once, no process (issue 11).

        ``values`` are the new job's own columns, as for :meth:`create` (its id, model,
        config, data source, key, sweep; ``log_path``, ``result_dir`` and ``spec`` are not
        needed). The log, result folder, outcome, objective and metrics are those of
        ``cached_from``, read in the same transaction. Returns False, inserting nothing, when
        that job is no longer a ``success`` (deleted meanwhile): the caller runs instead.
        ``guard`` is as for :meth:`create`.
        """
        own = [c for c in (*_CREATE_COLUMNS, *_OPTIONAL_CREATE_COLUMNS) if c in values]
        if "id" not in own:
            raise TypeError("create_cached() needs an id")
        unknown = set(values) - set(own)
        if unknown:
            raise TypeError(f"create_cached() got unknown columns {sorted(unknown)}")
        own = [c for c in own if c not in _CACHED_COPY and c != "spec"]
        with self.conn.write() as st:
            found = st.run(
                f"SELECT {', '.join(_CACHED_COPY)} FROM jobs WHERE id = :id AND status = :ok",
                {"id": cached_from, "ok": "success"},
            ).one()
            if found is None:
                return False
            if guard is not None:
                guard(st, values)
            row = {
                **{name: values[name] for name in own},
                **dict(zip(_CACHED_COPY, found, strict=True)),
            }
            columns = [*row, "status", "created_at", "started_at", "finished_at", "attempt"]
            columns += ["cancel_requested", "spec", "cached_from"]
            now = self.now()
            params = {
                **row,
                "status": "success",
                "created_at": now,
                "started_at": now,
                "finished_at": now,
                "attempt": 1,
                "cancel_requested": False,
                "spec": "{}",
                "cached_from": cached_from,
            }
            st.run(
                f"INSERT INTO jobs ({', '.join(columns)}) "
                f"VALUES ({', '.join(f':{c}' for c in columns)})",
                params,
            )
            _audit_run(st, {**values, "cached_from": cached_from}, at=now)
        return True

    def claim(
        self,
        cpu_slots: int,
        per_type: Mapping[str, int],
        tokens: Mapping[str, int] | None = None,
        *,
        executor: str = "local",
        widest: int | None = None,
    ) -> list[Claimed]:
        """Move queued jobs to ``running`` while the CPU slots, the per-type caps and the
        licence pools allow (issue 15).

        The policy: oldest first. A job takes ``threads`` CPU slots (what it asked for, at
        most ``cpu_slots``) and one token of each pool it names. A job whose type is at its cap
        (``per_type``, in jobs) or whose licence pool is empty (``tokens``; a pool not named
        there does not limit) is passed over and does not hold back the others. A job that
        needs more CPU slots than are free stops the claim: no younger job starts before it,
        so a wide job is never starved by a stream of narrow ones (slots may stay idle
        meanwhile). Each running job also gets the lowest free ``slot`` number, its identity
        (and, isolated as root, its uid): one per job, whatever its width.

        Only jobs of ``executor`` are counted and claimed (a job queued for the Dask cluster is
        never started by a local dispatcher, nor the other way round). ``widest`` caps a job's
        width below ``cpu_slots`` (a Dask job fits on one worker: the largest one's slots).
        """
        pools = dict(tokens or {})
        claimed: list[Claimed] = []
        with self.conn.write() as st:
            every = st.run(
                "SELECT model_type, threads, tokens, slot, executor FROM jobs WHERE status = :r",
                {"r": RUNNING},
            ).all()
            # CPU slots and type caps count this executor's jobs; licences and slot numbers
            # (identities, uids) are shared by all.
            rows = [row for row in every if (row[4] or "local") == executor]
            running: Counter[str] = Counter(row[0] for row in rows)
            used: Counter[str] = Counter(t for row in every for t in _pools(row[2]))
            free = cpu_slots - sum(max(1, row[1] or 1) for row in rows)
            taken = {row[3] for row in every if row[3] is not None}
            if free <= 0:
                return []
            # Not the specs: a sweep may queue a thousand jobs, and only a few are claimed.
            queued = st.run(
                "SELECT id, model_type, threads, tokens FROM jobs WHERE status = :q "
                "AND executor = :ex ORDER BY created_at, id",
                {"q": QUEUED, "ex": executor},
            ).all()
            now = self.now()
            for job_id, model_type, asked, names in queued:
                if free <= 0:
                    break
                cap = per_type.get(model_type)
                if cap is not None and running[model_type] >= cap:
                    continue
                wanted = _pools(names)
                if any(t in pools and used[t] >= pools[t] for t in wanted):
                    continue
                width = min(max(1, asked or 1), max(1, cpu_slots), max(1, widest or cpu_slots))
                if width > free:
                    break  # the oldest job that fits its caps goes first (no starvation)
                slot = next(n for n in range(len(taken) + 1) if n not in taken)
                taken.add(slot)
                st.run(
                    "UPDATE jobs SET status = :r, claimed_at = :now, slot = :slot, "
                    "threads = :width WHERE id = :id AND status = :q",
                    {
                        "r": RUNNING,
                        "q": QUEUED,
                        "now": now,
                        "slot": slot,
                        "width": width,
                        "id": job_id,
                    },
                )
                running[model_type] += 1
                used.update(wanted)
                free -= width
                row = st.run("SELECT spec, attempt FROM jobs WHERE id = :id", {"id": job_id}).one()
                assert row is not None
                attempt = int(row[1] or 1)
                job_spec = {
                    **json.loads(row[0]),
                    "slot": slot,
                    "threads": width,
                    "attempt": attempt,
                }
                claimed.append(Claimed(job_id, job_spec, slot, width, attempt))
        return claimed

    def spawned(self, job_id: str, *, pid: int, pid_started: float | None) -> None:
        """Record the supervisor process of a claimed job."""
        with self.conn.write() as st:
            st.run(
                "UPDATE jobs SET supervisor_pid = :pid, supervisor_started = :ps, "
                "started_at = COALESCE(started_at, :now) WHERE id = :id AND status = :r",
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
        attempt: int | None = None,
    ) -> str | None:
        """The supervisor's first word: the model runs. Returns what :meth:`heartbeat` does.

        ``attempt`` (a remote supervisor's) fences the write, as for :meth:`heartbeat`."""
        with self.conn.write() as st:
            done = st.run(
                "UPDATE jobs SET started_at = :started, heartbeat_at = :now, model_pid = :mp, "
                "model_started = :ms, host = :host, python_version = :pv, "
                "supervisor_pid = :sp, supervisor_started = :ss, isolation = :iso "
                f"WHERE id = :id AND status = :r{_fence(attempt)}",
                {
                    "attempt": attempt,
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
            return _beat(done, job_id)

    def heartbeat(self, job_id: str, *, attempt: int | None = None) -> str | None:
        """Prove the supervisor is alive.

        Returns :data:`CANCEL` when a cancel was requested, :data:`GONE` when the job is no
        longer running (it was ended elsewhere, e.g. marked lost: the supervisor must stop
        its model) or, given ``attempt``, runs as a newer attempt; else None.
        """
        with self.conn.write() as st:
            done = st.run(
                f"UPDATE jobs SET heartbeat_at = :now WHERE id = :id AND status = :r"
                f"{_fence(attempt)}",
                {"now": self.now(), "id": job_id, "r": RUNNING, "attempt": attempt},
            )
            return _beat(done, job_id)

    def take(self, job_id: str, *, attempt: int, worker: str) -> bool:
        """A Dask worker takes a claimed job's attempt (issue 12); False when it must not
        run it: the attempt is over or another worker took it (Dask runs a task at least
        once, so a task can arrive twice)."""
        with self.conn.write() as st:
            return (
                st.run(
                    # Taking it is a sign of life: the heartbeats start with the supervisor.
                    "UPDATE jobs SET worker = :w, heartbeat_at = :now WHERE id = :id "
                    "AND status = :r AND attempt = :attempt AND worker IS NULL",
                    {
                        "w": worker,
                        "now": self.now(),
                        "id": job_id,
                        "r": RUNNING,
                        "attempt": attempt,
                    },
                ).rowcount
                == 1
            )

    def untaken(self, *, older_than_s: float) -> list[tuple[str, int]]:
        """Remote jobs claimed longer ago than ``older_than_s`` that no worker took yet:
        (job id, attempt) pairs (issue 12)."""
        with self.conn.read() as st:
            rows = st.run(
                "SELECT id, attempt, claimed_at FROM jobs WHERE status = :r "
                "AND executor = 'dask' AND worker IS NULL",
                {"r": RUNNING},
            ).all()
            now = self.now()
            return [
                (job_id, int(attempt or 1))
                for job_id, attempt, claimed in rows
                if (moment := st.moment(claimed)) is not None
                and (now - moment).total_seconds() > older_than_s
            ]

    def release(self, job_id: str, *, attempt: int) -> bool:
        """``running`` -> ``queued`` for a claimed job no worker took (its task never reached
        the cluster, or the scheduler restarted and forgot it); False when it was taken."""
        with self.conn.write() as st:
            return (
                st.run(
                    "UPDATE jobs SET status = :q, slot = NULL, claimed_at = NULL "
                    "WHERE id = :id AND status = :r AND attempt = :attempt AND worker IS NULL",
                    {"q": QUEUED, "id": job_id, "r": RUNNING, "attempt": attempt},
                ).rowcount
                == 1
            )

    def finish(
        self, job_id: str, status: str, *, attempt: int | None = None, **values: Any
    ) -> bool:
        """``running`` -> ``status`` (a verdict), once; returns False if it had ended already
        (or, given ``attempt``, a newer attempt exists).

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
        return self._end(job_id, (RUNNING,), status, values, attempt=attempt)

    def judge_deadline(self, job_id: str, *, missed: bool) -> bool:
        """Record whether a job missed its deadline, once; returns False if judged already.

        Not a status change: a late run goes on (or is cancelled through :meth:`cancel`).
        """
        with self.conn.write() as st:
            return (
                st.run(
                    "UPDATE jobs SET deadline_missed = :missed WHERE id = :id "
                    "AND deadline_at IS NOT NULL AND deadline_missed IS NULL",
                    {"missed": missed, "id": job_id},
                ).rowcount
                == 1
            )

    def mark_lost(self, job_id: str, reason: str, *, attempt: int | None = None) -> bool:
        """``running`` -> ``lost``; returns False when the job had ended meanwhile.

        A job with retries left (``retries`` >= its ``attempt``, and no cancel asked) is not
        lost: it goes back to ``queued`` as its next attempt, the reason kept (issue 12).
        """
        with self.conn.write() as st:
            row = st.run(
                f"SELECT attempt, retries, cancel_requested FROM jobs WHERE id = :id "
                f"AND status = :r{_fence(attempt)}",
                {"id": job_id, "r": RUNNING, "attempt": attempt},
            ).one()
            if row is None:
                return False
            current, retries, cancelling = int(row[0] or 1), int(row[1] or 0), bool(row[2])
            if cancelling or current > retries:
                return (
                    st.run(
                        "UPDATE jobs SET status = 'lost', finished_at = :now, reason = :why "
                        "WHERE id = :id AND status = :r AND attempt = :attempt",
                        {
                            "now": self.now(),
                            "why": reason,
                            "id": job_id,
                            "r": RUNNING,
                            "attempt": current,
                        },
                    ).rowcount
                    == 1
                )
            why = f"attempt {current} lost: {reason}; queued again as attempt {current + 1}"
            return (
                st.run(
                    "UPDATE jobs SET status = :q, attempt = :next, reason = :why, worker = NULL, "
                    "slot = NULL, claimed_at = NULL, started_at = NULL, heartbeat_at = NULL, "
                    "supervisor_pid = NULL, supervisor_started = NULL, model_pid = NULL, "
                    "model_started = NULL, host = NULL "
                    "WHERE id = :id AND status = :r AND attempt = :attempt",
                    {
                        "q": QUEUED,
                        "next": current + 1,
                        "why": why,
                        "id": job_id,
                        "r": RUNNING,
                        "attempt": current,
                    },
                ).rowcount
                == 1
            )

    def cancel(self, job_id: str, *, actor: str | None = None) -> CancelTicket:
        """Cancel a job: a queued one ends ``cancelled`` now; a running one is flagged (its
        supervisor stops the tree and records the end); a finished one is left alone.

        The cancel of a queued or running job is recorded in the audit trail as ``actor``'s,
        in the same transaction (a finished job's is a no-op and is not recorded).

        Raises:
            NotFoundError: no job with this id.
        """
        with self.conn.write() as st:
            row = st.run(
                "SELECT status, supervisor_pid, supervisor_started, heartbeat_at, executor, "
                "worker, attempt FROM jobs WHERE id = :id",
                {"id": job_id},
            ).one()
            if row is None:
                raise NotFoundError("job", job_id)
            status, pid, pid_started, beat, where, worker, attempt = row
            if actor is not None and status in (QUEUED, RUNNING):
                audit.write(
                    st,
                    at=self.now(),
                    actor=actor,
                    action="cancel",
                    object_type="job",
                    object_id=job_id,
                    details={"status": status},
                )
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
            if where == "dask" and worker is None:
                # Claimed, but no worker took it: it ends here (a worker that takes it later
                # finds it no longer running), and its task is cancelled in Dask too.
                st.run(
                    "UPDATE jobs SET status = 'cancelled', reason = :why, finished_at = :now "
                    "WHERE id = :id AND status = :r AND worker IS NULL",
                    {
                        "why": "cancelled before a worker started it",
                        "now": self.now(),
                        "id": job_id,
                        "r": RUNNING,
                    },
                )
                return CancelTicket(RUNNING, ended=True, task=(job_id, int(attempt or 1)))
            st.run(
                "UPDATE jobs SET cancel_requested = :t WHERE id = :id", {"t": True, "id": job_id}
            )
            return CancelTicket(RUNNING, False, pid, pid_started, beat is not None)

    def running(self) -> list[Liveness]:
        """The running jobs, with what tells whether their supervisor lives."""
        with self.conn.read() as st:
            rows = st.run(
                "SELECT id, host, supervisor_pid, supervisor_started, heartbeat_at, claimed_at, "
                "worker, attempt, executor FROM jobs WHERE status = :r",
                {"r": RUNNING},
            ).all()
            return [
                Liveness(
                    job_id,
                    host,
                    pid,
                    started,
                    st.moment(beat) or st.moment(claimed),
                    worker,
                    int(attempt or 1),
                    where == "dask",
                )
                for job_id, host, pid, started, beat, claimed, worker, attempt, where in rows
            ]

    def status(self, job_id: str) -> str | None:
        """The job's status, or None when there is no such job."""
        with self.conn.read() as st:
            row = st.run("SELECT status FROM jobs WHERE id = :id", {"id": job_id}).one()
            return None if row is None else str(row[0])

    def _end(
        self,
        job_id: str,
        sources: tuple[str, ...],
        status: str,
        values: dict[str, Any],
        *,
        attempt: int | None = None,
    ) -> bool:
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        allowed = ", ".join(f":from{i}" for i in range(len(sources)))
        params = {**values, "status": status, "now": self.now(), "id": job_id, "attempt": attempt}
        params.update({f"from{i}": source for i, source in enumerate(sources)})
        with self.conn.write() as st:
            return (
                st.run(
                    f"UPDATE jobs SET status = :status, finished_at = :now"
                    f"{', ' if assignments else ''}{assignments} "
                    f"WHERE id = :id AND status IN ({allowed}){_fence(attempt)}",
                    params,
                ).rowcount
                == 1
            )


def _audit_run(st: Statements, values: dict[str, Any], *, at: datetime) -> None:
    """Record who asked for a run (nothing when the caller named nobody)."""
    if values.get("started_by") is None:
        return
    try:
        config = json.loads(values.get("config") or "{}")
    except (TypeError, ValueError):
        config = values.get("config")
    details: dict[str, Any] = {
        key: values[key]
        for key in ("model_id", "model_type", "model_name", "model_version", "model_sha256")
        if key in values
    }
    details["config"] = config
    for key in ("data_source_id", "data_source", "sweep_id", "cached_from"):
        if values.get(key) is not None:
            details[key] = values[key]
    audit.write(
        st,
        at=at,
        actor=values["started_by"],
        action="run",
        object_type="job",
        object_id=values["id"],
        details=details,
    )


def _fence(attempt: int | None) -> str:
    """The condition that keeps a write to the given attempt (none: any attempt)."""
    return "" if attempt is None else " AND attempt = :attempt"


def _pools(names: str | None) -> list[str]:
    """The licence pools of a job's ``tokens`` column ("+"-joined)."""
    return [name for name in (names or "").split("+") if name]


def _beat(update: Any, job_id: str) -> str | None:
    if update.rowcount == 0:
        return GONE
    row = update.run("SELECT cancel_requested FROM jobs WHERE id = :id", {"id": job_id}).one()
    return CANCEL if row and row[0] else None

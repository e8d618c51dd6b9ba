"""The value objects sandbox_kit hands out: frozen views of models, jobs and log lines.

ORM rows never leave the registry; they are turned into these first, so the CLI, widgets and
notebooks can keep them around without holding a database session open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class ModelType(str, Enum):
    """The three kinds of optimization model the sandbox runs."""

    DMO = "DMO"
    RMO = "RMO"
    SO = "SO"

    @property
    def label(self) -> str:
        """Human name of the type, e.g. ``"Day-Ahead Market"``."""
        return _TYPE_LABELS[self]

    @classmethod
    def parse(cls, value: str | ModelType) -> ModelType:
        """Return the type named by ``value`` (case-insensitive), or raise ``ValueError``."""
        try:
            return cls(str(value.value if isinstance(value, ModelType) else value).upper())
        except ValueError:
            names = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown model type {value!r}; expected one of {names}") from None


_TYPE_LABELS = {
    ModelType.DMO: "Day-Ahead Market",
    ModelType.RMO: "Real-Time Market",
    ModelType.SO: "System Optimization",
}


class ModelStatus(str, Enum):
    """Where a model version stands: the one that runs for its type, another, or hidden."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"


class JobStatus(str, Enum):
    """Process status of a job; the last five are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    LOST = "lost"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class Model:
    """One stored version of a model."""

    id: int
    model_type: ModelType
    name: str
    version: int
    status: ModelStatus
    sha256: str
    description: str
    original_filename: str
    size: int
    created_at: datetime
    path: str
    #: Who uploaded this version (the audit trail's actor; None for versions older than it).
    created_by: str | None = None
    #: What its header declares (``# sandbox: threads=4, tokens=gurobi``; issue 15): the CPU
    #: slots a run takes and the licence pools it draws one token from.
    threads: int = 1
    tokens: tuple[str, ...] = ()
    #: The code of a ``%%sandbox`` cell (issue 14): runnable by id, never active, left out
    #: of the model lists.
    scratch: bool = False

    @property
    def active(self) -> bool:
        """True when this is the version its type runs."""
        return self.status is ModelStatus.ACTIVE

    @property
    def label(self) -> str:
        """Short display name, e.g. ``"dmo v3"``."""
        return f"{self.name} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The model as plain JSON-ready data (the CLI's ``--json`` shape)."""
        return {
            "id": self.id,
            "model_type": self.model_type.value,
            "name": self.name,
            "version": self.version,
            "status": self.status.value,
            "active": self.active,
            "sha256": self.sha256,
            "description": self.description,
            "original_filename": self.original_filename,
            "size": self.size,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "threads": self.threads,
            "tokens": list(self.tokens),
            "scratch": self.scratch,
        }


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A snapshot of one job's record."""

    id: str
    model_id: int | None
    model_type: ModelType
    model_name: str
    model_version: int
    model_sha256: str
    status: JobStatus
    config: dict[str, Any]
    data_source_id: str | None
    timeout_s: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    signal: int | None
    reason: str | None
    log_path: str
    result_dir: str
    truncated: bool
    attempt: int
    python_version: str | None
    host: str | None
    outcome: str | None = None
    objective: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: How the job was isolated: ``namespaces`` (bubblewrap), ``partial`` (unshare, no
    #: filesystem view) or ``none``; None until the supervisor has started it.
    isolation: str | None = None
    #: The data source resolved when the job was created (``data:NAME@V``, ``job:ID``, or the
    #: name given when the sandbox does not know it) and its content identity (issue 11).
    data_source: str | None = None
    data_source_sha256: str | None = None
    #: The job whose result this one reused (a cache hit: no process ran), else None.
    cached_from: str | None = None
    #: Why a run that asked for the cache did not reuse an earlier result, field by field.
    cache_miss_reason: str | None = None
    sweep_id: str | None = None
    #: Who started the job (the audit trail's actor; None for jobs older than it).
    started_by: str | None = None
    #: CPU slots the job asked for, and holds once running; licence pools it draws from
    #: (issue 15).
    threads: int = 1
    tokens: tuple[str, ...] = ()
    #: The schedule that started the job (None for a manual run), its deadline, and whether
    #: the run had not ended by then (None until judged; issue 10).
    schedule_id: int | None = None
    deadline_at: datetime | None = None
    deadline_missed: bool | None = None
    #: Where the job runs: ``local`` or ``dask``; the Dask worker's address once one took it;
    #: how many lost attempts may be queued again (issue 12).
    executor: str = "local"
    worker: str | None = None
    retries: int = 0
    #: Deliveries of notifications about this job (target kind, event, delivered or error).
    notifications: tuple[Notification, ...] = ()

    @property
    def remote(self) -> bool:
        """True when the job runs (or ran) on a Dask worker: its log and results travel
        through the registry and the store."""
        return self.executor == "dask"

    @property
    def best_found(self) -> str | None:
        """``"best found $X, gap Y %"`` for a job the sandbox stopped (timeout or cancel) that
        left a result with an objective (issue 15), else None.

        The gap is the ``mip_gap`` metric (a fraction), when the model reported one.
        """
        if self.status not in (JobStatus.TIMEOUT, JobStatus.CANCELLED) or self.objective is None:
            return None
        text = f"best found ${self.objective:,.2f}"
        gap = self.metrics.get("mip_gap")
        return text if gap is None else f"{text}, gap {100 * gap:.2f} %"

    @property
    def cached(self) -> bool:
        """True when the job is a cache hit (its results and log are another job's)."""
        return self.cached_from is not None

    @property
    def duration_s(self) -> float | None:
        """Seconds between start and finish (or now, while running); None before start."""
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return max(0.0, (end - self.started_at).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON-ready data (the CLI's ``status --json`` shape)."""
        return {
            "id": self.id,
            "model_id": self.model_id,
            "model_type": self.model_type.value,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "reason": self.reason,
            "config": self.config,
            "data_source_id": self.data_source_id,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": self.duration_s,
            "log_path": self.log_path,
            "result_dir": self.result_dir,
            "truncated": self.truncated,
            "attempt": self.attempt,
            "python_version": self.python_version,
            "host": self.host,
            "outcome": self.outcome,
            "objective": self.objective,
            "metrics": self.metrics,
            "isolation": self.isolation,
            "data_source": self.data_source,
            "data_source_sha256": self.data_source_sha256,
            "cached_from": self.cached_from,
            "cache_miss_reason": self.cache_miss_reason,
            "sweep_id": self.sweep_id,
            "started_by": self.started_by,
            "threads": self.threads,
            "tokens": list(self.tokens),
            "best_found": self.best_found,
            "schedule_id": self.schedule_id,
            "deadline_at": _iso(self.deadline_at),
            "deadline_missed": self.deadline_missed,
            "executor": self.executor,
            "worker": self.worker,
            "retries": self.retries,
            "notifications": [n.to_dict() for n in self.notifications],
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification about a job end (or a fire time that started nothing) to one target.

    Attributes:
        event: ``failed``, ``timeout``, ``lost``, ``deadline``, ``not_started``, ``success``,
            ``infeasible`` or ``error``.
        target_kind: the Apprise URL's scheme (``mailto``, ``json``, ``slack``, ...).
        target: the URL with its secrets hidden.
        status: ``sending``, ``delivered`` or ``error``.
        attempts: deliveries tried (the first and the retries).
        error: why the last attempt failed, when it did.
    """

    event: str
    target_kind: str
    target: str
    status: str
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def delivered(self) -> bool:
        """True once the target accepted it."""
        return self.status == "delivered"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (an entry of ``notifications`` in ``status --json``)."""
        return {
            "event": self.event,
            "target_kind": self.target_kind,
            "target": self.target,
            "status": self.status,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Schedule:
    """A model run on a clock (issue 10).

    Attributes:
        target: a model type (``DMO``: its active version at fire time) or a model id.
        cron: five-field cron expression in ``timezone``; ``preset`` names the preset it came
            from, if any.
        enabled: False while paused.
        missed: what to do with fire times missed while no scheduler ran: ``skip`` (record
            them) or ``once`` (one catch-up run).
        overlap: what to do when the previous run is still queued or running: ``skip``,
            ``queue`` (run after it) or ``cancel`` (cancel it, then run).
        deadline_min: minutes after a fire time by which its run must have ended, or None.
        deadline_action: ``notify``, or ``cancel`` (notify and cancel the late run).
        notify: Apprise URLs told about this schedule's runs (shown with secrets hidden).
        notify_on: the events they are told about (None: the default set).
    """

    id: int
    name: str
    target: str
    model_type: ModelType
    cron: str
    preset: str | None
    timezone: str
    config: dict[str, Any]
    data_source: str | None
    enabled: bool
    missed: str
    overlap: str
    deadline_min: float | None
    deadline_action: str
    notify: tuple[str, ...]
    notify_on: tuple[str, ...] | None
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    #: The next fire times (UTC), when the caller asked for them.
    next_fires: tuple[datetime, ...] = ()

    @property
    def paused(self) -> bool:
        """True while the schedule does not fire."""
        return not self.enabled

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the CLI's ``schedule show --json`` shape)."""
        return {
            "id": self.id,
            "name": self.name,
            "target": self.target,
            "model_type": self.model_type.value,
            "cron": self.cron,
            "preset": self.preset,
            "timezone": self.timezone,
            "config": self.config,
            "data_source": self.data_source,
            "enabled": self.enabled,
            "paused": self.paused,
            "missed": self.missed,
            "overlap": self.overlap,
            "deadline_min": self.deadline_min,
            "deadline_action": self.deadline_action,
            "notify": list(self.notify),
            "notify_on": None if self.notify_on is None else list(self.notify_on),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "created_by": self.created_by,
            "next_fires": [t.isoformat() for t in self.next_fires],
        }


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """One fire time of a schedule and what came of it.

    Attributes:
        outcome: ``due`` (being started), ``waiting`` (overlap ``queue``: after the previous
            run), ``submitted`` (``job_id`` is its run), ``missed``, ``skipped`` or ``error``.
        detail: why, for the outcomes other than ``submitted``.
        job_status, deadline_missed: of its run, when there is one.
    """

    schedule_id: int
    fire_at: datetime
    outcome: str
    job_id: str | None
    detail: str | None
    created_at: datetime
    job_status: JobStatus | None = None
    deadline_missed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "schedule_id": self.schedule_id,
            "fire_at": self.fire_at.isoformat(),
            "outcome": self.outcome,
            "job_id": self.job_id,
            "detail": self.detail,
            "created_at": self.created_at.isoformat(),
            "job_status": None if self.job_status is None else self.job_status.value,
            "deadline_missed": self.deadline_missed,
        }


@dataclass(frozen=True, slots=True)
class DataSet:
    """One stored version of a data set: read-only files a run gets as ``DATA_SOURCE_DIR``.

    Attributes:
        sha256: the content identity (of every file's relative path and bytes).
        kind: what was added: ``file``, ``folder`` or ``zip`` (a zip is stored extracted).
        files: number of files; ``size``: their total bytes.
        path: the read-only folder holding the files.
    """

    id: int
    name: str
    version: int
    sha256: str
    kind: str
    original_name: str
    description: str
    files: int
    size: int
    created_at: datetime
    path: str

    @property
    def label(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    @property
    def source(self) -> str:
        """The data source that names exactly this version: ``data:NAME@VERSION``."""
        return f"data:{self.label}"

    def to_dict(self) -> dict[str, Any]:
        """The data set as plain JSON-ready data (the CLI's ``data show --json`` shape)."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "sha256": self.sha256,
            "kind": self.kind,
            "original_name": self.original_name,
            "description": self.description,
            "files": self.files,
            "size": self.size,
            "created_at": self.created_at.isoformat(),
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class SweepInfo:
    """A scenario sweep: one job per configuration, and how far they have got.

    Attributes:
        params: the configuration keys that vary between scenarios (the table's columns).
        done: scenarios whose job has ended (any terminal status); ``total``: all of them.
        counts: jobs per status.
    """

    id: str
    target: str
    model_id: int | None
    model_type: ModelType
    model_name: str
    model_version: int
    params: tuple[str, ...]
    base_config: dict[str, Any]
    data_source_id: str | None
    cache: bool
    total: int
    created_at: datetime
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """True once every scenario's job has ended."""
        return self.done >= self.total

    def to_dict(self) -> dict[str, Any]:
        """The sweep as plain JSON-ready data."""
        return {
            "id": self.id,
            "target": self.target,
            "model_id": self.model_id,
            "model_type": self.model_type.value,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "params": list(self.params),
            "base_config": self.base_config,
            "data_source_id": self.data_source_id,
            "cache": self.cache,
            "total": self.total,
            "done": self.done,
            "counts": self.counts,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row of a sweep: its parameters, the configuration it ran with, and its job."""

    index: int
    params: dict[str, Any]
    config: dict[str, Any]
    job_id: str
    status: JobStatus
    outcome: str | None
    objective: float | None
    metrics: dict[str, float]
    cached_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON-ready data (a ``rows`` entry of ``sweep show --json``)."""
        return {
            "index": self.index,
            "params": self.params,
            "config": self.config,
            "job_id": self.job_id,
            "status": self.status.value,
            "outcome": self.outcome,
            "objective": self.objective,
            "metrics": self.metrics,
            "cached_from": self.cached_from,
        }


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a job's structured log.

    Attributes:
        seq: 1, 2, 3, ... per job, in order of arrival.
        ts: arrival time (UTC).
        stream: ``"stdout"`` or ``"stderr"``.
        level: ``"DEBUG"``, ``"INFO"``, ``"WARNING"`` or ``"ERROR"``.
        text: the line, decoded (invalid UTF-8 shown as U+FFFD), without its newline.
    """

    seq: int
    ts: datetime
    stream: str
    level: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """The line as plain JSON-ready data (the CLI's ``logs --json`` shape)."""
        return {
            "seq": self.seq,
            "ts": self.ts.isoformat(),
            "stream": self.stream,
            "level": self.level,
            "text": self.text,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dumps_config(config: dict[str, Any]) -> str:
    """Serialise a run configuration canonically (sorted keys, no NaN)."""
    return json.dumps(config, sort_keys=True, allow_nan=False, separators=(",", ":"))


def parse_config(text: str, *, filename: str | None = None) -> dict[str, Any]:
    """Parse a run configuration typed by a user: a JSON object (empty text means ``{}``).

    Raises:
        ValidationError: not JSON, or not an object; names the line and column.
    """
    from sandbox_kit.errors import ValidationError

    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"invalid JSON: {exc.msg}", filename=filename, line=exc.lineno, column=exc.colno
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(
            'config must be a JSON object, like {"load_scale": 1.1}', filename=filename
        )
    return value


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the append-only audit trail: who did what to which object, when.

    Attributes:
        actor: the user (or the ``--as`` label) who did it.
        action: ``upload``, ``activate``, ``archive``, ``restore``, ``delete``, ``run``,
            ``cancel``, or another recorded by a feature (schedules: ``schedule_*``).
        object_type: ``model`` or ``job`` (or another feature's object, e.g. ``schedule``).
        object_id: the model's id, the job's id, ...
        details: what else identifies the action (model version and sha256, config, ...).
    """

    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain JSON-ready data (the CLI's ``audit --json`` shape)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "details": self.details,
        }

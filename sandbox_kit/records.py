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

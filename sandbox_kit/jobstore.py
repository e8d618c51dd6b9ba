"""Job rows: the small set of reads and writes the launcher, supervisors and handles share.

Every write is a short ``BEGIN IMMEDIATE`` transaction; terminal updates are conditional on
the job still being live, so a job reaches exactly one terminal status even when a supervisor,
a cancel and a reconciliation race.
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from sandbox_kit.db import Database, JobRow, utcnow
from sandbox_kit.errors import NotFoundError, ValidationError
from sandbox_kit.records import JobInfo, JobStatus, ModelType
from sandbox_kit.results import read_result, summary

LIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class JobStore:
    """Reads and writes job rows of one database."""

    def __init__(self, db: Database | str) -> None:
        self.db = db if isinstance(db, Database) else Database(db)

    def get(self, job_id: str) -> JobInfo:
        """The job with this id."""
        with self.db.read() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFoundError("job", job_id)
            return to_info(row)

    def list(
        self,
        *,
        model_type: ModelType | None = None,
        status: JobStatus | None = None,
        model_id: int | None = None,
        limit: int = 100,
    ) -> list[JobInfo]:
        """Jobs, newest first."""
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        if model_type is not None:
            query = query.where(JobRow.model_type == model_type.value)
        if status is not None:
            query = query.where(JobRow.status == status.value)
        if model_id is not None:
            query = query.where(JobRow.model_id == model_id)
        with self.db.read() as s:
            return [to_info(row) for row in s.scalars(query)]

    def mark_started(
        self,
        job_id: str,
        *,
        started: float,
        model_pid: int,
        model_started: float | None,
        python_version: str,
    ) -> None:
        """Record that the model process is running (since ``started``, a Unix time)."""
        now = utcnow()
        with self.db.write() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == JobStatus.RUNNING.value)
                .values(
                    started_at=datetime.fromtimestamp(started, UTC),
                    heartbeat_at=now,
                    model_pid=model_pid,
                    model_started=model_started,
                    host=platform.node(),
                    python_version=python_version,
                )
            )

    def heartbeat(self, job_id: str) -> bool:
        """Prove the supervisor is alive; returns True when a cancel was requested."""
        with self.db.write() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(heartbeat_at=utcnow()))
            return bool(s.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id)))

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        reason: str | None,
        truncated: bool,
        exit_code: int | None = None,
        signal: int | None = None,
        result_dir: str | None = None,
    ) -> bool:
        """Record the job's terminal status, once; returns False if it had one already."""
        values: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "exit_code": exit_code,
            "signal": signal,
            "truncated": truncated,
            "finished_at": utcnow(),
        }
        if result_dir is not None:
            try:
                outcome, objective, metrics = summary(read_result(result_dir))
            except ValidationError as exc:
                outcome, objective, metrics = "error", None, {}
                values["reason"] = reason or f"unreadable result: {exc}"
            values.update(outcome=outcome, objective=objective, metrics=json.dumps(metrics))
        with self.db.write() as s:
            done = s.execute(
                update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(LIVE)).values(**values)
            )
            return bool(getattr(done, "rowcount", 0))


def to_info(row: JobRow) -> JobInfo:
    """The frozen view of a job row."""
    return JobInfo(
        id=row.id,
        model_id=row.model_id,
        model_type=ModelType(row.model_type),
        model_name=row.model_name,
        model_version=row.model_version,
        model_sha256=row.model_sha256,
        status=JobStatus(row.status),
        config=json.loads(row.config or "{}"),
        data_source_id=row.data_source_id,
        timeout_s=row.timeout_s,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        exit_code=row.exit_code,
        signal=row.signal,
        reason=row.reason,
        log_path=row.log_path,
        result_dir=row.result_dir,
        truncated=bool(row.truncated),
        attempt=row.attempt,
        python_version=row.python_version,
        host=row.host,
        outcome=row.outcome,
        objective=row.objective,
        metrics=json.loads(row.metrics or "{}"),
    )


def age_s(moment: datetime | None) -> float:
    """Seconds since ``moment`` (infinite when unknown)."""
    return float("inf") if moment is None else (utcnow() - moment).total_seconds()

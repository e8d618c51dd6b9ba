"""Reading job rows as frozen :class:`~sandbox_kit.records.JobInfo` views.

Writes are not here: every status change goes through :mod:`sandbox_kit.lifecycle`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sandbox_kit.db import Database, JobRow, NotificationRow
from sandbox_kit.errors import NotFoundError
from sandbox_kit.records import JobInfo, JobStatus, ModelType, Notification


class JobStore:
    """Reads job rows of one database."""

    def __init__(self, db: Database | str) -> None:
        self.db = db if isinstance(db, Database) else Database(db)

    def get(self, job_id: str) -> JobInfo:
        """The job with this id."""
        with self.db.read() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFoundError("job", job_id)
            return to_info(row, _notifications(s, [job_id]).get(job_id, ()))

    def ended_since(self, since: datetime, *, limit: int = 100) -> list[JobInfo]:
        """Jobs that ended, or missed their deadline, from ``since`` on; newest first.

        What a dashboard's notification bell lists: every job end, whoever started the job.
        """
        # Two queries, each on its own index (an OR of the two would scan every job).
        ended = (
            select(JobRow).where(JobRow.finished_at >= since).order_by(JobRow.finished_at.desc())
        )
        late = select(JobRow).where(JobRow.deadline_missed.is_(True), JobRow.deadline_at >= since)
        with self.db.read() as s:
            found = {row.id: row for row in s.scalars(ended.limit(limit))}
            found.update({row.id: row for row in s.scalars(late.limit(limit))})
            rows = sorted(
                found.values(),
                key=lambda row: (row.finished_at or row.deadline_at or since, row.id),
                reverse=True,
            )[:limit]
            return _with_notifications(s, rows)

    def list(
        self,
        *,
        model_type: ModelType | None = None,
        status: JobStatus | None = None,
        model_id: int | None = None,
        schedule_id: int | None = None,
        limit: int = 100,
    ) -> list[JobInfo]:
        """Jobs, newest first (of one schedule, with ``schedule_id``)."""
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        if model_type is not None:
            query = query.where(JobRow.model_type == model_type.value)
        if status is not None:
            query = query.where(JobRow.status == status.value)
        if model_id is not None:
            query = query.where(JobRow.model_id == model_id)
        if schedule_id is not None:
            query = query.where(JobRow.schedule_id == schedule_id)
        with self.db.read() as s:
            return _with_notifications(s, list(s.scalars(query)))


def _with_notifications(s: Session, rows: Sequence[JobRow]) -> list[JobInfo]:
    found = _notifications(s, [row.id for row in rows]) if rows else {}
    return [to_info(row, found.get(row.id, ())) for row in rows]


def _notifications(s: Session, job_ids: list[str]) -> dict[str, tuple[Notification, ...]]:
    """The notifications of these jobs, oldest first, by job (one query)."""
    found: dict[str, list[Notification]] = defaultdict(list)
    rows = s.scalars(
        select(NotificationRow)
        .where(NotificationRow.job_id.in_(job_ids))
        .order_by(NotificationRow.created_at, NotificationRow.id)
    )
    for row in rows:
        found[row.job_id or ""].append(
            Notification(
                event=row.event,
                target_kind=row.target_kind,
                target=row.target,
                status=row.status,
                attempts=row.attempts,
                error=row.error,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
    return {job_id: tuple(items) for job_id, items in found.items()}


def to_info(row: JobRow, notifications: tuple[Notification, ...] = ()) -> JobInfo:
    """The frozen view of a job row (with its notifications, when the caller read them)."""
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
        isolation=row.isolation,
        data_source=row.data_source,
        data_source_sha256=row.data_source_sha256,
        cached_from=row.cached_from,
        cache_miss_reason=row.cache_miss_reason,
        sweep_id=row.sweep_id,
        started_by=row.started_by,
        threads=row.threads or 1,
        tokens=tuple(t for t in (row.tokens or "").split("+") if t),
        schedule_id=row.schedule_id,
        deadline_at=row.deadline_at,
        deadline_missed=row.deadline_missed,
        executor=row.executor or "local",
        worker=row.worker,
        retries=row.retries or 0,
        notifications=notifications,
    )

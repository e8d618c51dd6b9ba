"""Schedules, their fire times, the scheduler's lease and job-end notifications (issue 10).

- ``schedules``: what to run, on which clock, with which policies.
- ``schedule_fires``: one row per (schedule, fire time), unique, so no fire time is submitted
  twice whatever the number of schedulers; also records fire times missed, skipped or failed.
- ``scheduler_lease``: the one row that elects the leading scheduler (expiry, fencing token).
- ``notifications``: one row per (job or fire, event, target), unique, with the outcome of
  its delivery.
- ``jobs`` gain ``schedule_id``, ``deadline_at`` and ``deadline_missed``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_MOMENT = sa.DateTime(timezone=True)


def _job_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("schedule_id", sa.Integer),
        sa.Column("deadline_at", _MOMENT),
        # NULL until judged; then whether the run had not ended by its deadline.
        sa.Column("deadline_missed", sa.Boolean),
    ]


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(8), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("preset", sa.String(32)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("config", sa.Text, nullable=False, server_default="{}"),
        sa.Column("data_source", sa.String(300)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("missed", sa.String(8), nullable=False),
        sa.Column("overlap", sa.String(8), nullable=False),
        sa.Column("deadline_min", sa.Float),
        sa.Column("deadline_action", sa.String(8), nullable=False),
        sa.Column("notify", sa.Text, nullable=False, server_default="[]"),
        sa.Column("notify_on", sa.Text),
        # Fire times up to this instant are dealt with (created, resumed or last fired).
        sa.Column("cursor_at", _MOMENT, nullable=False),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("updated_at", _MOMENT, nullable=False),
        sa.Column("created_by", sa.String(200)),
    )
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "schedule_id",
            sa.Integer,
            sa.ForeignKey("schedules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("fire_at", _MOMENT, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.Column("detail", sa.Text),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("updated_at", _MOMENT, nullable=False),
    )
    op.create_index("uq_schedule_fires", "schedule_fires", ["schedule_id", "fire_at"], unique=True)
    op.create_index("ix_schedule_fires_outcome", "schedule_fires", ["outcome"])
    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", _MOMENT, nullable=False),
        sa.Column("expires_at", _MOMENT, nullable=False),
        # Jobs that ended from this instant on are looked at for notifications.
        sa.Column("notify_since", _MOMENT, nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        # The job, or "schedule:ID@ISO" for a fire time that could not start a job.
        sa.Column("subject", sa.String(120), nullable=False),
        sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE")),
        sa.Column("schedule_id", sa.Integer),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("target_key", sa.String(64), nullable=False),
        sa.Column("target_kind", sa.String(32), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("updated_at", _MOMENT, nullable=False),
    )
    op.create_index(
        "uq_notifications", "notifications", ["subject", "event", "target_key"], unique=True
    )
    op.create_index("ix_notifications_job", "notifications", ["job_id"])
    with op.batch_alter_table("jobs") as batch:
        for column in _job_columns():
            batch.add_column(column)
    op.create_index("ix_jobs_schedule", "jobs", ["schedule_id", "created_at"])
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"])
    op.create_index("ix_jobs_deadline", "jobs", ["deadline_missed", "deadline_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_deadline", "jobs")
    op.drop_index("ix_jobs_finished", "jobs")
    op.drop_index("ix_jobs_schedule", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(_job_columns()):
            batch.drop_column(column.name)
    op.drop_index("ix_notifications_job", "notifications")
    op.drop_index("uq_notifications", "notifications")
    op.drop_table("notifications")
    op.drop_table("scheduler_lease")
    op.drop_index("ix_schedule_fires_outcome", "schedule_fires")
    op.drop_index("uq_schedule_fires", "schedule_fires")
    op.drop_table("schedule_fires")
    op.drop_table("schedules")

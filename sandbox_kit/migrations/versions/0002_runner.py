"""Runner bookkeeping: run spec, supervisor liveness, cancel requests, model outcome.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("spec", sa.Text, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("python_version", sa.String(64)))
        batch.add_column(sa.Column("host", sa.String(255)))
        batch.add_column(sa.Column("supervisor_pid", sa.Integer))
        batch.add_column(sa.Column("supervisor_started", sa.Float))
        batch.add_column(sa.Column("model_pid", sa.Integer))
        batch.add_column(sa.Column("model_started", sa.Float))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("outcome", sa.String(32)))
        batch.add_column(sa.Column("objective", sa.Float))
        batch.add_column(sa.Column("metrics", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name in (
            "metrics",
            "objective",
            "outcome",
            "cancel_requested",
            "heartbeat_at",
            "claimed_at",
            "model_started",
            "model_pid",
            "supervisor_started",
            "supervisor_pid",
            "host",
            "python_version",
            "spec",
        ):
            batch.drop_column(name)

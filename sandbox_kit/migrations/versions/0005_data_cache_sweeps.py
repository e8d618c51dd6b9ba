"""Versioned data sets, result caching and scenario sweeps (issue 11).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _job_columns() -> list[sa.Column[Any]]:
    return [
        # The data source, resolved when the job was created: a label (``data:NAME@V``,
        # ``job:ID`` or what was given) and its content identity.
        sa.Column("data_source", sa.String(300)),
        sa.Column("data_source_sha256", sa.String(64)),
        # The result cache: the key, its parts (to explain a miss), the reused job, the reason.
        sa.Column("cache_key", sa.String(64)),
        sa.Column("cache_parts", sa.Text),
        sa.Column("cached_from", sa.String(64)),
        sa.Column("cache_miss_reason", sa.Text),
        sa.Column("sweep_id", sa.String(64)),
        sa.Column("sweep_index", sa.Integer),
    ]


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("uq_datasets_name_version", "datasets", ["name", "version"], unique=True)
    op.create_index("ix_datasets_sha256", "datasets", ["sha256"])
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="SET NULL")),
        sa.Column("model_type", sa.String(8), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("base_config", sa.Text, nullable=False),
        sa.Column("data_source_id", sa.String(300)),
        sa.Column("cache", sa.Boolean, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sweeps_created", "sweeps", ["created_at"])
    # What an interpreter had installed, once per distinct set (the cache key's fingerprint),
    # and which set each interpreter had when last looked at (keyed by file times).
    op.create_table(
        "environments",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("python_version", sa.String(64), nullable=False),
        sa.Column("packages", sa.Text, nullable=False),
    )
    op.create_table(
        "interpreters",
        sa.Column("path", sa.String(500), primary_key=True),
        sa.Column("stamp", sa.Text, nullable=False),
        sa.Column("site_dirs", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        for column in _job_columns():
            batch.add_column(column)
    op.create_index("ix_jobs_cache_key", "jobs", ["cache_key"])
    op.create_index("ix_jobs_sweep", "jobs", ["sweep_id", "sweep_index"])
    op.create_index("ix_jobs_data_source", "jobs", ["data_source"])


def downgrade() -> None:
    op.drop_index("ix_jobs_data_source", "jobs")
    op.drop_index("ix_jobs_sweep", "jobs")
    op.drop_index("ix_jobs_cache_key", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(_job_columns()):
            batch.drop_column(column.name)
    op.drop_table("interpreters")
    op.drop_table("environments")
    op.drop_index("ix_sweeps_created", "sweeps")
    op.drop_table("sweeps")
    op.drop_index("ix_datasets_sha256", "datasets")
    op.drop_index("uq_datasets_name_version", "datasets")
    op.drop_table("datasets")

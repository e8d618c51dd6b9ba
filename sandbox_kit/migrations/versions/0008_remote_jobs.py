"""Jobs run on a Dask cluster (issue 12): where they ran, their retries, their shipped logs.

- ``jobs`` gain ``executor`` (``local`` or ``dask``), ``worker`` (the Dask worker's address
  while and after it runs the job) and ``retries`` (how many times a lost attempt may be
  queued again; ``attempt`` counts the attempts and fences late writes of a dead one).
- ``log_chunks``: the durable log of a remote job, shipped as it is written: byte ranges of
  the log file (``offset`` into it), one attempt at a time, so a follower on another host
  rebuilds the exact file.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("executor", sa.String(16), nullable=False, server_default="local")
        )
        batch.add_column(sa.Column("worker", sa.String(255)))
        batch.add_column(sa.Column("retries", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "log_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("job_id", "attempt", "offset", name="uq_log_chunks_position"),
    )


def downgrade() -> None:
    op.drop_table("log_chunks")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retries")
        batch.drop_column("worker")
        batch.drop_column("executor")

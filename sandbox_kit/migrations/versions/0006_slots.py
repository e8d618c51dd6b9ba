"""Thread- and licence-aware slots: what a model version declares, and what a job holds.

A model's header comment (``# sandbox: threads=4, tokens=gurobi``) is read at upload and kept
on its version; a job keeps the CPU slots and licence tokens it asked for (issue 15). Rows
from before take one thread and no token.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("threads", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("tokens", sa.String(200), nullable=False, server_default=""))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("threads", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("tokens", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("tokens")
        batch.drop_column("threads")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("tokens")
        batch.drop_column("threads")

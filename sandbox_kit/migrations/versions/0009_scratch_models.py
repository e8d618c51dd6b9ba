"""Scratch models (issue 14): the throw-away versions a ``%%sandbox`` cell runs.

``models`` gain ``scratch``: true for a version stored from a notebook cell rather than
uploaded. Scratch versions run like any other (supervised, isolated, limited) and their jobs
are listed as usual, but the registry's model lists leave them out and none of them can
become its type's active model. Rows from before are ordinary versions.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


# Never a "move and copy" of ``models`` on SQLite: dropping the old table would fire
# ``jobs.model_id``'s ON DELETE SET NULL and unlink every job from its model. ALTER TABLE ADD
# and DROP COLUMN (SQLite 3.35) change the table in place.


def upgrade() -> None:
    with op.batch_alter_table("models", recreate="never") as batch:
        batch.add_column(
            sa.Column("scratch", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("models", recreate="never") as batch:
        batch.drop_column("scratch")

"""Allocation provenance and prediction inputs.

- ``allocations``: ``stratum`` (centre|risk group), ``model_version`` (PRE rule),
  ``log_path`` and ``log_hash`` (the entry in the hash-chained allocation log that
  this row mirrors; detects a truncated or replaced log).
- ``predictions``: ``inputs`` (the clinical and feature values the model was given,
  whose SHA-256 is ``input_sha256``), used for input-drift monitoring.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stratum", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("model_version", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("log_path", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("log_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("inputs")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_column("log_hash")
        batch_op.drop_column("log_path")
        batch_op.drop_column("model_version")
        batch_op.drop_column("stratum")

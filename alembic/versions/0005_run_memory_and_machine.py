"""What a run's memory really is (PSS next to summed RSS, and virtual size), what a pool
child sent back, and the machine a run ran on: the figures `crawler compare` reports

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pool_returns", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("machine", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("peak_pss_kb", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("peak_vms_kb", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("peak_vms_kb")
        batch_op.drop_column("peak_pss_kb")
        batch_op.drop_column("machine")
        batch_op.drop_column("pool_returns")

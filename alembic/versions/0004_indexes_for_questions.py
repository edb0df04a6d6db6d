"""Indexes for the questions users ask of a crawl (status, pages, links, errors, hosts), and
each fetch's host, so a host's fetch times are read in order from one index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fetches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=300), nullable=True))
        batch_op.drop_index("ix_fetches_error_kind")
    op.execute(
        "UPDATE fetches SET host = (SELECT host FROM frontier WHERE frontier.id = "
        "fetches.frontier_id) WHERE host IS NULL"
    )
    with op.batch_alter_table("fetches", schema=None) as batch_op:
        batch_op.create_index("ix_fetches_status", ["crawl_id", "status", "started_at"])
        batch_op.create_index("ix_fetches_error", ["crawl_id", "error_kind", "started_at"])
        batch_op.create_index("ix_fetches_host_time", ["crawl_id", "host", "total_s"])
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.create_index("ix_frontier_state", ["crawl_id", "state", "host", "depth"])
        batch_op.create_index(
            "ix_frontier_skipped",
            ["crawl_id", "skip_reason"],
            sqlite_where=sa.text("state = 'skipped'"),
            postgresql_where=sa.text("state = 'skipped'"),
        )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index("ix_links_url", ["url"])


def downgrade() -> None:
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index("ix_links_url")
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_skipped")
        batch_op.drop_index("ix_frontier_state")
    with op.batch_alter_table("fetches", schema=None) as batch_op:
        batch_op.drop_index("ix_fetches_host_time")
        batch_op.drop_index("ix_fetches_error")
        batch_op.drop_index("ix_fetches_status")
        batch_op.create_index("ix_fetches_error_kind", ["error_kind"])
        batch_op.drop_column("host")

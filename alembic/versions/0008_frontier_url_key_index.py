"""URLs looked up by key through an index of their own: the unique index leads with the
crawl, and for a crawl too new to be in the planner's statistics, PostgreSQL read every row of
it through the crawl's other indexes, for each batch of links

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_frontier_url_key", "frontier", ["url_key", "crawl_id"])


def downgrade() -> None:
    op.drop_index("ix_frontier_url_key", table_name="frontier")

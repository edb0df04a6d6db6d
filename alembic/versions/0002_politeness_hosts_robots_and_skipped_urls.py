"""Per-host politeness and robots.txt state, shared by every run; skipped URLs and why

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:08:30.088480
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("crawl_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host", sa.String(length=300), nullable=False),
        sa.Column("next_fetch_at", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("breaker_until", sa.Float(), nullable=False),
        sa.Column("breaker_trips", sa.Integer(), nullable=False),
        sa.Column("urls_started", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_hosts_crawl_id_crawls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("crawl_id", "host", name=op.f("uq_hosts_crawl_id_host")),
    )
    op.create_table(
        "robots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("crawl_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fetched_at", sa.Float(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column(
            "claimed_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("claim_expires_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["runs.id"], name=op.f("fk_robots_claimed_by_runs")
        ),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_robots_crawl_id_crawls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_robots")),
        sa.UniqueConstraint("crawl_id", "origin", name=op.f("uq_robots_crawl_id_origin")),
    )
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skip_reason", sa.String(length=100), nullable=True))
        batch_op.create_index(
            "ix_frontier_host", ["crawl_id", "host", "state", "depth"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_host")
        batch_op.drop_column("skip_reason")

    op.drop_table("robots")
    op.drop_table("hosts")

"""Host-first leasing: per-host counts of URLs by state, a retry state, indexes that read only
the rows a lease needs; runs say why they failed

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("in_flight", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("retrying", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("delay", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("cap", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("leased_at", sa.Float(), server_default="0", nullable=False))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))

    # A queued URL with a retry time was a retry: it waits in its own state now (a lease moves
    # it back to queued once it is due). Every host with URLs gets a row, and the counts.
    op.execute("UPDATE frontier SET state = 'retry' WHERE state = 'queued' AND next_attempt_at > 0")
    op.execute(
        """
        INSERT INTO hosts (crawl_id, host, next_fetch_at, failures, breaker_until, breaker_trips,
                           urls_started)
        SELECT DISTINCT f.crawl_id, f.host, 0, 0, 0, 0, 0 FROM frontier f
        WHERE NOT EXISTS (SELECT 1 FROM hosts h WHERE h.crawl_id = f.crawl_id AND h.host = f.host)
        """
    )
    for column, state in (("queued", "queued"), ("in_flight", "leased"), ("retrying", "retry")):
        op.execute(
            f"""
            UPDATE hosts SET {column} = (
                SELECT count(*) FROM frontier f
                WHERE f.crawl_id = hosts.crawl_id AND f.host = hosts.host AND f.state = '{state}'
            )
            """
        )

    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_lease")
        batch_op.drop_index("ix_frontier_host")
        batch_op.create_index(
            "ix_frontier_host", ["crawl_id", "host", "state", "depth", "url_key"], unique=False
        )
        batch_op.create_index(
            "ix_frontier_lapse",
            ["crawl_id", "lease_expires_at"],
            unique=False,
            sqlite_where=sa.text("state = 'leased'"),
            postgresql_where=sa.text("state = 'leased'"),
        )
        batch_op.create_index(
            "ix_frontier_retry",
            ["crawl_id", "next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("state = 'retry'"),
            postgresql_where=sa.text("state = 'retry'"),
        )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_hosts_ready",
            ["crawl_id", "leased_at"],
            unique=False,
            sqlite_where=sa.text("queued > 0"),
            postgresql_where=sa.text("queued > 0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index("ix_hosts_ready")
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_retry")
        batch_op.drop_index("ix_frontier_lapse")
        batch_op.drop_index("ix_frontier_host")
        batch_op.create_index(
            "ix_frontier_host", ["crawl_id", "host", "state", "depth"], unique=False
        )
        batch_op.create_index(
            "ix_frontier_lease", ["crawl_id", "state", "depth", "url_key"], unique=False
        )
    op.execute("UPDATE frontier SET state = 'queued' WHERE state = 'retry'")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("error")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_column("leased_at")
        batch_op.drop_column("cap")
        batch_op.drop_column("delay")
        batch_op.drop_column("retrying")
        batch_op.drop_column("in_flight")
        batch_op.drop_column("queued")
